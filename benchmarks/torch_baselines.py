"""PyTorch twins of npcell's cells for benchmarks/bench.py (same shapes, dtype, device, weights).

``lstm`` and ``gru`` run ``torch.nn.LSTM`` / ``torch.nn.GRU``; ``peephole``, ``wmc`` and ``ulstm``
(which PyTorch lacks) run a plain autograd loop of the same equations, written the way a user
would: packed gate weights, one step per iteration.

This file is benchmark code, not part of the npcell wheel, like the runner beside it
(benchmarks/bench.py), which loads it.
"""

from __future__ import annotations

import torch

from npcell import backend
from npcell.cells import torch_convert

TORCH_MODULE_KINDS = {"lstm": "LSTM", "gru": "GRU"}


def torch_baseline(cell, x_host, dh_host, device, *, eager_loop=False):
    """(runner, forward-only function returning h as NumPy) of the PyTorch twin of ``cell``
    on ``device`` (a benchmarks/bench.py Device).

    ``eager_loop=True`` uses the autograd loop even for kinds PyTorch has a module for (the GPU
    table shows nn.LSTM with cuDNN and the eager loop side by side).
    """
    dtype = getattr(torch, cell.dtype.name)
    x = torch.tensor(x_host, dtype=dtype, device=device.torch_device, requires_grad=True)
    dh = torch.tensor(dh_host, dtype=dtype, device=device.torch_device)
    if cell.kind in TORCH_MODULE_KINDS and not eager_loop:
        module = getattr(torch.nn, TORCH_MODULE_KINDS[cell.kind])(cell.input_size,
                                                                   cell.hidden_size)
        module = module.to(device=device.torch_device, dtype=dtype)
        _load_torch_weights(module, cell)

        def forward():
            return module(x)[0]
    else:
        params = {name: torch.tensor(backend.to_numpy(p), dtype=dtype,
                                     device=device.torch_device, requires_grad=True)
                  for name, p in cell.params.items()}
        loop = TORCH_LOOPS[cell.kind]
        packed = _torch_packed(params, cell.kind, torch)

        def forward():
            return loop(packed, x, cell.options)

    def run():
        forward().backward(dh)

    def h_numpy():
        with torch.no_grad():
            return forward().detach().cpu().numpy()

    return run, h_numpy


def _load_torch_weights(module, cell):
    convert = {"lstm": torch_convert.lstm_to_torch_state_dict,
               "gru": torch_convert.gru_to_torch_state_dict}[cell.kind]
    host_cell = cell.to("numpy")  # the converters read host arrays
    state = {k: v.to(module.weight_ih_l0) for k, v in convert(host_cell).items()}
    module.load_state_dict(state)


def _torch_packed(params, kind, torch):
    """Pack the named parameters the way a user's cell module would hold them."""
    cat = torch.cat
    if kind in ("lstm", "peephole", "wmc"):
        gates = ("i", "f", "g", "o")
        packed = dict(W_x=cat([params[f"W_{k}x"] for k in gates]),
                      W_h=cat([params[f"W_{k}h"] for k in gates]),
                      b=cat([params[f"b_{k}"] for k in gates]))
        packed.update({k: v for k, v in params.items() if k[-1] == "c"})
        return packed
    if kind == "ulstm":
        gates = [k for k in ("i", "o", "z", "f") if f"W_{k}x" in params]
        packed = dict(W_x=cat([params[f"W_{k}x"] for k in gates] + [params["W_ux"]]),
                      b_x=cat([params[f"b_{k}x"] for k in gates] + [params["b_ux"]]),
                      W_h=cat([params[f"W_{k}h"] for k in gates]),
                      b_h=cat([params[f"b_{k}h"] for k in gates]),
                      U_m=params["U_m"], b_m=params["b_m"], gates=gates)
        return packed
    raise KeyError(kind)


def _torch_connected_loop(p, x, options, *, squash):
    """LSTM (squash=None: no cell reads), peephole (eq. 16-18) / WMC (eq. 7-9) in PyTorch
    autograd, one step per iteration."""
    T, B, _ = x.shape
    H = p["W_h"].shape[1]
    h = x.new_zeros(B, H)
    c = x.new_zeros(B, H)
    diagonal = options.get("diagonal", False)
    act = torch.tanh if squash else (lambda z: z)

    def read(k, c):
        if squash is None:
            return 0.0
        z = p[f"W_{k}c"] * c if diagonal else c @ p[f"W_{k}c"].T
        return act(z + p[f"b_{k}c"] if f"b_{k}c" in p else z)

    out = []
    for t in range(T):
        a = x[t] @ p["W_x"].T + h @ p["W_h"].T + p["b"]
        a_i, a_f, a_g, a_o = a.chunk(4, dim=1)
        i = torch.sigmoid(a_i + read("i", c))
        f = torch.sigmoid(a_f + read("f", c))
        g = torch.tanh(a_g)
        c = f * c + i * g
        o = torch.sigmoid(a_o + read("o", c))
        h = o * torch.tanh(c)
        out.append(h)
    return torch.stack(out)


def _torch_ulstm_loop(p, x, options):
    """The Untied LSTM (npcell/cells/ulstm.py, U1-U8) in PyTorch autograd."""
    T, B, _ = x.shape
    H = p["U_m"].shape[0]
    h = x.new_zeros(B, H)
    c = x.new_zeros(B, H)
    n_gates = len(p["gates"])
    out = []
    for t in range(T):
        ax = x[t] @ p["W_x"].T + p["b_x"]
        ah = h @ p["W_h"].T + p["b_h"]
        s = torch.sigmoid(ax[:, : n_gates * H] + ah).chunk(n_gates, dim=1)
        gate = dict(zip(p["gates"], s))
        m = gate["z"] * torch.tanh(c)  # U5
        u = torch.tanh(ax[:, n_gates * H :] + m @ p["U_m"].T + p["b_m"])  # U6
        c = gate["i"] * u + gate["f"] * c  # U7
        h = gate["o"] * torch.tanh(c) if "o" in gate else torch.tanh(c)  # U8
        out.append(h)
    return torch.stack(out)


TORCH_LOOPS = {
    "lstm": lambda p, x, o: _torch_connected_loop(p, x, o, squash=None),
    "peephole": lambda p, x, o: _torch_connected_loop(p, x, o, squash=False),
    "wmc": lambda p, x, o: _torch_connected_loop(p, x, o, squash=True),
    "ulstm": _torch_ulstm_loop,
}
