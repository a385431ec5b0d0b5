"""The grader: run a student's backward in the sandbox and grade it against numerical derivatives.

For every case (a configuration of the exercise and a seeded shape (B, X, H)) the grading process

1. draws parameters, an input x_t, a state and the incoming gradients dstate, runs its OWN copy
   of the forward (npcell's reference forward of the file's variant) to make the cache;
2. sends copies of all of it to the sandboxed child (:mod:`npcell.exercises.sandbox`), which
   calls the student's function and sends back only arrays;
3. differentiates the forward numerically, by the complex step (exact to ~1e-15 in float64:
   no stored answers, no eps to tune), and compares every returned tensor with it: each
   parameter gradient, dx, dL/dh_{t-1} and dL/dc_{t-1}.

A wrong variable of the student's makes exactly the tensors it feeds wrong (its *footprint*,
:func:`npcell.exercises.variants.footprints`), so the set of wrong tensors names the variable:
wrong W_fx, W_fh, b_f, dx and dh_prev is ``da_f``; wrong everything of gates i, f, g and dc_prev
is ``dc``. The score is a rubric: points per part of the backward, lost only for the parts whose
variables are wrong, not for every tensor a wrong variable leaks into. Pattern hints (constant
factor, sign, transpose, off by one step, NaN) appear only when the numbers fit them.
"""

from __future__ import annotations

import ast
import functools
import inspect
import math
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy

from ..cells import gru, make_cell
from ..gradcheck import _shape_hint, complex_step_gradients, relative_error
from . import finite_difference, sandbox, variants
from .catalogue import EXERCISES
from .generator import given_source, read_header

# (B, X, H, seed): X != H somewhere so a transposed W_kx is a shape error; B = 1 once so a
# missing batch sum still shows as a shape.
CASES = ((3, 3, 4, 0), (2, 2, 3, 1), (1, 4, 2, 2))
TOL = 1e-7  # relative error of a right answer is ~1e-15 (complex step vs float64 algebra)
FLOOR = 1e-6  # denominator floor of the relative error
_SUMS = ("dx", "dh_prev", "dc_prev")  # returned tensors that sum terms of several variables
FORBIDDEN_CALLS = ("__import__", "exec", "eval", "compile", "importlib")


@dataclass(frozen=True)
class Part:
    """One rubric line: what it is, its points, and the student variables it covers."""

    key: str
    title: str
    points: float
    variables: tuple


def default_rubric(exercise, variant=None) -> list[Part]:
    """The parts of an exercise's backward and their points (sum 100)."""
    if exercise.name == "finite_difference":
        names = [c.name for c in finite_difference.known_gradient_cases(0)]
        parts = [Part(f"test{n}", name, 16.0, (name,)) for n, name in enumerate(names)]
        return parts + [Part("restores_x", "x unchanged after the call", 20.0,
                             ("x unchanged after the call",))]
    if exercise.name == "gru":
        return [Part("update_gate", "update gate: da_z", 20, ("da_z",)),
                Part("reset_gate", "reset gate: da_r", 20, ("da_r",)),
                Part("candidate", "candidate: da_n", 20, ("da_n",)),
                Part("dh_prev", "dL/dh_{t-1}: dh_prev", 15, ("dh_prev",)),
                Part("weights", "parameter gradients", 15, ("*",)),
                Part("dx", "dL/dx_t: dx", 10, ("dx",))]
    v = variant or variants.base(exercise.name)
    reads = bool(v.reads)
    parts = [Part("output_gate", "output gate: da_o", 15, ("da_o",)),
             Part("dc", "dL/dc_t: dc", 15, ("dc",)),
             Part("input_gate", "input gate: da_i", 20 if v.coupled else 10, ("da_i",))]
    if not v.coupled:
        parts.append(Part("forget_gate", "forget gate: da_f", 10, ("da_f",)))
    parts += [Part("candidate", "candidate: da_g", 10, ("da_g",)),
              Part("carry", "carry: dc_prev", 10, ("dc_prev",))]
    if reads:
        cell_lines = tuple(f"d{n}" for n in v.param_shapes(1, 1) if n[-1] == "c")
        parts.append(Part("cell_reads", "cell reads: dz_i, dz_f, dz_o and their weights", 10,
                          ("dz_i", "dz_f", "dz_o", *cell_lines)))
    parts += [Part("weights", "parameter gradients: dW_kx, dW_kh, db_k", 15 if reads else 20,
                   ("*",)),
              Part("dx_dh_prev", "dx and dh_prev", 5 if reads else 10, ("dx", "dh_prev"))]
    return parts


