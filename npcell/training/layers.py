"""Readout heads and input embeddings with hand-written backward passes.

Every layer is a small object holding a ``params`` dict (like a cell) and a pure pair

* ``forward(params, inputs) -> (outputs, cache)``
* ``backward(params, d_outputs, cache) -> (grads, d_inputs)``

and every loss is one function returning ``(loss, d_input)`` so the gradient sits next to the
value it differentiates (micrograd's habit). Shapes are written for the two ways a recurrent
net is read out:

* at the last step: h_T (B, H) -> y (B, K)
* at every step: h (T, B, H) -> y (T, B, K); a linear map acts on the last axis, so one GEMM
  over all T*B rows serves both cases.

Losses average over the positions that count, so they do not grow with T or B. A loss value is
a 0-d array on the arrays' device (a NumPy scalar on NumPy): reading it with ``float(loss)``
is the one host-device synchronisation of a training step, so the losses never read it
themselves.


* :func:`mse_loss` (regression, adding problem): mean of (y - target)^2 over all entries.
* :func:`softmax_cross_entropy` (classification, copy / digits / char LM / ART): mean of
  -log softmax(logits)[label] over the labelled positions, in nats; stable for any finite
  logits (log-sum-exp with the row maximum subtracted).
"""

from __future__ import annotations

import math

import numpy

from ..backend import array_module, current_xp, is_cupy_array, resolve_dtype
from ..errors import ConfigError, DTypeError, ShapeError, shape_str


def _check_float(name, a, dtype):
    if a.dtype != dtype:
        raise DTypeError(
            f"{name} has dtype {a.dtype} but the layer is {dtype.name}; cast it with "
            f"{name}.astype({dtype.name!r}) (npcell never mixes dtypes silently)"
        )


# ============================================================================================
# Linear readout: y = h W^T + b
# ============================================================================================
class Linear:
    """Affine map on the last axis: y = h W^T + b.

    Parameters ``W`` (out_features, in_features) and ``b`` (out_features,), initialised like
    PyTorch's ``nn.Linear``: U(-1/sqrt(in), 1/sqrt(in)) from a seeded Generator.
    ``h`` may be (B, in) or (T, B, in); ``y`` has the same leading axes.
    """

    def __init__(self, in_features, out_features, *, dtype="float64", seed=0, xp=None):
        self.in_features = _positive("in_features", in_features)
        self.out_features = _positive("out_features", out_features)
        self.dtype = resolve_dtype(dtype)
        rng = numpy.random.default_rng(seed)
        bound = 1.0 / math.sqrt(self.in_features)
        xp = xp or current_xp()
        self.params = {
            "W": xp.asarray(rng.uniform(-bound, bound, (self.out_features, self.in_features)),
                            dtype=self.dtype),
            "b": xp.asarray(rng.uniform(-bound, bound, (self.out_features,)), dtype=self.dtype),
        }

    def forward(self, params, h):
        """h (..., in) -> y (..., out); cache holds h."""
        if h.shape[-1] != self.in_features:
            raise ShapeError(
                f"Linear readout expects inputs with {self.in_features} features in the last "
                f"axis; got shape {shape_str(h.shape)}"
            )
        _check_float("h", h, self.dtype)
        y = h @ params["W"].T + params["b"]
        return y, {"h": h}

    def backward(self, params, dy, cache):
        """dy (..., out) -> grads {'W', 'b'}, dh (..., in)."""
        h = cache["h"]
        h_rows = h.reshape(-1, self.in_features)  # every (t, b) row is one sample of the GEMM
        dy_rows = dy.reshape(-1, self.out_features)
        grads = {
            "W": dy_rows.T @ h_rows,  # dL/dW = sum over rows of dy^T h
            "b": dy_rows.sum(axis=0),  # dL/db = sum over rows of dy
        }
        dh = dy @ params["W"]  # dL/dh = dy W
        return grads, dh

    def __repr__(self):
        return f"Linear(in_features={self.in_features}, out_features={self.out_features}, " \
               f"dtype={self.dtype.name!r})"


