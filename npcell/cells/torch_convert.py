"""Converters between npcell cells and PyTorch ``nn.LSTM`` / ``nn.GRU`` state dicts.

PyTorch is an optional extra (``pip install npcell[crosscheck]``): it is imported only inside the
functions that must build torch tensors, never at module import.

Layouts (PyTorch packs the gates row-wise, W is (out, in) as in npcell):

=======  =========================  ==============================================================
cell     PyTorch gate order         npcell names
=======  =========================  ==============================================================
lstm     i, f, g, o                 W_ix W_fx W_gx W_ox / W_ih W_fh W_gh W_oh / b_i b_f b_g b_o
gru      r, z, n                    W_rx W_zx W_nx / W_rh W_zh W_nh / b_r b_z b_n, b_nh
=======  =========================  ==============================================================

Biases: PyTorch keeps two bias vectors, ``bias_ih`` and ``bias_hh``, that only ever appear
summed, except the GRU candidate's b_hn, which sits inside r * (W_hn h + b_hn). So:

* import (``*_from_torch_state_dict``): LSTM b_k = b_ih_k + b_hh_k; GRU b_r = b_ir + b_hr,
  b_z = b_iz + b_hz, b_n = b_in, b_nh = b_hn;
* export (``*_to_torch_state_dict``): the bias goes to ``bias_ih`` and zeros to ``bias_hh``
  (GRU: ``bias_hh`` = [0, 0, b_nh]).

cell -> state dict -> cell is therefore exact; state dict -> cell -> state dict gives the same
function with the two biases merged. Only the GRU with ``reset_after=True`` has an ``nn.GRU``
twin; Cho's form (reset before the matmul) has none and raises ConfigError.

Keys: ``weight_ih_l{layer}`` etc. as in ``nn.LSTM`` / ``nn.GRU`` (pick a layer with ``layer``);
the suffix-free keys of ``nn.LSTMCell`` / ``nn.GRUCell`` are accepted too. Values may be torch
tensors (any device; copied to the host) or NumPy arrays.
"""

from __future__ import annotations

import numpy

from ..backend import to_numpy
from ..errors import ConfigError, ShapeError, shape_str
from .base import make_cell

LSTM_TORCH_ORDER = ("i", "f", "g", "o")
GRU_TORCH_ORDER = ("r", "z", "n")


# ----- LSTM ---------------------------------------------------------------------------------
def lstm_to_torch_state_dict(cell, *, layer=0, as_numpy=False) -> dict:
    """State dict for ``nn.LSTM(X, H)`` (layer ``layer``) holding ``cell``'s weights.

    Returns ``{'weight_ih_l0': (4H, X), 'weight_hh_l0': (4H, H), 'bias_ih_l0': (4H,),
    'bias_hh_l0': zeros (4H,)}`` as torch tensors of the cell's dtype (NumPy arrays with
    ``as_numpy=True``, which needs no torch). Load it with ``lstm.load_state_dict(sd)``.
    """
    _require_kind(cell, "lstm", "nn.LSTM")
    p = {name: to_numpy(value) for name, value in cell.params.items()}
    order = LSTM_TORCH_ORDER
    arrays = {
        "weight_ih": numpy.concatenate([p[f"W_{k}x"] for k in order], axis=0),
        "weight_hh": numpy.concatenate([p[f"W_{k}h"] for k in order], axis=0),
        "bias_ih": numpy.concatenate([p[f"b_{k}"] for k in order]),
        "bias_hh": numpy.zeros(4 * cell.hidden_size, dtype=cell.dtype),
    }
    return _finish(arrays, layer, as_numpy)