def apply_rubric(parts, overrides) -> list[Part]:
    """Instructor points per part key: ``{"dc": 30, ...}``; unknown keys are an error."""
    if not overrides:
        return parts
    keys = [p.key for p in parts]
    unknown = [k for k in overrides if k not in keys]
    if unknown:
        raise ValueError(f"rubric names unknown parts {unknown}; this exercise's parts: {keys}")
    for key, points in overrides.items():
        if isinstance(points, bool) or not isinstance(points, (int, float)) or points < 0:
            raise ValueError(f"rubric points of {key!r} must be a number >= 0; got {points!r}")
    return [Part(p.key, p.title, float(overrides.get(p.key, p.points)), p.variables)
            for p in parts]


# ============================================================================================
# The grade
# ============================================================================================
@dataclass
class TensorCheck:
    """One returned tensor, worst over the cases."""

    name: str
    ok: bool
    rel_error: float = 0.0
    problem: str = ""  # missing, wrong shape, not finite, not an array
    index: tuple | None = None
    yours: float = math.nan
    expected: float = math.nan
    signature: str = ""  # a pattern hint that fits (constant factor, transpose, shift, ...)


@dataclass
class Grade:
    """The grader's verdict. ``str(grade)`` is the feedback a student reads."""

    exercise: str
    variant: dict | None
    parts: list  # (Part, earned points)
    status: str = "graded"  # graded | error | flagged
    message: str = ""  # the one line for errors and flags
    wrong: list = field(default_factory=list)  # student variables located as wrong
    explanations: dict = field(default_factory=dict)  # variable -> lines of feedback
    tensors: dict = field(default_factory=dict)  # name -> TensorCheck
    notes: list = field(default_factory=list)
    flags: list = field(default_factory=list)
    warnings: list = field(default_factory=list)  # shown first: e.g. a variant mismatch
    output: str = ""  # what the student's code printed (not a grade)
    seconds: float = 0.0
    cases: tuple = ()

    @property
    def score(self) -> float:
        return round(sum(earned for _, earned in self.parts), 2)

    @property
    def max_score(self) -> float:
        return round(sum(part.points for part, _ in self.parts), 2)

    @property
    def passed(self) -> bool:
        return self.status == "graded" and not self.wrong and self.score == self.max_score

    def failed_tensors(self) -> list[str]:
        return [n for n, t in self.tensors.items() if not t.ok]

    def to_dict(self) -> dict:
        return {
            "exercise": self.exercise, "variant": self.variant, "status": self.status,
            "score": self.score, "max_score": self.max_score, "passed": self.passed,
            "message": self.message, "wrong_variables": list(self.wrong),
            "parts": [{"key": p.key, "title": p.title, "points": p.points, "earned": e,
                       "variables": list(p.variables)} for p, e in self.parts],
            "failed_tensors": self.failed_tensors(),
            "tensors": {n: {"ok": t.ok, "rel_error": _finite(t.rel_error), "problem": t.problem,
                            "index": list(t.index) if t.index is not None else None,
                            "yours": _finite(t.yours), "expected": _finite(t.expected),
                            "hint": t.signature} for n, t in self.tensors.items()},
            "notes": list(self.notes), "flags": list(self.flags),
            "warnings": list(self.warnings), "output": self.output,
            "seconds": round(self.seconds, 3), "feedback": str(self),
        }

    def part_feedback(self, part) -> str:
        """What to tell the student about one rubric part."""
        all_parts = [p for p, _ in self.parts]
        wrong = [v for v in self.wrong if _owns(part, v, all_parts)]
        if self.status != "graded":
            return self.message
        if not wrong:
            return "correct"
        return "\n".join(line for v in wrong for line in self.explanations.get(v, [v]))

    def __str__(self) -> str:
        name = self.exercise
        if self.variant is not None:
            seed = self.variant.get("seed")
            name += " (the paper's cell)" if seed is None else f" (variant {seed})"
        lines = [f"npcell exercise {name}: {self.score:g}/{self.max_score:g}"
                 + ("  PASS" if self.passed else "")]
        for warning in self.warnings:
            lines += ["", "Warning: " + warning]
        if self.status != "graded":
            lines += ["", self.message]
        lines.append("")
        width = max(len(p.title) for p, _ in self.parts)
        all_parts = [p for p, _ in self.parts]
        for part, earned in self.parts:
            where = [v for v in self.wrong if _owns(part, v, all_parts)]
            mark = f"   <- {', '.join(where)}" if where and self.status == "graded" else ""
            lines.append(f"  {part.title:<{width}}  {earned:>3g}/{part.points:g}{mark}")
        for variable in self.wrong:
            lines += [""] + self.explanations.get(variable, [variable])
        if self.passed:
            lines += ["", "Every returned tensor matches the numerical derivative of the forward "
                          "to float64 round-off. Well done."]
        for note in self.notes:
            lines += ["", "Note: " + note]
        if self.output.strip():
            shown = "\n".join("  | " + ln for ln in self.output.strip().splitlines()[:12])
            lines += ["", "What your code printed (shown for debugging; it is not a grade):",
                      shown]
        if self.cases:
            shapes = ", ".join(f"({b}, {x}, {h})" for b, x, h in self.cases)
            lines += ["", f"Graded in {self.seconds:.2f} s on {len(self.cases)} random cases "
                          f"(B, X, H) = {shapes} against complex-step derivatives of the forward."]
        return "\n".join(lines)


