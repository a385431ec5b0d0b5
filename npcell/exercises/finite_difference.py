"""Exercise ``finite_difference``: write the numerical gradient every gradient check rests on.

The student writes :func:`numerical_gradient`; the grader runs it on
functions whose gradient is known in closed form (and on an LSTM loss whose gradient comes from
npcell's gradient-checked backward); the student's code runs in the sandbox and
:func:`rows_from_results` reports one row per test.

Why central differences: for a smooth f,

    (f(x + eps) - f(x - eps)) / (2 eps) = f'(x) + eps^2 f'''(x) / 6 + O(eps^4)
    (f(x + eps) - f(x))       / eps     = f'(x) + eps   f''(x)  / 2 + O(eps^2)

so with eps = 1e-5 in float64 the central formula is good to about 1e-10 (round-off dominates),
the one-sided one only to about 1e-5. The cubic test uses the exact identity
``central(x^3) = 3 x^2 + eps^2``, which checks both the formula and that ``eps`` is honoured.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy

from ..cells import make_cell
from ..gradcheck import GradcheckRow
from ..numdiff import relative_error
from ..sequence import backward, forward
from . import fd_functions, variants


def numerical_gradient(f, x, eps=1e-5):
    """Central-difference gradient of a scalar function at ``x``.

    Parameters
    ----------
    f : callable taking an array shaped like ``x`` and returning a Python float.
    x : float64 array of any shape; perturb it in place one entry at a time, and leave it exactly
        as it was when you return.
    eps : the step.

    Returns
    -------
    grad : float64 array shaped like ``x``, grad[i] = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps).
    """
    ### BEGIN SOLUTION
    grad = numpy.zeros(x.shape, dtype=numpy.float64)
    for index in numpy.ndindex(*x.shape):
        original = x[index]
        x[index] = original + eps
        f_plus = f(x)
        x[index] = original - eps
        f_minus = f(x)
        x[index] = original  # restore before the next entry
        grad[index] = (f_plus - f_minus) / (2 * eps)
    return grad
    ### END SOLUTION


# ============================================================================================
# Grading: functions with known gradients
# ============================================================================================
# numdiff's relative error with this exercise's own pass mark: what is graded here is the
# quality of a central difference (~1e-10 here), which a one-sided one (~1e-5) must miss
TOL = 1e-7
FLOOR = 1e-6  # denominator floor of the relative error (gradients near zero)


@dataclass(frozen=True)
class FDCase:
    """One test of a student's ``numerical_gradient``: f is ``fd_functions.make(kind, arrays)``
    (built the same way in the sandboxed child), x the point, ``analytic`` the closed-form
    gradient there."""

    name: str
    kind: str
    arrays: dict
    x: numpy.ndarray
    analytic: numpy.ndarray
    eps: float

    def function(self):
        """f, as the child builds it (the LSTM loss runs :func:`lstm_step_source`'s forward)."""
        return fd_functions.make(self.kind, self.arrays, _lstm_step())


def lstm_step_source() -> str:
    """The paper LSTM's step forward as the ``lstm`` exercise gives it (NumPy only): the
    child execs this for the LSTM test; npcell's reference forward agrees number for number."""
    paper = variants.base("lstm")
    return variants.helpers_source(paper) + "\n\n" + variants.forward_source(paper)


@functools.cache
def _lstm_step():
    ns = {"numpy": numpy}
    exec(compile(lstm_step_source(), "<npcell lstm step>", "exec"), ns)  # noqa: S102 - ours
    return ns["step_forward"]


def known_gradient_cases(seed=0) -> list[FDCase]:
    """The tests: functions with a closed-form gradient, and an LSTM loss whose gradient comes
    from npcell's gradient-checked backward."""
    rng = numpy.random.default_rng(seed)
    cases = []

    # A quadratic form: f = 1/2 x^T A x + b^T x, grad = A x + b (A symmetric). 1-D x.
    A = rng.standard_normal((5, 5))
    A = A + A.T
    b = rng.standard_normal(5)
    x = rng.standard_normal(5)
    cases.append(FDCase("quadratic 1/2 x^T A x + b^T x (1-D)", "quadratic", {"A": A, "b": b}, x,
                        A @ x + b, 1e-5))

    # Elementwise: f = sum(sin(x) x^2), grad = cos(x) x^2 + 2 x sin(x). 2-D x.
    x = rng.standard_normal((3, 4))
    cases.append(FDCase("sum(sin(x) * x^2) (2-D)", "sin_x2", {}, x,
                        numpy.cos(x) * x ** 2 + 2 * x * numpy.sin(x), 1e-5))

    # A tanh layer, gradient with respect to its weights: f = sum(R * tanh(W v)).
    v = rng.standard_normal(3)
    R = rng.standard_normal(4)
    W = rng.standard_normal((4, 3))
    t = numpy.tanh(W @ v)
    cases.append(FDCase("tanh layer, d/dW of sum(R * tanh(W v))", "tanh_layer",
                        {"R": R, "v": v}, W, numpy.outer(R * (1 - t ** 2), v), 1e-5))

    # The cubic identity: the central difference of x^3 is exactly 3 x^2 + eps^2.
    x = rng.uniform(0.5, 2.0, size=4)
    eps = 1e-3
    cases.append(FDCase("central-difference identity on sum(x^3) with eps=1e-3", "cubic", {}, x,
                        3 * x ** 2 + eps ** 2, eps))

    # An LSTM: L = sum(R * h), gradient with respect to the input sequence x (T, B, X).
    cell = make_cell("lstm", 2, 3, seed=seed)
    x = rng.standard_normal((3, 2, 2))
    R = rng.standard_normal((3, 2, 3))
    _, _, cache = forward(cell, x, fused=False)
    _, dx, _ = backward(cell, R, cache)
    cases.append(FDCase("LSTM loss sum(R * h), d/dx (3-D, T x B x X)", "lstm",
                        {**cell.params, "R": R}, x, dx, 1e-5))
    return cases


def rows_from_results(results):
    """Grade what a student's ``numerical_gradient`` returned on :func:`known_gradient_cases`.

    ``results``: one ``(name, analytic, eps, numeric or None, error or None, x_changed)`` per
    case (the sandbox ran the student's code; this only compares). Returns a list of
    :class:`npcell.gradcheck.GradcheckRow` (group ``'fd'``), one per case plus one that checks
    ``x`` was left unchanged.
    """
    rows, mutated = [], []
    for name, analytic, eps, numeric, error, x_changed in results:
        if x_changed:
            mutated.append(name)
        if error is not None:
            rows.append(GradcheckRow(name, "fd", numpy.inf, numpy.inf, numpy.nan, numpy.nan, 0,
                                     TOL, hint=error))
            continue
        if numeric is None or numeric.shape != analytic.shape:
            got = None if numeric is None else numeric.shape
            rows.append(GradcheckRow(name, "fd", numpy.inf, numpy.inf, numpy.nan, numpy.nan, 0,
                                     TOL, hint=f"returned shape {got}, expected {analytic.shape}"))
            continue
        if not numpy.all(numpy.isfinite(numeric)):
            rows.append(GradcheckRow(name, "fd", numpy.inf, numpy.inf, numpy.nan, numpy.nan, 0,
                                     TOL, hint="returned NaN or Inf"))
            continue
        rel = relative_error(numpy.asarray(analytic, dtype=numpy.float64), numeric, FLOOR)
        worst = numpy.unravel_index(int(numpy.argmax(rel)), rel.shape)
        row = GradcheckRow(name, "fd", float(rel.max()),
                           float(numpy.abs(analytic - numeric).max()), float(analytic[worst]),
                           float(numeric[worst]), int(rel.size), TOL,
                           tuple(int(i) for i in worst))
        if not row.ok:
            row.hint = _fd_hint(analytic, numeric, eps)
        rows.append(row)
    unchanged = GradcheckRow("x unchanged after the call", "fd", 1.0 if mutated else 0.0,
                             0.0, 0.0, 0.0, len(rows), 0.5)
    if mutated:
        unchanged.hint = ("x was modified (restore each entry after perturbing it); "
                          f"changed in: {', '.join(mutated)}")
    rows.append(unchanged)
    return rows


def _fd_hint(analytic, numeric, eps):
    err = numpy.abs(analytic - numeric).max()
    scale = max(float(numpy.abs(analytic).max()), FLOOR)
    if numpy.allclose(numeric, -analytic, rtol=1e-4, atol=1e-8):
        return "sign flipped: (f(x+eps) - f(x-eps)), not the other way round"
    if numpy.allclose(numeric, 2 * analytic, rtol=1e-4, atol=1e-8):
        return "twice the gradient: divide by 2 eps"
    if numpy.allclose(numeric, 0.5 * analytic, rtol=1e-4, atol=1e-8):
        return "half the gradient: the central difference spans 2 eps"
    if err / scale > 1e-1:
        return "far off: are you perturbing one entry at a time and restoring it?"
    return (f"error {err:.1e} is about eps={eps:g} times the scale: a one-sided difference? "
            "use (f(x+eps) - f(x-eps)) / (2 eps)")
