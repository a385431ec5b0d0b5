"""Layer normalisation (Ba, Kiros & Hinton 2016) with its hand-derived backward.

One implementation shared by every layer-normalised cell (``fw_rnn``, ``fw_lstm``, ``ln_lstm``)::

    y, ln_cache = layer_norm_forward(a, gain, bias, eps)     # a (..., N); gain, bias (N,)
    da, dgain, dbias = layer_norm_backward(dy, ln_cache)

Forward, over the last axis of ``a`` (N features; every leading axis is an independent row)::

    mu      = mean(a)                                         (LN1)
    a_hat   = (a - mu) / sqrt(var(a) + eps)                   (LN2)
    y       = gain * a_hat + bias                             (LN3)

Backward. With da_hat = dy * gain and s = sqrt(var + eps), differentiating (LN2) gives
d a_hat_k / d a_j = (delta_kj - 1/N - a_hat_k a_hat_j / N) / s, so

    dL/da = (da_hat - mean(da_hat) - a_hat * mean(da_hat * a_hat)) / s

The first correction removes the part of the gradient that only shifts the mean (LN removes
shifts), the second the part along a_hat (LN removes scalings). The formula is exact for any
eps > 0; with N = 1, a_hat is 0 and so is dL/da (a one-feature LayerNorm outputs its bias).

``eps`` defaults to PyTorch's 1e-5. The TensorFlow fast-weight code divides by the plain standard
deviation (eps = 0); TF's ``LayerNormBasicLSTMCell`` adds its own small constant.
"""

from __future__ import annotations

from ..backend import array_module


def layer_norm_forward(a, gain, bias, eps=1e-5):
    """LayerNorm over the last axis.

    Parameters
    ----------
    a : (..., N) array, e.g. (B, H) or (B, 4H).
    gain, bias : (N,) learned scale and shift.
    eps : added to the variance before the square root.

    Returns
    -------
    y : (..., N) normalised, scaled and shifted ``a``.
    cache : dict with ``a_hat`` (..., N), ``inv_std`` (..., 1) and ``gain`` for the backward.
    """
    xp = array_module(a)
    mu = a.mean(axis=-1, keepdims=True)  # (LN1)
    centred = a - mu
    var = (centred * centred).mean(axis=-1, keepdims=True)
    inv_std = 1.0 / xp.sqrt(var + eps)
    a_hat = centred * inv_std  # (LN2)
    y = gain * a_hat + bias  # (LN3)
    return y, {"a_hat": a_hat, "inv_std": inv_std, "gain": gain}


def layer_norm_backward(dy, cache):
    """Backward of :func:`layer_norm_forward`.

    dy : (..., N) dL/dy. Returns (dL/da (..., N), dL/dgain (N,), dL/dbias (N,)); the parameter
    gradients are summed over every leading axis (the batch), because the same gain and bias act
    on every row.
    """
    a_hat, inv_std, gain = cache["a_hat"], cache["inv_std"], cache["gain"]
    n = a_hat.shape[-1]
    rows_dy = dy.reshape(-1, n)
    dgain = (rows_dy * a_hat.reshape(-1, n)).sum(axis=0)  # dL/dgain: through (LN3), batch sum
    dbias = rows_dy.sum(axis=0)  # dL/dbias: through (LN3), batch sum
    da_hat = dy * gain  # dL/da_hat: through (LN3)
    # dL/da: through (LN2) and (LN1); the two means remove the shift and scale directions
    da = inv_std * (
        da_hat
        - da_hat.mean(axis=-1, keepdims=True)
        - a_hat * (da_hat * a_hat).mean(axis=-1, keepdims=True)
    )
    return da, dgain, dbias