def _finite(value):
    return float(value) if value is not None and math.isfinite(value) else None


def _owns(part, variable, parts) -> bool:
    """Whether ``variable`` belongs to ``part``: named by it, or the part is the catch-all
    ('*': every line no other part names, e.g. the single parameter-gradient lines)."""
    if variable in part.variables:
        return True
    explicit = {v for p in parts if "*" not in p.variables for v in p.variables}
    return "*" in part.variables and variable not in explicit


# ============================================================================================
# Grading
# ============================================================================================
def grade(exercise, path, *, variant=None, rubric=None, timeout=sandbox.TIMEOUT_S,
          memory_bytes=sandbox.MEMORY_BYTES) -> Grade:
    """Grade the student file at ``path`` on ``exercise`` (a name or an Exercise).

    ``path`` may also be the student's function itself (e.g. defined in a notebook): its source
    is written after the exercise's given code into a temporary file, graded the same way.
    ``variant``: the variant seed (int) or :class:`~npcell.exercises.variants.Variant` of an
    LSTM-family exercise (None: the file's ``NPCELL_VARIANT``; None there: the paper's cell).
    ``rubric``: instructor points per part key.
    The file runs only in a sandboxed child process; everything scored is computed here.
    """
    start = time.perf_counter()
    ex = EXERCISES[exercise] if isinstance(exercise, str) else exercise
    if variant is None and ex.has_variants and not callable(path) and Path(path).is_file():
        variant = read_header(path)["variant"]  # the seed the file records (read, not run)
    if ex.has_variants and not isinstance(variant, variants.Variant):
        variant = variants.base(ex.name) if variant is None else variants.draw(ex.name, variant)
    parts = apply_rubric(default_rubric(ex, variant), rubric)
    if callable(path):
        source = given_source(ex, variant) + inspect.getsource(path)
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / f"{ex.name}.py"
            file.write_text(source)
            return grade(ex, file, variant=variant, rubric=rubric, timeout=timeout,
                         memory_bytes=memory_bytes)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no exercise file at {path}")
    result = Grade(ex.name, variant.to_dict() if variant is not None else None,
                   [(p, 0.0) for p in parts])
    source = path.read_text(encoding="utf-8", errors="replace")
    try:
        compile(source, path.name, "exec")  # compiling runs nothing
    except SyntaxError as err:
        code = (err.text or "").strip()
        result.status = "error"
        result.message = (f"SyntaxError on line {err.lineno} of {path.name}: {err.msg}"
                          + (f":  {code}" if code else ""))
        return _finish(result, start)
    result.flags = _static_flags(source, ex)
    if ex.name == "finite_difference":
        _grade_fd(ex, path, result, timeout, memory_bytes)
    else:
        _grade_steps(ex, variant, path, result, timeout, memory_bytes)
    if result.flags:
        result.status = "flagged"
        result.message = ("Flagged for your instructor, scored 0: " + "; ".join(result.flags)
                          + ". Solve the exercise without npcell's own backward.")
        result.parts = [(p, 0.0) for p, _ in result.parts]
    return _finish(result, start)


