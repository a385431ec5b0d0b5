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


def sigmoid_(a):
    """In-place sigmoid of an array or view (the fused paths' buffers): no temporaries."""
    xp = array_module(a)
    a *= 0.5
    xp.tanh(a, out=a)
    a += 1.0
    a *= 0.5
    return a


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


ACTIVATIONS = {
    "sigmoid": (sigmoid, dsigmoid),
    "tanh": (tanh, dtanh),
    "relu": (relu, drelu),
    "identity": (identity, didentity),
}
