"""The one numeric core: numerical derivatives, the error rule, the tolerances (DESIGN section 4).

Everything in npcell that compares an analytic gradient with a numerical one uses this module:
:func:`npcell.gradcheck`, the exercise grader and the finite-difference exercise.

**Differencing.** One primitive, :func:`derivative`, moves its inputs along a direction v and
differences a weighted sum of outputs, L = sum_k <R_k, y_k>:

    central:  dL/ds ~ (L(p + eps v) - L(p - eps v)) / (2 eps),     eps = 1e-5, in float64
    complex:  dL/ds = Im L(p + i h v) / h + O(h^2),                 h = 1e-20

The central difference subtracts the outputs elementwise before weighting them (y+ - y- first),
which keeps round-off at the size of one output, not of the whole loss. The complex step
subtracts nothing, so h can be tiny and the result is exact to round-off, but it needs a forward
that is complex analytic (no abs, max, comparisons).

**The reference step loop.** The numeric side of a sequence check always runs
:func:`reference_outputs`: the cell's own ``step_forward`` looped by
:func:`npcell.sequence.stepwise_forward`, on float64 (or complex128) copies of the parameters,
input and state, never the fused fast path under test. So a float32 cell's numbers are differenced
in float64, and the fused path's round-off shows up on one side only.

**One error rule.** An analytic value a passes against a numeric value n when

    |a - n| <= atol + rtol * max(|a|, |n|)

the ``atol + rtol`` rule of ``numpy.testing.assert_allclose`` and ``torch.autograd.gradcheck``,
written as a relative error with an absolute floor: :func:`relative_error` (a, n, floor) =
|a - n| / (max(|a|, |n|) + floor) with floor = atol / rtol, compared with rtol. The absolute floor
is scaled to the quantity: ``atol`` is :attr:`Tolerance.atol` times the size of the loss being
differenced, S = sum |R_k y_k| (:func:`loss_scale`), because both the round-off of a difference
of L and the round-off of a gradient summed over T and B grow with S, not with the one entry
being checked. A gradient entry far below the loss's own round-off is not judged by its digits.

**Tolerances per dtype** (:data:`TOLERANCES`), measured over thousands of random correct cases
of every cell kind (scripts/gradcheck_false_fails.py; numbers in docs/gradcheck.md):

* float64: eps 1e-5, rtol 1e-5, atol 1e-8 S. Correct LSTM-family, GRU, ULSTM and teaching
  cells stay below 1/500 of this rule (worst error / tolerance), the fast-weight and layer-norm
  cells below 0.6 (gradcheck settles the rare rows past it); a planted bug lands at 1e-3
  relative or more.
* float32: the analytic side (the float32 backward) carries float32 round-off (u = 6e-8 per
  operation, summed over T and B), so rtol 1e-3, atol 1e-6 S; the numeric side is still
  float64. Correct cells stay below 1/30 of this rule, the fast-weight and layer-norm cells
  below 0.8.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy

from .backend import array_module
from .errors import ConfigError
from .sequence import stepwise_forward

CENTRAL_STEP = 1e-5  # eps of the central difference in float64: truncation ~eps^2, round-off ~u/eps
COMPLEX_STEP = 1e-20  # h of the complex step: no cancellation, so it may be this small
METHODS = ("central", "complex")


@dataclass(frozen=True)
class Tolerance:
    """The pass rule of one dtype: ``|a - n| <= atol * S + rtol * max(|a|, |n|)``, S the loss
    scale (:func:`loss_scale`)."""

    rtol: float
    atol: float  # in units of the loss scale S (see loss_scale)
    eps: float = CENTRAL_STEP  # the central difference's step (on the float64 numeric side)

    def floor(self, scale: float) -> float:
        """The denominator floor of :func:`relative_error` for a loss of scale ``scale``."""
        return max(self.atol * scale, numpy.finfo(numpy.float64).tiny) / self.rtol


# dtype of the checked (analytic) side -> its tolerance; see the module docstring for why.
TOLERANCES = {
    "float64": Tolerance(rtol=1e-5, atol=1e-8),
    "float32": Tolerance(rtol=1e-3, atol=1e-6),
}


def tolerance(dtype) -> Tolerance:
    """The :class:`Tolerance` of a dtype (name or numpy dtype)."""
    return TOLERANCES[numpy.dtype(dtype).name]


def relative_error(a, n, floor=1e-4):
    """``|a - n| / (max(|a|, |n|) + floor)``, elementwise: the one measure every check uses.

    It is at most ``rtol`` exactly when ``|a - n| <= rtol * floor + rtol * max(|a|, |n|)``, so
    with ``floor = atol / rtol`` (:meth:`Tolerance.floor`) it is the atol + rtol rule.
    """
    xp = array_module(a, n)
    return xp.abs(a - n) / (xp.maximum(xp.abs(a), xp.abs(n)) + floor)


# ----- the one differencing primitive --------------------------------------------------------
def derivative(outputs, weights, move, *, method="central", eps=None) -> float:
    """dL/ds at s = 0 of L(s) = sum_k sum(weights[k] * outputs()[k]) with the inputs at p + s v.

    outputs : callable returning the list of output arrays (or scalars) at the current inputs.
    weights : one array (or scalar) per output, R_k.
    move : ``move(s)`` puts the inputs at p + s v (s real for central differences, imaginary for
        the complex step); ``move(0)`` restores p exactly.
    method : 'central' or 'complex'; eps : the step (default :data:`CENTRAL_STEP` /
        :data:`COMPLEX_STEP`).
    """
    if method == "complex":
        h = COMPLEX_STEP if eps is None else eps
        move(1j * h)
        try:
            ys = outputs()
        finally:
            move(0)
        return sum(_total(w * y.imag) for w, y in zip(weights, ys)) / h
    eps = CENTRAL_STEP if eps is None else eps
    try:
        move(eps)
        plus = outputs()
        move(-eps)
        minus = outputs()
    finally:
        move(0)
    # y+ - y- first: the difference of two nearly equal outputs is exact to their own round-off
    return sum(_total(w * (p - m)) for w, p, m in zip(weights, plus, minus)) / (2 * eps)


def _total(a) -> float:
    """float(sum of a): an array (NumPy or CuPy) or a scalar."""
    return float(a.sum()) if hasattr(a, "sum") else float(a)


def mover(arrays, directions):
    """``move(s)`` for :func:`derivative`: sets each array (a view, changed in place) to its
    value now plus s times its direction; ``move(0)`` writes the saved originals back."""
    originals = [a.copy() for a in arrays]

    def move(s):
        for a, a0, v in zip(arrays, originals, directions):
            if s == 0:
                a[...] = a0
            else:
                a[...] = a0 + s * v
    return move


def entry_mover(array, index):
    """``move(s)`` that moves one entry of ``array`` (in place) by s."""
    original = array[index].copy() if hasattr(array[index], "copy") else array[index]

    def move(s):
        array[index] = original + s if s != 0 else original
    return move


def loss_scale(weights, outputs) -> float:
    """S = ``sum_k sum |R_k * y_k|``: the size of the differenced loss, which the absolute floor of
    every comparison is scaled to (both round-offs grow with it)."""
    return sum(_total(abs(w * (y.real if _is_complex(y) else y))) for w, y in zip(weights, outputs))


def _is_complex(y) -> bool:
    return getattr(getattr(y, "dtype", None), "kind", "") == "c" or isinstance(y, complex)


def gradients(f, arrays, *, method="complex", eps=None) -> dict:
    """Gradient of a real scalar function entry by entry.

    ``arrays``: name -> real float64 array; ``f(work) -> scalar`` evaluated on working copies
    (complex128 for the complex step, so f must then be complex analytic). Returns name -> array
    shaped like the input: d f / d entry.
    """
    work_type = complex if method == "complex" else numpy.float64
    work = {k: numpy.asarray(v, dtype=work_type).copy() for k, v in arrays.items()}
    grads = {}
    for name, array in work.items():
        grad = numpy.empty(array.shape)
        for index in numpy.ndindex(*array.shape):
            grad[index] = derivative(lambda: [f(work)], [1.0], entry_mover(array, index),
                                     method=method, eps=eps)
        grads[name] = grad
    return grads


def complex_step_gradients(f, arrays, *, h=COMPLEX_STEP) -> dict:
    """:func:`gradients` by the complex step: one evaluation per entry, exact to round-off."""
    return gradients(f, arrays, method="complex", eps=h)


# ----- the numeric side of a sequence check ----------------------------------------------------
def working_copy(cell, x, state, method="central"):
    """float64 (complex128 for the complex step) host-backend copies of the cell's parameters,
    the input and the state, for :func:`reference_outputs` to run on and :func:`derivative` to
    move in place."""
    xp = array_module(x)
    work_type = xp.complex128 if method == "complex" else xp.float64
    params = {k: v.astype(work_type) for k, v in cell.params.items()}
    return params, x.astype(work_type), {k: v.astype(work_type) for k, v in state.items()}


def reference_outputs(cell, params, x, state):
    """[h (T, B, H), then the final state's arrays in ``cell.state_names`` order] from the
    reference step loop (the cell's own ``step_forward``), never the fused path."""
    h, state_T, _ = stepwise_forward(cell, x, state, params=params)
    return [h] + [state_T[k] for k in cell.state_names]


def check_method(method, who="numdiff"):
    """The method name, or ConfigError naming the two."""
    if not isinstance(method, str) or method not in METHODS:
        raise ConfigError(f"{who} method must be 'central' or 'complex'; got {method!r}")
    return method