def _finish(result, start):
    result.seconds = time.perf_counter() - start
    return result


def _static_flags(source, ex) -> list[str]:
    """What the file imports from npcell or how it loads code dynamically, and whether the
    function to write calls the forward (a numerical gradient instead of the derivation).
    The file is read, not run."""
    flags = []
    tree = ast.parse(source)
    forwards = {"step_forward", "gru_step_forward"}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == ex.function:
            calls = {c.func.id for c in ast.walk(node) if isinstance(c, ast.Call)
                     and isinstance(c.func, ast.Name)}
            if calls & forwards and ex.name != "finite_difference":
                flags.append(f"{ex.function} calls {sorted(calls & forwards)[0]} (a numerical "
                             "gradient of the forward instead of the backward)")
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            if name.split(".")[0] == "npcell":
                flags.append(f"it imports {name} (npcell's reference code)")
            if name.split(".")[0] == "importlib":
                flags.append("it imports importlib (loading code by name)")
        if isinstance(node, ast.Name) and node.id in FORBIDDEN_CALLS:
            flags.append(f"it uses {node.id} (running code built at run time)")
    return sorted(set(flags))


# ----- the LSTM family and the GRU -----------------------------------------------------------
@dataclass
class _Problem:
    label: str
    forward: object  # (params, x_t, state) -> (state, cache): the grader's own forward
    solution: object  # (params, dstate, cache) -> outputs: only for the pattern hints
    call_options: dict
    param_shapes: object  # (X, H) -> {name: shape}
    state_names: tuple
    shifts: tuple  # (what it looks like, cache -> shifted cache)
    footprints: dict


def _problems(ex, variant) -> list[_Problem]:
    if ex.has_variants:
        ns = {"numpy": numpy}
        source = (variants.helpers_source(variant) + variants.forward_source(variant)
                  + variants.backward_source(variant))
        exec(compile(source, f"<npcell {ex.name} variant>", "exec"), ns)  # noqa: S102 - ours
        shifts = (("uses h_t where h_{t-1} belongs (off by one step)",
                   lambda k: {**k, "h_prev": k["o"] * k["tanh_c"]}),
                  ("uses c_t where c_{t-1} belongs (off by one step)",
                   lambda k: {**k, "c_prev": k["c"]}),
                  ("uses c_{t-1} where c_t belongs (off by one step: the o-gate reads c_t)",
                   lambda k: {**k, "c": k["c_prev"]}))
        return [_Problem(ex.name, ns["step_forward"], ns["step_backward"], {},
                         variant.param_shapes, ("h", "c"), shifts, variants.footprints(variant))]
    problems = []
    for options in ex.configs:
        reset_after = options["reset_after"]
        shifts = (("uses h_t where h_{t-1} belongs (off by one step)",
                   lambda k: {**k, "h_prev": (1 - k["z"]) * k["n"] + k["z"] * k["h_prev"]}),)
        if not reset_after:
            shifts += (("pairs with h_{t-1} where W_nh reads r_t * h_{t-1}",
                        lambda k: {**k, "rh": k["h_prev"]}),)
        problems.append(_Problem(
            f"gru(reset_after={reset_after})",
            functools.partial(gru.gru_step_forward, reset_after=reset_after),
            functools.partial(gru.gru_step_backward, reset_after=reset_after), dict(options),
            functools.partial(_gru_shapes, reset_after=reset_after), ("h",), shifts,
            _gru_footprints(reset_after)))
    return problems


def _gru_shapes(X, H, *, reset_after):
    return make_cell("gru", X, H, reset_after=reset_after).param_shapes()


