"""The fused sequence pair of the GRU (npcell/cells/gru.py, Cho 2014 and PyTorch's form).

One input GEMM for all T, one packed recurrent GEMM per step for the PyTorch form (two for
Cho's), weight gradients as one GEMM over all T*B rows after the loop. It equals looping
``gru_step_forward`` / ``gru_step_backward`` (tests/test_engine.py holds them equal).
"""

from __future__ import annotations

from ..backend import array_module
from ..cells.gru import GRU_GATES
from ..cells.ops import dsigmoid, dtanh
from .device import device_for


def gru_forward(cell, params, x, state):
    """Registered fused forward of the gru (see npcell.engine.fused_pair)."""
    return gru_fused_forward(params, x, state, reset_after=cell.options["reset_after"])


def gru_cache_floats(cell):
    """Floats per batch row the fused forward keeps: (per step: z, r, n, the read, h_t = 5H;
    once: h_0 and the final state's copy = 2H)."""
    return 5 * cell.hidden_size, 2 * cell.hidden_size


def gru_backward(cell, params, dh, cache, dstate):
    """Registered fused backward of the gru."""
    return gru_fused_backward(params, dh, cache, dstate, reset_after=cell.options["reset_after"])


def gru_fused_forward(params, x, state, *, reset_after=False):
    """Forward over all T steps. x (T, B, X) -> h (T, B, H), final state, cache dict."""
    xp = array_module(x)
    p = params
    T, B, X = x.shape
    H = state["h"].shape[1]
    act = device_for(x, units=B * H, lstm_kernels=False).gate_math()  # its activation form
    W_x = xp.concatenate([p[f"W_{k}x"] for k in GRU_GATES], axis=0)  # (3H, X)
    b = xp.concatenate([p[f"b_{k}"] for k in GRU_GATES])
    # One GEMM for the input projection of all T steps; the buffer then holds z, r, n.
    gates = (x.reshape(T * B, X) @ W_x.T + b).reshape(T, B, 3 * H)
    hs = xp.empty((T + 1, B, H), dtype=x.dtype)
    hs[0] = state["h"]
    # reset_after: hn = W_nh h + b_nh; Cho: rh = r * h. Either is what W_nh's gradient pairs with.
    read = xp.empty((T, B, H), dtype=x.dtype)
    if reset_after:
        W_h = xp.concatenate([p[f"W_{k}h"] for k in GRU_GATES], axis=0)  # (3H, H)
        recurrent = xp.empty((B, 3 * H), dtype=x.dtype)
    else:
        W_zrh = xp.concatenate([p["W_zh"], p["W_rh"]], axis=0)  # (2H, H)
        recurrent = xp.empty((B, 2 * H), dtype=x.dtype)
    for t in range(T):
        a, h_prev = gates[t], hs[t]
        if reset_after:
            xp.matmul(h_prev, W_h.T, out=recurrent)  # the one recurrent GEMM of PyTorch's form
            a[:, : 2 * H] += recurrent[:, : 2 * H]
            act.sigmoid_unscaled_(a[:, : 2 * H])  # z, r: eq. (G1), (G2)
            xp.add(recurrent[:, 2 * H :], p["b_nh"], out=read[t])
            a[:, 2 * H :] += a[:, H : 2 * H] * read[t]  # + r * (W_nh h + b_nh), eq. (G3')
        else:
            xp.matmul(h_prev, W_zrh.T, out=recurrent)  # first recurrent GEMM: both gates
            a[:, : 2 * H] += recurrent
            act.sigmoid_unscaled_(a[:, : 2 * H])  # z, r: eq. (G1), (G2)
            xp.multiply(a[:, H : 2 * H], h_prev, out=read[t])  # r * h_{t-1}
            a[:, 2 * H :] += read[t] @ p["W_nh"].T  # second GEMM waits for r: eq. (G3)
        act.tanh_unscaled_(a[:, 2 * H :])
        z, n = a[:, :H], a[:, 2 * H :]
        h = hs[t + 1]
        xp.subtract(h_prev, n, out=h)
        h *= z
        h += n  # eq. (G4) as n + z * (h_{t-1} - n)
    cache = dict(x=x, gates=gates, hs=hs, read=read)
    return hs[1:], {"h": hs[T].copy()}, cache