def lstm_from_torch_state_dict(state_dict, *, layer=0, dtype=None, backend=None):
    """An ``lstm`` cell with the weights of an ``nn.LSTM`` (or ``nn.LSTMCell``) state dict.

    Sizes come from the shapes: ``weight_ih`` is (4H, X). ``dtype`` defaults to the state
    dict's (float32 or float64). ``bias_ih`` + ``bias_hh`` become npcell's single bias.
    ``nn.LSTM(proj_size>0)`` has no npcell twin and raises ConfigError.
    """
    arrays = _read(state_dict, layer, "nn.LSTM")
    if "weight_hr" in arrays:
        raise ConfigError("nn.LSTM with proj_size > 0 (weight_hr) has no npcell twin; "
                          "expected a state dict of an LSTM without projection")
    H, X = _sizes(arrays, 4, "nn.LSTM")
    dtype = dtype or arrays["weight_ih"].dtype.name
    cell = make_cell("lstm", X, H, dtype=dtype, seed=0, backend=backend)
    bias = _summed_bias(arrays, 4 * H)
    values = {}
    for n, k in enumerate(LSTM_TORCH_ORDER):
        rows = slice(n * H, (n + 1) * H)
        values[f"W_{k}x"] = arrays["weight_ih"][rows]
        values[f"W_{k}h"] = arrays["weight_hh"][rows]
        values[f"b_{k}"] = bias[rows]
    return _load(cell, values)


# ----- GRU ----------------------------------------------------------------------------------
def gru_to_torch_state_dict(cell, *, layer=0, as_numpy=False) -> dict:
    """State dict for ``nn.GRU(X, H)`` holding a ``gru`` cell made with ``reset_after=True``.

    ``bias_hh`` is [0, 0, b_nh] (b_hn cannot be merged: it sits inside r * (...)).
    """
    _require_kind(cell, "gru", "nn.GRU")
    _require_reset_after(cell.options["reset_after"])
    p = {name: to_numpy(value) for name, value in cell.params.items()}
    H = cell.hidden_size
    order = GRU_TORCH_ORDER
    arrays = {
        "weight_ih": numpy.concatenate([p[f"W_{k}x"] for k in order], axis=0),
        "weight_hh": numpy.concatenate([p[f"W_{k}h"] for k in order], axis=0),
        "bias_ih": numpy.concatenate([p[f"b_{k}"] for k in order]),
        "bias_hh": numpy.concatenate([numpy.zeros(2 * H, dtype=cell.dtype), p["b_nh"]]),
    }
    return _finish(arrays, layer, as_numpy)


def gru_from_torch_state_dict(state_dict, *, layer=0, dtype=None, backend=None,
                              reset_after=True):
    """A ``gru`` cell (``reset_after=True``) with the weights of an ``nn.GRU`` state dict.

    b_r = b_ir + b_hr, b_z = b_iz + b_hz, b_n = b_in, b_nh = b_hn. ``reset_after=False`` raises
    ConfigError: Cho's GRU is a different function and nn.GRU has no weights for it.
    """
    _require_reset_after(reset_after)
    arrays = _read(state_dict, layer, "nn.GRU")
    H, X = _sizes(arrays, 3, "nn.GRU")
    dtype = dtype or arrays["weight_ih"].dtype.name
    cell = make_cell("gru", X, H, dtype=dtype, seed=0, backend=backend, reset_after=True)
    zeros = numpy.zeros(3 * H, dtype=arrays["weight_ih"].dtype)
    bias_ih = arrays.get("bias_ih", zeros)
    bias_hh = arrays.get("bias_hh", zeros)
    values = {}
    for n, k in enumerate(GRU_TORCH_ORDER):
        rows = slice(n * H, (n + 1) * H)
        values[f"W_{k}x"] = arrays["weight_ih"][rows]
        values[f"W_{k}h"] = arrays["weight_hh"][rows]
        # r and z: the two biases only ever appear summed; n: b_in outside, b_hn inside r * (.)
        values[f"b_{k}"] = bias_ih[rows] + (bias_hh[rows] if k != "n" else 0.0)
    values["b_nh"] = bias_hh[2 * H :]
    return _load(cell, values)