def _gru_footprints(reset_after) -> dict:
    gate = {g: {f"W_{g}x", f"W_{g}h", f"b_{g}", "dx", "dh_prev"} for g in "zrn"}
    fp = {"da_z": gate["z"], "da_r": gate["r"]}
    fp["da_n"] = gate["n"] | fp["da_r"] | ({"b_nh"} if reset_after else set())
    fp["dh_prev"], fp["dx"] = {"dh_prev"}, {"dx"}
    fp["dW_kx"] = {f"W_{g}x" for g in "zrn"}
    fp["db_k"] = {f"b_{g}" for g in "zrn"}
    for name in _gru_shapes(1, 1, reset_after=True):
        fp.setdefault("d" + name, {name})
    return fp


def _case_arrays(problem, B, X, H, seed):
    """Parameters, input, state, dstate and cache of one case (the grader's own forward)."""
    rng = numpy.random.default_rng(10_000 + seed)
    params = {n: (0.3 if n.startswith("b_") else 0.6) * rng.standard_normal(s)
              for n, s in problem.param_shapes(X, H).items()}
    x = rng.standard_normal((B, X))
    state = {n: 0.7 * rng.standard_normal((B, H)) for n in problem.state_names}
    dstate = {n: rng.standard_normal((B, H)) for n in problem.state_names}
    _, cache = problem.forward(params, x, state)
    return params, x, state, dstate, cache


def _truth(problem, params, x, state, dstate):
    """Every returned tensor's true value: complex-step derivatives of the forward."""
    arrays = {**params, "dx": x, **{f"d{n}_prev": state[n] for n in problem.state_names}}

    def loss(a):
        new_state, _ = problem.forward({n: a[n] for n in params}, a["dx"],
                                       {n: a[f"d{n}_prev"] for n in problem.state_names})
        return sum((dstate[n] * new_state[n]).sum() for n in problem.state_names)

    return complex_step_gradients(loss, arrays)


def _flatten(outputs):
    """The solution's (grads, dx, dstate_prev) as {tensor name: array}."""
    grads, dx, dprev = outputs
    return {**grads, "dx": dx, **{f"d{n}_prev": v for n, v in dprev.items()}}


def _grade_steps(ex, variant, path, result, timeout, memory_bytes):
    problems = _problems(ex, variant)
    inputs, job_cases, cases = {}, [], []
    for problem in problems:
        for B, X, H, seed in CASES:
            params, x, state, dstate, cache = _case_arrays(problem, B, X, H, seed)
            n = len(cases)
            for part, tree in (("params", params), ("dstate", dstate), ("cache", cache)):
                inputs |= {f"{n}.{part}.{k}": numpy.asarray(v) for k, v in tree.items()}
            job_cases.append({"call_options": problem.call_options})
            cases.append((problem, (B, X, H), params, x, state, dstate, cache))
    run = sandbox.run(path, {"function": ex.function, "kind": "step", "cases": job_cases},
                      inputs, timeout=timeout, memory_bytes=memory_bytes)
    result.output = (run.stdout + run.stderr).strip()
    result.cases = tuple(dict.fromkeys(c[1] for c in cases))
    if not _child_ok(run, ex, path, result):
        return
    for report in run.status["cases"]:
        if report.get("mutated"):
            names = ", ".join(sorted(set(report["mutated"])))
            result.notes = [f"your {ex.function} modifies its arguments in place ({names}). It "
                            "got copies, so this cost nothing here, but in npcell the caller's "
                            "arrays would change: copy before you add to them."]
            break
    checks = {}
    for n, (problem, shape, params, x, state, dstate, cache) in enumerate(cases):
        report = run.status["cases"][n] if n < len(run.status["cases"]) else {}
        line = _case_error(report, ex, path, shape)
        if line:
            result.status, result.message = "error", line
            return
        truth = _truth(problem, params, x, state, dstate)
        yours = _returned(run.outputs, n)
        shifted = [(what, _flatten(problem.solution(params, dstate, move(cache))))
                   for what, move in problem.shifts]
        for name, want in truth.items():
            check = _compare(name, yours.get(name), want, shifted, report)
            old = checks.get(name)
            if old is None or (old.ok and not check.ok) or (
                    not check.ok and _badness(check) > _badness(old)):
                checks[name] = check
        extra = sorted(set(report.get("grads_keys", ())) - set(params))
        if extra and not any("unexpected" in note for note in result.notes):
            result.notes.append(f"grads has unexpected keys {extra} (this cell has no such "
                                "parameters); they were ignored.")
    result.tensors = dict(sorted(checks.items(), key=lambda kv: kv[1].ok))
    failing = {n for n, c in checks.items() if not c.ok}
    footprints = {}
    for problem in problems:
        for v, fp in problem.footprints.items():
            footprints[v] = footprints.get(v, set()) | (fp & set(checks))
    result.wrong = locate(failing, footprints)
    result.explanations = {v: _explain(v, footprints[v], checks) for v in result.wrong}
    _score(result)