# ============================================================================================
# Embedding: row lookup, scatter-add backward
# ============================================================================================
class Embedding:
    """Token ids -> rows of ``E`` (vocab_size, dim), initialised N(0, 1) like PyTorch.

    ``tokens`` is an integer array of any shape, e.g. (T, B); the output is (T, B, dim).
    Backward scatters dL/d(output) back into the rows that were read; a token that appears
    several times receives the *sum* of its gradients (``xp.add.at``, not fancy assignment,
    which would keep only the last one).
    """

    def __init__(self, vocab_size, dim, *, dtype="float64", seed=0, xp=None):
        self.vocab_size = _positive("vocab_size", vocab_size)
        self.dim = _positive("dim", dim)
        self.dtype = resolve_dtype(dtype)
        rng = numpy.random.default_rng(seed)
        xp = xp or current_xp()
        self.params = {"E": xp.asarray(rng.standard_normal((self.vocab_size, self.dim)),
                                       dtype=self.dtype)}

    def forward(self, params, tokens):
        check_tokens("tokens", tokens, self.vocab_size)
        return params["E"][tokens], {"tokens": tokens}

    def backward(self, params, dout, cache):
        """dout (..., dim) -> grads {'E'}; tokens get no gradient (returned as None)."""
        xp = array_module(dout)
        dE = xp.zeros_like(params["E"])
        tokens = cache["tokens"].reshape(-1)
        scatter_add(dE, tokens, dout.reshape(-1, self.dim))  # dL/dE[v] = sum of dout where token==v
        return {"E": dE}, None

    def __repr__(self):
        return f"Embedding(vocab_size={self.vocab_size}, dim={self.dim}, dtype={self.dtype.name!r})"


def scatter_add(target, rows, values):
    """target[rows[k]] += values[k] for every k, repeated rows accumulating."""
    xp = array_module(target)
    if hasattr(xp, "add") and hasattr(xp.add, "at"):
        xp.add.at(target, rows, values)
    else:  # older CuPy: the same operation lives in cupyx
        import cupyx

        cupyx.scatter_add(target, rows, values)
    return target


def one_hot(tokens, num_classes, dtype="float64"):
    """Integer tokens of any shape -> float one-hot array with a trailing axis of num_classes."""
    check_tokens("tokens", tokens, num_classes)
    xp = array_module(tokens)
    out = xp.zeros(tokens.shape + (num_classes,), dtype=resolve_dtype(dtype))
    flat = out.reshape(-1, num_classes)
    flat[xp.arange(flat.shape[0]), tokens.reshape(-1)] = 1.0
    return out


def check_tokens(name, tokens, vocab_size):
    """Token ids must be integers in [0, vocab_size).

    The range is checked on host (NumPy) arrays only: on a GPU, reading min and max back would
    stop the device twice per call, so ids are checked before they move there (the training
    model checks every task batch on the host, then moves it). The dtype is always checked.
    """
    if not hasattr(tokens, "dtype") or tokens.dtype.kind not in "iu":
        raise DTypeError(
            f"{name} must be an integer array of token ids in [0, {vocab_size}); got "
            f"{getattr(tokens, 'dtype', type(tokens).__name__)}"
        )
    if is_cupy_array(tokens):
        return
    if tokens.size and (int(tokens.min()) < 0 or int(tokens.max()) >= vocab_size):
        raise ConfigError(
            f"{name} must lie in [0, {vocab_size}); got values from {int(tokens.min())} to "
            f"{int(tokens.max())}"
        )


