"""Elementwise activations and their derivatives, shared by every cell.

Derivatives take the activation's *output* (as in Chainer and CS231n): ``dsigmoid(s) = s(1-s)``
where ``s = sigmoid(a)``, so backward never recomputes a transcendental.
All functions work on NumPy and CuPy arrays and stay finite and warning-free for any input
magnitude (sigmoid is written through tanh, which saturates instead of overflowing like exp).
"""

from __future__ import annotations

from ..backend import array_module


def sigmoid(a):
    """Logistic sigmoid, 1 / (1 + exp(-a)), computed as (1 + tanh(a/2)) / 2: no overflow."""
    xp = array_module(a)
    return 0.5 * (1.0 + xp.tanh(0.5 * a))


def dsigmoid(s):
    """d sigmoid / d a, from the output s = sigmoid(a)."""
    return s * (1.0 - s)


def tanh(a):
    return array_module(a).tanh(a)


def dtanh(t):
    """d tanh / d a, from the output t = tanh(a)."""
    return 1.0 - t * t


def relu(a):
    return array_module(a).maximum(a, 0.0)


def drelu(r):
    """d relu / d a, from the output r = relu(a) (0 at the kink)."""
    return (r > 0).astype(r.dtype)


def identity(a):
    return a


def didentity(y):
    return array_module(y).ones_like(y)


# ----- the cell read of the peephole (eq. 16-18) and WMC (eq. 7-9) gates ----------------------
# W_kc is a full (H, H) matrix or, with diagonal=True, a vector w_kc (H,) acting elementwise;
# its shape says which, so the step code reads the same for both.
def cell_read(W, c, b=None):
    """z = W_kc c [+ b_kc] for a batch c (B, H): c @ W^T (full W (H, H)) or w * c (w (H,))."""
    z = W * c if W.ndim == 1 else c @ W.T
    return z if b is None else z + b


def cell_read_weight_grad(dz, c, W):
    """dL/dW_kc of z = W_kc c for dz = dL/dz (B, H): the outer product dz^T c summed over the
    batch (full W), or its diagonal sum_b dz * c (w (H,))."""
    return (dz * c).sum(axis=0) if W.ndim == 1 else dz.T @ c


def cell_read_back(dz, W):
    """dL/dc through z = W_kc c for dz = dL/dz (B, H): dz @ W (full W), or dz * w (w (H,))."""
    return dz * W if W.ndim == 1 else dz @ W


ACTIVATIONS = {
    "sigmoid": (sigmoid, dsigmoid),
    "tanh": (tanh, dtanh),
    "relu": (relu, drelu),
    "identity": (identity, didentity),
}