# ----- helpers ------------------------------------------------------------------------------
def _require_kind(cell, kind, twin):
    if getattr(cell, "kind", None) != kind:
        raise ConfigError(
            f"{twin} state dicts hold only '{kind}' cells; got a {getattr(cell, 'kind', cell)!r} "
            "cell (its extra connections have no PyTorch twin)"
        )


def _require_reset_after(reset_after):
    if reset_after is not True:
        raise ConfigError(
            "only the gru with reset_after=True (reset applied after the recurrent matmul, "
            f"b_nh inside) matches nn.GRU; got reset_after={reset_after!r}. Cho's form "
            "(reset_after=False) is a different function with no nn.GRU twin"
        )


def _finish(arrays, layer, as_numpy):
    suffix = f"_l{int(layer)}"
    out = {name + suffix: numpy.ascontiguousarray(a) for name, a in arrays.items()}
    if as_numpy:
        return out
    import torch  # optional extra: imported only here

    return {name: torch.from_numpy(a.copy()) for name, a in out.items()}


def _read(state_dict, layer, twin):
    """Pick layer ``layer``'s arrays out of a state dict, as NumPy arrays keyed without suffix."""
    if not hasattr(state_dict, "keys"):
        raise ConfigError(f"expected a {twin} state dict (a mapping); got {type(state_dict)}")
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
    suffix = f"_l{int(layer)}"
    if f"weight_ih{suffix}" not in state_dict:
        suffix = ""  # nn.LSTMCell / nn.GRUCell keys
    if f"weight_ih{suffix}" not in state_dict or f"weight_hh{suffix}" not in state_dict:
        raise ConfigError(
            f"state dict has no weight_ih_l{layer}/weight_hh_l{layer} (nor cell-style weight_ih/"
            f"weight_hh) keys for a {twin}; it has {sorted(state_dict.keys())}"
        )
    arrays = {}
    for name in names:
        if name + suffix in state_dict:
            arrays[name] = _host_array(state_dict[name + suffix])
    return arrays


def _host_array(value):
    """A NumPy copy of a torch tensor (any device) or of an array-like."""
    if hasattr(value, "detach"):  # a torch tensor: no torch import needed to read it
        value = value.detach().cpu().numpy()
    return numpy.array(to_numpy(value), copy=True)


def _sizes(arrays, n_gates, twin):
    w_ih, w_hh = arrays["weight_ih"], arrays["weight_hh"]
    if w_ih.ndim != 2 or w_hh.ndim != 2 or w_hh.shape[0] % n_gates:
        raise ShapeError(
            f"{twin} weights must be weight_ih ({n_gates}H, X) and weight_hh ({n_gates}H, H); "
            f"got {shape_str(w_ih.shape)} and {shape_str(w_hh.shape)}"
        )
    H = w_hh.shape[0] // n_gates
    if w_hh.shape != (n_gates * H, H) or w_ih.shape[0] != n_gates * H:
        raise ShapeError(
            f"{twin} weights must be weight_ih ({n_gates}H, X) and weight_hh ({n_gates}H, H) "
            f"with one H; got {shape_str(w_ih.shape)} and {shape_str(w_hh.shape)}"
        )
    for name in ("bias_ih", "bias_hh"):
        if name in arrays and arrays[name].shape != (n_gates * H,):
            raise ShapeError(f"{twin} {name} must have shape ({n_gates * H},); "
                             f"got {shape_str(arrays[name].shape)}")
    return H, w_ih.shape[1]


def _summed_bias(arrays, size):
    zeros = numpy.zeros(size, dtype=arrays["weight_ih"].dtype)
    return arrays.get("bias_ih", zeros) + arrays.get("bias_hh", zeros)


def _load(cell, values):
    xp = cell.xp
    return cell.set_params({name: xp.asarray(v, dtype=cell.dtype) for name, v in values.items()})
