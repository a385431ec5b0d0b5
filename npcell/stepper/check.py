"""Check mode: run a student's step_backward at every step, in the grader's isolated child,
beside the reference, and name the first step and variable where they disagree.

Each step is checked on the reference's own inputs (params, the dL/d(state_t) that step t
received, the step's cache), so a step is judged on its own work, never on a wrong carry it was
handed. One child run (:func:`npcell.exercises.sandbox.run`, a job of kind 'step' with one case
per step) computes every step; the child sends back arrays only. The set of returned tensors
that disagree names the student's variable through the grader's footprints
(:func:`npcell.exercises.variants.footprints`, :func:`npcell.exercises.grader.locate`), in the
names of the file ``npcell exercises new`` wrote (da_o, dc, dz_i, dc_prev, ...).

A student given as a function is written to a file first: NumPy, the activations every
exercise file gives (sigmoid, dsigmoid, tanh, dtanh), then the function's own source.
"""

from __future__ import annotations

import inspect
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy

from ..backend import to_numpy
from ..errors import ConfigError
from ..exercises import sandbox, variants
from ..exercises.generator import read_header
from ..exercises.grader import locate

RTOL = 1e-6  # a right float64 backward agrees to ~1e-14; a planted bug is off by >1e-2
FLOOR = 1e-8  # denominator floor of the relative error


@dataclass
class StepVerdict:
    """One step: ``ok``, the disagreeing returned tensors, the variables they name, an error."""

    t: int
    ok: bool
    wrong_tensors: list = field(default_factory=list)
    variables: list = field(default_factory=list)
    error: str = ""

    def to_dict(self):
        return {"t": self.t, "ok": self.ok, "wrong_tensors": self.wrong_tensors,
                "variables": self.variables, "error": self.error}


@dataclass
class CheckResult:
    """Per-step verdicts of a student's backward; ``first_wrong`` is the first step of the
    backward walk (from t = T-1 down) that disagrees, None when every step agrees."""

    kind: str
    student: str
    steps: list  # StepVerdict per t (index t)
    first_wrong: StepVerdict | None

    @property
    def ok(self) -> bool:
        return self.first_wrong is None

    def line(self) -> str:
        """One line, as the page's first-wrong element says it."""
        w = self.first_wrong
        if w is None:
            return f"every step agrees with the reference (t = {len(self.steps) - 1} down to 0)"
        if w.error:
            return f"first wrong: t = {w.t}: {w.error}"
        return f"first wrong: {', '.join(w.variables)} at t = {w.t}"

    def to_dict(self):
        return {"kind": self.kind, "student": self.student, "ok": self.ok, "line": self.line(),
                "first_wrong": None if self.first_wrong is None else self.first_wrong.to_dict(),
                "steps": [s.to_dict() for s in self.steps]}


def student_file(student, kind, workdir) -> Path:
    """The file to run: the student's own file (its header must name the paper's ``kind``
    cell), or a function written to ``workdir``."""
    if callable(student):
        return _function_file(student, kind, Path(workdir))
    path = Path(student)
    if not path.is_file():
        raise FileNotFoundError(f"student file {path} does not exist")
    header = read_header(path)
    if header["exercise"] not in (None, kind):
        raise ConfigError(f"{path.name} is the {header['exercise']!r} exercise; this stepper "
                          f"walks a {kind!r} cell")
    if header["variant"] is not None:
        raise ConfigError(f"{path.name} is variant {header['variant']} of the {kind!r} exercise "
                          "(a cell npcell does not have); the stepper checks the paper's cell: "
                          f"write it with `npcell exercises new {kind}` (no --variant)")
    return path


def _function_file(fn, kind, workdir) -> Path:
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as err:
        raise ConfigError(f"cannot read the source of {fn!r} ({err}); pass a file written by "
                          f"`npcell exercises new {kind}` instead") from err
    text = "\n".join(["import numpy", "", variants.ACTIVATIONS_SOURCE, "", source, "",
                      f"step_backward = {fn.__name__}", ""])
    path = workdir / "student_step_backward.py"
    path.write_text(text)
    return path


def _inputs(arrays):
    """Sandbox inputs: one case per step with the reference's params, dstate_t and cache_t."""
    inputs = {}
    for t, (dstate, cache) in enumerate(zip(arrays["dstate"], arrays["caches"])):
        trees = (("params", arrays["params"]), ("dstate", dstate), ("cache", cache))
        for part, tree in trees:
            inputs |= {f"{t}.{part}.{k}": numpy.asarray(to_numpy(v), dtype=numpy.float64)
                       for k, v in tree.items()}
    return inputs


def _reference(out):
    """The reference step's (grads, dx, dstate_prev) as {returned tensor name: array}."""
    grads, dx, prev = out
    flat = {k: to_numpy(v) for k, v in grads.items()}
    return flat | {"dx": to_numpy(dx), "dh_prev": to_numpy(prev["h"]),
                   "dc_prev": to_numpy(prev["c"])}


def _returned(outputs, t):
    got = {}
    for key, value in outputs.items():
        case, _, rest = key.partition(".")
        if case != str(t):
            continue
        part, _, name = rest.partition(".")
        if part == "dx":
            got["dx"] = value
        elif part == "grads":
            got[name] = value
        elif part == "dstate_prev":
            got[f"d{name}_prev"] = value
    return got


def _disagrees(yours, want):
    if yours is None or numpy.shape(yours) != numpy.shape(want):
        return True
    err = numpy.max(numpy.abs(yours - want)) / max(float(numpy.max(numpy.abs(want))), FLOOR)
    return not err <= RTOL  # NaN counts as wrong


def _error_line(report):
    err = report.get("error")
    if err:
        where = f" (line {err['line']}: {err['code']})" if err.get("line") else ""
        return f"{err['type']}: {err['message']}{where}"
    if report.get("structure"):
        return report["structure"]
    return ""


def _whole_run_error(run, name) -> str:
    if run.timed_out:
        return f"{name} did not finish in {run.timeout:.0f} s"
    if run.status is None:
        return f"{name} ended without a result (exit code {run.returncode})"
    err = run.status.get("load_error")
    if err:
        what = ("has no function step_backward" if err["type"] == "missing_function"
                else f"does not load: {err['type']}: {err['message']}")
        return f"{name} {what}"
    return ""


def check_student(student, kind, arrays, *, timeout=sandbox.TIMEOUT_S) -> CheckResult:
    """Run ``student`` (a file or a function) on every recorded step of a ``kind`` walk."""
    with tempfile.TemporaryDirectory(prefix="npcell-stepper-") as workdir:
        path = student_file(student, kind, workdir)
        name = getattr(student, "__name__", None) or Path(student).name
        T = len(arrays["caches"])
        job = {"function": "step_backward", "kind": "step",
               "cases": [{"call_options": {}} for _ in range(T)]}
        run = sandbox.run(path, job, _inputs(arrays), timeout=timeout)
    footprints = variants.footprints(variants.base(kind))
    failed = _whole_run_error(run, name)
    steps = []
    for t in range(T):
        reports = run.status["cases"] if run.status else []
        error = failed or _error_line(reports[t] if t < len(reports) else {})
        if error:
            steps.append(StepVerdict(t, False, error=error))
            continue
        want, yours = _reference(arrays["out"][t]), _returned(run.outputs, t)
        wrong = sorted(n for n, w in want.items() if _disagrees(yours.get(n), w))
        steps.append(StepVerdict(t, not wrong, wrong, locate(set(wrong), footprints)))
    first = next((s for s in reversed(steps) if not s.ok), None)  # the walk goes from T-1 down
    return CheckResult(kind, name, steps, first)
