"""The autograder: run a student's backward through :func:`npcell.gradcheck` and explain the result.

For each configuration of the exercise (e.g. peephole diagonal and full) and each seeded shape, it
builds a cell, switches its fused path off (``cell.fused = False``) so the stepwise BPTT driver
runs, plugs the student's function in as the cell's ``step_backward`` (an instance attribute, so
npcell's own forward still makes the cache) and runs a float64 gradient check from a random
non-zero initial state: ``fast`` mode (a random directional derivative per parameter, gate block,
time step of dx and initial state), repeated over several direction seeds. A directional error
estimates the normwise error of the whole tensor, so the median over directions ranks the rows
by how wrong each tensor is; the largest element-wise error would read about 1-2 on every tensor
a bug leaks into and could not say where it started. Before the check, every value the student
returns is checked for keys and shapes, so a missing batch sum names the parameter instead of
crashing inside the driver.

The score is the share of passing report rows (parameters, gate blocks, dx per time step, the
initial state), averaged over the checks; a check whose code raises scores 0.
"""

from __future__ import annotations

import math
import os
import traceback
from dataclasses import dataclass, field

import numpy

from ..cells import make_cell
from ..gradcheck import GradcheckRow, _shape_hint, gradcheck
from .catalogue import EXERCISES
from .finite_difference import grade_numerical_gradient
from .generator import load_file

# (T, B, X, H, seed): X != H so a transposed W_kx is a shape error; T >= 4 so carries matter.
SHAPES = ((4, 3, 3, 4, 0), (5, 2, 2, 3, 1))
DIRECTIONS = 4  # random directions per check: fast-mode rows, merged by their median


class StudentOutputError(Exception):
    """What the student's function returned has the wrong keys or shapes; ``location`` names the
    parameter or state it concerns."""

    def __init__(self, message, location):
        super().__init__(message)
        self.location = location


@dataclass
class Check:
    """One graded run: a configuration and a shape."""

    label: str
    ok: bool
    score: float  # 0..1
    rows: list = field(default_factory=list)  # GradcheckRow
    error: str | None = None
    location: str | None = None  # for errors: the parameter or state it names
    report: object = None  # the GradcheckReport, when the check ran

    def to_dict(self):
        return {"label": self.label, "ok": self.ok, "score": self.score, "error": self.error,
                "location": self.location,
                "report": self.report.to_dict() if self.report is not None else None,
                "rows": [] if self.report is not None else [_row_dict(r) for r in self.rows]}