# ============================================================================================
# Losses: value and gradient together
# ============================================================================================
def mse_loss(pred, target):
    """Mean squared error over every entry.

    pred, target: same shape, e.g. (B, 1). Returns (loss: 0-d array, dL/dpred like pred).
    """
    if pred.shape != target.shape:
        raise ShapeError(
            f"mse_loss: prediction shape {shape_str(pred.shape)} differs from target shape "
            f"{shape_str(target.shape)}"
        )
    diff = pred - target
    n = diff.size
    loss = (diff * diff).sum() / n  # stays on the device: no synchronisation here
    dpred = (2.0 / n) * diff  # d/dpred of mean((pred - target)^2)
    return loss, dpred


# exp of anything below these is < 1e-30 of the largest term (which is exp(0) = 1): clamping the
# argument changes no sum, and keeps exp from underflowing (silent in NumPy by default, but an
# error under ``numpy.errstate(all="raise")``, which a debugging user may have switched on).
_EXP_FLOOR = {"float32": -80.0, "float64": -700.0}


def _safe_exp(a):
    xp = array_module(a)
    return xp.exp(xp.maximum(a, _EXP_FLOOR.get(a.dtype.name, -80.0)))


def log_softmax(logits):
    """Stable log softmax over the last axis: z - max(z) - log(sum(exp(z - max(z))))."""
    xp = array_module(logits)
    shifted = logits - logits.max(axis=-1, keepdims=True)  # largest entry becomes 0: exp <= 1
    return shifted - xp.log(_safe_exp(shifted).sum(axis=-1, keepdims=True))


def softmax_cross_entropy(logits, labels, mask=None):
    """Mean cross-entropy (nats) of integer ``labels`` under ``softmax(logits)``.

    logits (..., C); labels (...) integers in [0, C); mask (...) optional 0/1 (or bool) weights
    choosing the positions that count (e.g. only the answer steps). The mean is over counted
    positions. Returns (loss: 0-d array, dL/dlogits like logits, n_counted). n_counted is an
    int, except for a mask on the GPU, where it stays a 0-d device array (a mask that selects
    nothing is refused for host masks; on the GPU it gives a NaN loss, which the training loop
    reports).

    Gradient: d/dz of -log softmax(z)[y] is softmax(z) - onehot(y), divided by the count.
    Finite for any finite logits (values of +-1e4 included): the log-sum-exp subtracts the
    row maximum before exponentiating.
    """
    xp = array_module(logits)
    if labels.shape != logits.shape[:-1]:
        raise ShapeError(
            f"softmax_cross_entropy: labels must have shape {shape_str(logits.shape[:-1])} "
            f"(logits without the class axis); got {shape_str(labels.shape)}"
        )
    C = logits.shape[-1]
    check_tokens("labels", labels, C)
    logp = log_softmax(logits).reshape(-1, C)
    flat_labels = labels.reshape(-1)
    rows = xp.arange(flat_labels.shape[0])
    picked = logp[rows, flat_labels]  # log p(label) at every position
    if mask is None:
        weights = None
        count = flat_labels.shape[0]
    else:
        if mask.shape != labels.shape:
            raise ShapeError(
                f"softmax_cross_entropy: mask must have the labels' shape "
                f"{shape_str(labels.shape)}; got {shape_str(mask.shape)}"
            )
        weights = mask.reshape(-1).astype(logits.dtype)
        count = weights.sum()
        if not is_cupy_array(weights):  # free on the host; on a GPU it would synchronise
            count = int(round(float(count)))
            if count == 0:
                raise ConfigError("softmax_cross_entropy: the mask selects no position")
    if weights is None:
        loss = -picked.sum() / count  # stays on the device: no synchronisation here
    else:
        loss = -(picked * weights).sum() / count
    dlogits = _safe_exp(logp)  # softmax(z)
    dlogits[rows, flat_labels] -= 1.0  # softmax(z) - onehot(y)
    if weights is not None:
        dlogits *= weights[:, None]  # positions outside the mask give no gradient
    dlogits /= count  # the mean over counted positions
    return loss, dlogits.reshape(logits.shape), count


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive int; got {value!r}")
    return int(value)