def gru_fused_backward(params, dh, cache, dstate, *, reset_after=False):
    """Backward over all T steps; returns (grads, dx (T, B, X), dstate0)."""
    p = params
    x, gates, hs, read = (cache[k] for k in ("x", "gates", "hs", "read"))
    xp = array_module(x)
    T, B, X = x.shape
    H = hs.shape[2]
    W_x = xp.concatenate([p[f"W_{k}x"] for k in GRU_GATES], axis=0)
    dgates = xp.empty((T, B, 3 * H), dtype=x.dtype)  # dL/da for z, r, n
    # reset_after: dL/d(W_nh h + b_nh) = da_n * r; Cho: da_n itself pairs with r * h.
    dread = xp.empty((T, B, H), dtype=x.dtype) if reset_after else None
    if reset_after:
        W_h = xp.concatenate([p[f"W_{k}h"] for k in GRU_GATES], axis=0)
        drec = xp.empty((B, 3 * H), dtype=x.dtype)
    else:
        W_zrh = xp.concatenate([p["W_zh"], p["W_rh"]], axis=0)
    dh_next = dstate["h"].copy()
    for t in range(T - 1, -1, -1):
        a, da, h_prev = gates[t], dgates[t], hs[t]
        z, r, n = a[:, :H], a[:, H : 2 * H], a[:, 2 * H :]
        dh_t = dh[t] + dh_next
        da[:, 2 * H :] = dh_t * (1.0 - z) * dtanh(n)  # dL/da_n: through (G4), tanh' of (G3)
        da[:, :H] = dh_t * (h_prev - n) * dsigmoid(z)  # dL/da_z: through (G4)
        da_n = da[:, 2 * H :]
        if reset_after:
            da[:, H : 2 * H] = da_n * read[t] * dsigmoid(r)  # dL/da_r: r scales W_nh h + b_nh
            xp.multiply(da_n, r, out=dread[t])  # dL/d(W_nh h_{t-1} + b_nh)
            drec[:, : 2 * H] = da[:, : 2 * H]
            drec[:, 2 * H :] = dread[t]
            dh_next = dh_t * z + drec @ W_h  # dL/dh_{t-1}: direct + one packed GEMM back
        else:
            drh = da_n @ p["W_nh"]  # dL/d(r * h_{t-1})
            da[:, H : 2 * H] = drh * h_prev * dsigmoid(r)  # dL/da_r: through r * h_{t-1}
            # dL/dh_{t-1}: direct + through the reset-scaled read + through both gates
            dh_next = dh_t * z + drh * r + da[:, : 2 * H] @ W_zrh
    # Weight gradients: one GEMM over all T*B rows each.
    flat = dgates.reshape(T * B, 3 * H)
    h_prev_flat = hs[:-1].reshape(T * B, H)
    dW_x = flat.T @ x.reshape(T * B, X)
    db = flat.sum(axis=0)
    dx = (flat @ W_x).reshape(T, B, X)
    dW_zrh = flat[:, : 2 * H].T @ h_prev_flat
    grads = {}
    for n_, k in enumerate(GRU_GATES):
        rows = slice(n_ * H, (n_ + 1) * H)
        grads[f"W_{k}x"], grads[f"b_{k}"] = dW_x[rows], db[rows]
    grads["W_zh"], grads["W_rh"] = dW_zrh[:H], dW_zrh[H:]
    if reset_after:
        dread_flat = dread.reshape(T * B, H)
        grads["W_nh"] = dread_flat.T @ h_prev_flat  # pairs with h_{t-1}
        grads["b_nh"] = dread_flat.sum(axis=0)
    else:
        grads["W_nh"] = flat[:, 2 * H :].T @ read.reshape(T * B, H)  # pairs with r * h_{t-1}
    grads = {name: grads[name] for name in params}
    return grads, dx, {"h": dh_next}