def _child_ok(run, ex, path, result) -> bool:
    """False (and the one line) when the child could not run the function at all."""
    if run.timed_out:
        result.status = "error"
        result.message = (f"Grading stopped after {run.timeout:g} s: your code ran too long (an "
                          "infinite loop, or a loop that waits for input?).")
        return False
    if run.status is None:
        killed = run.returncode is not None and run.returncode < 0
        result.status = "error"
        if killed:
            result.message = (f"Your code was stopped by signal {-run.returncode} (more than "
                              f"{(run.memory_bytes or 0) // 2**20} MiB of memory, or too much "
                              "output?) before grading finished.")
        else:
            result.message = (f"Your file ended the grading process (exit status "
                              f"{run.returncode}: os._exit() or a crash) before it was graded; "
                              "remove any exit calls.")
        return False
    for name in run.status.get("npcell_imports") or ():  # refused in the child, flagged here
        result.flags.append(f"it imports {name} at run time (npcell's reference code; refused "
                            "in the sandbox)")
    error = run.status.get("load_error")
    if error:
        result.status = "error"
        result.message = _load_line(error, ex, path)
        return False
    return True


def _load_line(error, ex, path) -> str:
    where = f" on line {error['line']} of {path.name}" if error.get("line") else ""
    code = f":  {error['code'].strip()}" if error.get("code") else ""
    if error["type"] == "missing_function":
        return f"{path.name} defines no function {ex.function}(); keep its name and signature."
    if error["type"] == "SystemExit":
        return (f"Your file calls exit(){where} when it is loaded ({error['message']}); remove "
                "it: the grader imports your file and calls your function.")
    if error["type"] == "SyntaxError":
        return f"SyntaxError{where}: {error['message']}{code}"
    return f"Your file raised {error['type']}{where} when it was loaded: {error['message']}{code}"


def _case_error(report, ex, path, shape) -> str:
    """The one line for a case whose call raised or returned the wrong structure, else ''."""
    fn = ex.function
    err = report.get("error") if report else {"type": "missing", "message": "", "line": None}
    if err:
        if err["type"] == "NotImplementedError":
            return (f"{fn} is not implemented yet: replace the raise NotImplementedError lines "
                    "with your code.")
        where = f" on line {err['line']}" if err.get("line") else ""
        code = f":  {err['code'].strip()}" if err.get("code") else ""
        if err["type"] == "SystemExit":
            return f"{fn} called exit(){where}; a backward returns its gradients instead."
        return (f"{fn} raised {err['type']}{where} (B, X, H = {shape}): "
                f"{err['message']}{code}")
    if report.get("structure"):
        return f"{fn} {report['structure']}"
    return ""


def _returned(outputs, n) -> dict:
    out = {}
    for key, value in outputs.items():
        case, _, rest = key.partition(".")
        if case != str(n):
            continue
        if rest == "dx":
            out["dx"] = value
        elif rest.startswith("grads."):
            out[rest[6:]] = value
        elif rest.startswith("dstate_prev."):
            out[f"d{rest[12:]}_prev"] = value
    return out


def _label(name) -> str:
    return name if name in ("dx", "dh_prev", "dc_prev") else f"grads['{name}']"