@dataclass
class Grade:
    """The autograder's verdict: ``score`` (0-100), ``passed``, per-check detail, and where the
    error shows (:meth:`location`). ``str(grade)`` is the feedback a student reads."""

    exercise: str
    checks: list[Check]

    @property
    def score(self) -> float:
        if not self.checks:
            return 0.0
        return round(100.0 * sum(c.score for c in self.checks) / len(self.checks), 1)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def rows(self) -> dict:
        """Report rows merged over checks: name -> the row with the largest error."""
        merged = {}
        for check in self.checks:
            for r in check.rows:
                if r.name not in merged or _err(r) > _err(merged[r.name]):
                    merged[r.name] = r
        return merged

    def failed_rows(self, group=None) -> list[str]:
        """Names of failing rows, worst first (optionally one group: param, gate, dx, ...)."""
        rows = [r for r in self.rows().values()
                if not r.ok and (group is None or r.group == group)]
        return [r.name for r in sorted(rows, key=_err, reverse=True)]

    def location(self) -> dict:
        """Where the error shows: the worst parameter, gate block and state row, the time steps
        of dx that are wrong, and the locations named by errors in the student's output."""
        def first(group):
            names = self.failed_rows(group)
            return names[0] if names else None

        bad_steps = sorted({int(n.split("=")[1].rstrip("]")) for n in self.failed_rows("dx")})
        return {
            "param": first("param"),
            "gate": first("gate"),
            "state": first("dstate0"),
            "test": first("fd"),
            "bad_steps": bad_steps,
            "errors": [c.location for c in self.checks if c.location],
        }

    def names(self) -> set:
        """Every row or parameter the grade points at (worst rows and error locations)."""
        loc = self.location()
        named = {loc[k] for k in ("param", "gate", "state", "test") if loc[k]}
        return named | set(loc["errors"])

    def to_dict(self) -> dict:
        return {"exercise": self.exercise, "score": self.score, "passed": self.passed,
                "location": self.location(), "failed_rows": self.failed_rows(),
                "checks": [c.to_dict() for c in self.checks], "feedback": str(self)}

    def __str__(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        lines = [f"npcell exercise {self.exercise!r}: score {self.score:g}/100 ({verdict})", ""]
        for c in self.checks:
            if c.error:
                lines.append(f"  {c.label}: ERROR  {c.error}")
            else:
                worst = max((_err(r) for r in c.rows), default=0.0)
                state = "ok  " if c.ok else "FAIL"
                lines.append(f"  {c.label}: {state} {100 * c.score:5.1f}% of rows pass, "
                             f"max relative error {worst:.1e}")
        if self.passed:
            what = ("Every known gradient is matched to float64 round-off"
                    if self.exercise == "finite_difference" else
                    "Every parameter, gate block, time step and initial state matches central "
                    "differences in float64")
            lines += ["", f"{what}. Well done."]
            return "\n".join(lines)
        rows = self.rows()
        sections = (("param", "Parameters"), ("gate", "Gate blocks"), ("dstate0", "Initial state"),
                    ("fd", "Tests"))
        for group, title in sections:
            failed = self.failed_rows(group)
            if not failed:
                continue
            lines += ["", f"{title} that fail (worst first):"]
            for name in failed[:6]:
                r = rows[name]
                lines.append(f"  {name:<14} rel.err {_err(r):8.1e}  analytic {r.analytic: .4e}  "
                             f"numeric {r.numeric: .4e}  {r.hint}")
            if len(failed) > 6:
                lines.append(f"  ... and {len(failed) - 6} more")
        loc = self.location()
        dx_rows = [r for r in rows.values() if r.group == "dx"]
        if loc["bad_steps"]:
            steps = ", ".join(str(t) for t in loc["bad_steps"])
            lines += ["", f"Time steps where dL/dx_t is wrong: t = {steps} "
                          f"(of {len(dx_rows)} checked at the longest length)"]
            last = max((int(r.name.split("=")[1].rstrip("]")) for r in dx_rows), default=-1)
            if last not in loc["bad_steps"]:
                lines.append("  The last step is right and earlier ones are not: the local "
                             "derivatives are fine; look at what you pass back (dh_prev, dc_prev).")
        for c in self.checks:
            if c.error:
                lines += ["", f"Error in {c.label}:", f"  {c.error}"]
                break
        where = loc["errors"][0] if loc["errors"] else (loc["param"] or loc["test"]
                                                         or loc["state"])
        if where:
            lines += ["", f"Start looking at: {where}"]
            if loc["gate"]:
                lines.append(f"  worst gate block (its parameters moved together): {loc['gate']}")
            if loc["state"]:
                lines.append(f"  worst initial-state gradient: {loc['state']}")
        return "\n".join(lines)


def _err(r):
    return r.max_rel_error if not math.isnan(r.max_rel_error) else math.inf


def _row_dict(r: GradcheckRow):
    return {"name": r.name, "group": r.group, "max_rel_error": r.max_rel_error,
            "analytic": r.analytic, "numeric": r.numeric, "ok": r.ok, "hint": r.hint}


# ============================================================================================
def grade(exercise, student, *, shapes=SHAPES) -> Grade:
    """Grade ``student`` (a path to a student file, a module, or the function itself) on the
    exercise named ``exercise`` (or an :class:`~npcell.exercises.catalogue.Exercise`)."""
    ex = EXERCISES[exercise] if isinstance(exercise, str) else exercise
    try:
        fn = _student_function(ex, student)
    except Exception as err:  # noqa: BLE001 - report anything the file does on import
        return Grade(ex.name, [Check("loading the file", False, 0.0, error=_describe(err))])
    if ex.name == "finite_difference":
        return _grade_fd(ex, fn)
    checks = []
    for kind, options in ex.configs:
        for T, B, X, H, seed in shapes:
            opts = ", ".join(f"{k}={v}" for k, v in options.items())
            label = f"{kind}({opts}) T={T} B={B} X={X} H={H} seed={seed}"
            checks.append(_grade_one(ex, fn, kind, options, (T, B, X, H), seed, label))
    return Grade(ex.name, checks)


def _student_function(ex, student):
    if callable(student):
        return student
    module = load_file(student) if isinstance(student, (str, os.PathLike)) else student
    declared = getattr(module, "NPCELL_EXERCISE", ex.name)
    if declared != ex.name:
        raise ValueError(f"this file is exercise {declared!r}, not {ex.name!r}")
    if not hasattr(module, ex.function):
        raise AttributeError(f"the file defines no function {ex.function}()")
    return getattr(module, ex.function)


def _grade_one(ex, fn, kind, options, shape, seed, label):
    T, B, X, H = shape
    cell = make_cell(kind, X, H, seed=seed, **options)
    cell.fused = False  # the sequence driver then loops step_forward / step_backward
    cell.step_backward = _checked(fn, ex.call_options(cell), cell)
    rng = numpy.random.default_rng(1000 + seed)
    x = rng.standard_normal((T, B, X))
    state = {name: 0.5 * rng.standard_normal(s) for name, s in cell.state_shapes(B).items()}
    reports = []
    try:
        for direction_seed in range(DIRECTIONS):
            # The first run re-checks failing rows on 16 entries (for the pattern hints); the others
            # only add fresh random directions.
            reports.append(gradcheck(cell, x, state, mode="fast", seed=direction_seed,
                                     samples=16 if direction_seed == 0 else 1, fused=False))
    except NotImplementedError:
        return Check(label, False, 0.0, error="not implemented yet (NotImplementedError)")
    except StudentOutputError as err:
        return Check(label, False, 0.0, error=str(err), location=err.location)
    except Exception as err:  # noqa: BLE001 - the student's code may raise anything
        return Check(label, False, 0.0, error=_describe(err))
    rows = _merge_directions(reports)
    passing = sum(r.ok for r in rows)
    return Check(label, all(r.ok for r in rows), passing / len(rows), rows=rows,
                 report=reports[0])


def _merge_directions(reports):
    """One row per name over several direction seeds: the median relative error (a directional
    error estimates the normwise one, ||a - n|| / ||n||, and its median is a stable ranking), a
    pass only if every direction passed, and the first run's numbers and hint."""
    merged = []
    for rows in zip(*(r.rows for r in reports)):
        errors = sorted(r.max_rel_error for r in rows)
        first = rows[0]
        merged.append(GradcheckRow(
            first.name, first.group, errors[len(errors) // 2],
            max(r.max_abs_error for r in rows), first.analytic, first.numeric,
            sum(r.n_checked for r in rows), first.tol, first.worst_index,
            first.hint or next((r.hint for r in rows if r.hint), "")))
        if not all(r.ok for r in rows) and merged[-1].ok:
            merged[-1].max_rel_error = errors[-1]  # failed in some direction: show the worst
    return merged


def _checked(fn, call_options, cell):
    """Wrap the student's step_backward: same call, but keys and shapes are checked first."""
    params_shapes = {name: tuple(p.shape) for name, p in cell.params.items()}

    def step_backward(params, dstate, cache_t):
        out = fn(params, dstate, cache_t, **call_options)
        if not isinstance(out, tuple) or len(out) != 3:
            raise StudentOutputError("step_backward must return (grads_t, dx_t, dstate_prev); "
                                     f"got {type(out).__name__}", None)
        grads, dx, dstate_prev = out
        if not isinstance(grads, dict):
            raise StudentOutputError(f"grads_t must be a dict keyed like params; got "
                                     f"{type(grads).__name__}", None)
        missing = [n for n in params_shapes if n not in grads]
        extra = [n for n in grads if n not in params_shapes]
        if missing or extra:
            raise StudentOutputError(f"grads_t is missing {missing} / has unexpected {extra}",
                                     (missing or extra)[0])
        for name, want in params_shapes.items():
            got = tuple(numpy.shape(grads[name]))
            if got != want:
                raise StudentOutputError(
                    f"grads_t[{name!r}] has shape {got}, parameter {name} has shape {want}"
                    + _shape_hint(got, want), name)
        B = cache_t["x"].shape[0]
        if tuple(numpy.shape(dx)) != (B, cell.input_size):
            raise StudentOutputError(f"dx_t has shape {numpy.shape(dx)}, expected "
                                     f"{(B, cell.input_size)}", "dx")
        for name, want in cell.state_shapes(B).items():
            if name not in dstate_prev or tuple(numpy.shape(dstate_prev[name])) != want:
                got = numpy.shape(dstate_prev[name]) if name in dstate_prev else "missing"
                raise StudentOutputError(f"dstate_prev[{name!r}] is {got}, expected shape "
                                         f"{want}", f"dstate0[{name}]")
        return grads, dx, dstate_prev

    return step_backward


def _grade_fd(ex, fn):
    try:
        rows = grade_numerical_gradient(fn)
    except NotImplementedError:
        return Grade(ex.name, [Check("known gradients", False, 0.0,
                                     error="not implemented yet (NotImplementedError)")])
    ok = all(r.ok for r in rows)
    return Grade(ex.name, [Check("known gradients", ok, sum(r.ok for r in rows) / len(rows),
                                 rows=rows)])


def _describe(err) -> str:
    tb = traceback.extract_tb(err.__traceback__)
    where = f" (line {tb[-1].lineno} in {tb[-1].name})" if tb else ""
    return f"{type(err).__name__}: {err}{where}"
