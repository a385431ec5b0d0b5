"""Compare a returned tensor with its numerical derivative, fit pattern hints, and name the
student variable a set of wrong tensors points to (its *footprint*)."""

from __future__ import annotations

import math
import textwrap

import numpy

from .. import numdiff
from ..errors import shape_hint as _shape_hint
from . import variants
from .verdict import TensorCheck

# numdiff's one float64 rule, |a - n| <= atol S + rtol max(|a|, |n|) with S the size of the
# step's loss: a right answer is ~1e-15 off (complex step vs float64 algebra), a bug ~1e-3 or more
TOL = numdiff.tolerance("float64")
FLOOR = 1e-6  # denominator floor of the hints' fits (they compare with their own tight bounds)
HINT_FIT = 1e-9  # a pattern hint needs the numbers to fit it this closely ...
HINT_MISS = 1e-4  # ... and to miss the right value by at least this much
_SUMS = ("dx", "dh_prev", "dc_prev")  # returned tensors that sum terms of several variables


def _label(name) -> str:
    return name if name in ("dx", "dh_prev", "dc_prev") else f"grads['{name}']"


def compare(name, yours, want, shifted, report, scale) -> TensorCheck:
    """``scale``: the size of the case's loss (:func:`npcell.numdiff.loss_scale`)."""
    if yours is None:
        if any(name in s for s in report.get("not_arrays", []) or ()):
            return TensorCheck(name, False, math.inf, "is not an array of numbers")
        return TensorCheck(name, False, math.inf, "is missing from what you return")
    if yours.shape != want.shape:
        # shape_hint gives " (why?)" or "": used as is, so its own parentheses stay balanced
        return TensorCheck(name, False, math.inf, f"has shape {yours.shape}, expected "
                           f"{want.shape}{_shape_hint(yours.shape, want.shape)}")
    bad = ~numpy.isfinite(yours)
    if bad.any():
        index = tuple(int(i) for i in numpy.argwhere(bad)[0])
        kind = "NaN" if numpy.isnan(yours[index]) else "infinite"
        return TensorCheck(name, False, math.inf, f"is {kind} at {list(index)}", index)
    rel = (numdiff.relative_error(yours, want, TOL.floor(scale)) if yours.size
           else numpy.zeros(0))
    worst = float(rel.max(initial=0.0))
    index = tuple(int(i) for i in numpy.unravel_index(int(numpy.argmax(rel)), rel.shape)) \
        if rel.size else None
    check = TensorCheck(name, worst <= TOL.rtol, worst, "", index,
                        float(yours[index]) if index is not None else 0.0,
                        float(want[index]) if index is not None else 0.0)
    if not check.ok:
        check.signature = _signature(yours, want, shifted, name)
    return check


def badness(check):
    return math.inf if check.problem else check.rel_error


def _close(a, b):
    return a.shape == b.shape and bool(numpy.all(numdiff.relative_error(a, b, FLOOR) <= HINT_FIT))


def _signature(yours, want, shifted, name) -> str:
    """A pattern that fits the numbers to round-off, or '' (none when the numbers are close to
    the right value: a differenced gradient 2e-7 off fits no pattern, it is imprecise)."""
    if float(numdiff.relative_error(yours, want, FLOOR).max(initial=0.0)) < HINT_MISS:
        return ""
    if _close(yours, -want):
        return "has the wrong sign"
    nz = numpy.abs(want) > 1e-3
    if nz.sum() >= 2:
        ratio = yours[nz] / want[nz]
        if numpy.allclose(ratio, ratio[0], rtol=HINT_FIT, atol=0) and abs(ratio[0] - 1) > 1e-6:
            return f"is {ratio[0]:.4g} times the right value (a constant factor)"
    if yours.ndim == 2 and yours.shape[0] == yours.shape[1] and _close(yours, want.T):
        return "is the transpose of the right value (npcell's W is (out, in): dW = da^T @ input)"
    for what, outputs in shifted:
        if name in outputs and _close(yours, numpy.asarray(outputs[name], dtype=float)):
            return what
    return ""


def locate(failing: set, footprints: dict) -> list[str]:
    """The student variables that explain the wrong tensors: one whose footprint is exactly the
    failing set, else the fewest variables (largest footprints inside it first, upstream first)
    that cover it."""
    if not failing:
        return []
    for variable, fp in footprints.items():
        if fp and fp == failing:
            return [variable]
    chosen, left = [], set(failing)
    order = list(footprints)
    while left:
        candidates = [(len(fp & left), -order.index(v), v) for v, fp in footprints.items()
                      if fp and fp <= failing and fp & left]
        if not candidates:
            chosen += sorted(f"d{n}" if n not in ("dx", "dh_prev", "dc_prev") else n
                             for n in left)
            break
        _, _, best = max(candidates)
        chosen.append(best)
        left -= footprints[best]
    return chosen


def explain(variable, footprint, checks) -> list[str]:
    fed = [n for n in checks if n in footprint]
    lines = [f"Your {variable} is wrong ({variants.describe_variable(variable)})."]
    if len(fed) > 1:
        lines.append(f"  It feeds {', '.join(_label(n) for n in fed)}: all of them are off, and "
                     "everything it does not feed matches.")
    failed = [n for n in fed if not checks[n].ok]
    # dx, dh_prev (and dc_prev) sum terms of several variables, so a pattern of one variable
    # shows whole only in the tensors it feeds alone
    own = [n for n in failed if n not in _SUMS] or failed
    hints = {checks[n].signature for n in own}
    problems = [f"  {_label(n)} {checks[n].problem}." for n in fed if checks[n].problem]
    lines += problems[:4]
    if len(hints) == 1 and "" not in hints:
        lines.append(f"  Pattern: {variable} {hints.pop()}.")
    worst = max((checks[n] for n in fed if not checks[n].problem), key=lambda c: c.rel_error,
                default=None)
    if worst is not None and not worst.ok:
        lines.append(f"  Worst: {_label(worst.name)} at {list(worst.index or ())}: yours "
                     f"{worst.yours:.6g}, expected {worst.expected:.6g} (relative error "
                     f"{worst.rel_error:.1e}).")
    return [wrapped for line in lines for wrapped in textwrap.wrap(
        line, 96, subsequent_indent="    " if line.startswith("  ") else "  ") or [line]]