def _compare(name, yours, want, shifted, report) -> TensorCheck:
    if yours is None:
        if any(name in s for s in report.get("not_arrays", []) or ()):
            return TensorCheck(name, False, math.inf, "is not an array of numbers")
        return TensorCheck(name, False, math.inf, "is missing from what you return")
    if yours.shape != want.shape:
        # _shape_hint gives " (why?)" or "": used as is, so its own parentheses stay balanced
        return TensorCheck(name, False, math.inf, f"has shape {yours.shape}, expected "
                           f"{want.shape}{_shape_hint(yours.shape, want.shape)}")
    bad = ~numpy.isfinite(yours)
    if bad.any():
        index = tuple(int(i) for i in numpy.argwhere(bad)[0])
        kind = "NaN" if numpy.isnan(yours[index]) else "infinite"
        return TensorCheck(name, False, math.inf, f"is {kind} at {list(index)}", index)
    rel = relative_error(yours, want, FLOOR) if yours.size else numpy.zeros(0)
    worst = float(rel.max(initial=0.0))
    index = tuple(int(i) for i in numpy.unravel_index(int(numpy.argmax(rel)), rel.shape)) \
        if rel.size else None
    check = TensorCheck(name, worst <= TOL, worst, "", index,
                        float(yours[index]) if index is not None else 0.0,
                        float(want[index]) if index is not None else 0.0)
    if not check.ok:
        check.signature = _signature(yours, want, shifted, name)
    return check


def _badness(check):
    return math.inf if check.problem else check.rel_error


def _close(a, b):
    return a.shape == b.shape and bool(numpy.all(relative_error(a, b, FLOOR) <= 1e-6))


def _signature(yours, want, shifted, name) -> str:
    """A pattern that fits the numbers exactly, or ''."""
    if _close(yours, -want):
        return "has the wrong sign"
    nz = numpy.abs(want) > 1e-3
    if nz.sum() >= 2:
        ratio = yours[nz] / want[nz]
        if numpy.allclose(ratio, ratio[0], rtol=1e-6) and abs(ratio[0] - 1) > 1e-6:
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


def _explain(variable, footprint, checks) -> list[str]:
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


def _score(result):
    """Earned points: a part is lost only when one of its own variables is wrong."""
    parts = [p for p, _ in result.parts]
    result.parts = [(p, 0.0 if any(_owns(p, v, parts) for v in result.wrong) else p.points)
                    for p in parts]


# ----- finite differences ------------------------------------------------------------------------
def _grade_fd(ex, path, result, timeout, memory_bytes):
    seed = 0
    cases = finite_difference.known_gradient_cases(seed)
    inputs = {f"{n}.x.x": case.x for n, case in enumerate(cases)}
    for n, case in enumerate(cases):
        inputs.update({f"{n}.a.{name}": a for name, a in case.arrays.items()})
    job = {"function": ex.function, "kind": "fd",
           "cases": [{"name": c.name, "kind": c.kind, "eps": c.eps} for c in cases],
           "step_source": finite_difference.lstm_step_source()}
    run = sandbox.run(path, job, inputs, timeout=timeout, memory_bytes=memory_bytes)
    result.output = (run.stdout + run.stderr).strip()
    if not _child_ok(run, ex, path, result):
        return
    reports = run.status["cases"]
    for report in reports:
        if report.get("error") and report["error"]["type"] == "NotImplementedError":
            result.status = "error"
            result.message = _case_error(report, ex, path, None)
            return
    results = []
    for n, case in enumerate(cases):
        report = reports[n] if n < len(reports) else {"error": {"type": "missing"}}
        error = report.get("error")
        results.append((case.name, case.analytic, case.eps, run.outputs.get(f"{n}.numeric"),
                        None if not error else f"raised {error['type']}: {error.get('message')}",
                        bool(report.get("x_changed"))))
    rows = finite_difference.rows_from_results(results)
    result.tensors = {r.name: TensorCheck(r.name, r.ok, r.max_rel_error, "", None, r.numeric,
                                          r.analytic, r.hint) for r in rows}
    result.wrong = [r.name for r in rows if not r.ok]
    result.explanations = {r.name: [f"Test failed: {r.name}: {r.hint or 'wrong values'}."]
                           for r in rows if not r.ok}
    result.parts = [(p, 0.0 if p.variables[0] in result.wrong else p.points)
                    for p, _ in result.parts]
