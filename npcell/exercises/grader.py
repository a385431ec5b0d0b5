"""The grader: run a student's backward in the sandbox and grade it against numerical derivatives.

For every case (a configuration of the exercise and a seeded shape (B, X, H)) the grading process

1. draws parameters, an input x_t, a state and the incoming gradients dstate, runs its OWN copy
   of the forward (npcell's reference forward of the file's variant) to make the cache;
2. sends copies of all of it to the isolated child (:mod:`npcell.exercises.sandbox`), which
   calls the student's function and sends back only arrays;
3. differentiates the forward numerically, by the complex step (exact to ~1e-15 in float64:
   no stored answers, no eps to tune), and compares every returned tensor with it
   (:mod:`~npcell.exercises.compare`): each parameter gradient, dx, dL/dh_{t-1}, dL/dc_{t-1};
4. names the student variables the wrong tensors point to and awards the rubric
   (:mod:`~npcell.exercises.rubric`: a part needs its own tensors right);
5. runs one hidden larger case with a time budget tied to the reference backward's own time
   there: a derived backward takes milliseconds, differencing the forward takes minutes
   (:func:`_derivation_check`).

Modules: :mod:`.rubric` (parts, points, the award rule), :mod:`.compare` (tensor checks, hints,
locating the variable), :mod:`.verdict` (the Grade), :mod:`.source` (a function's module
context), :mod:`.sandbox` (isolation).
"""

from __future__ import annotations

import functools
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy

from ..cells import gru, make_cell
from ..numdiff import complex_step_gradients, loss_scale
from . import finite_difference, sandbox, variants
from .catalogue import EXERCISES
from .compare import TOL, badness, compare, explain, locate
from .generator import given_source, read_header
from .rubric import Part, apply_rubric, award, default_rubric
from .source import function_source
from .verdict import Grade, TensorCheck

# (B, X, H, seed): X != H somewhere so a transposed W_kx is a shape error; B = 1 once so a
# missing batch sum still shows as a shape.
CASES = ((3, 3, 4, 0), (2, 2, 3, 1), (1, 4, 2, 2))
# The hidden case of the derivation check: ~0.5 M parameter entries, so differencing them one
# at a time is ~10^6 forwards (minutes), while a derived backward is a few matrix products.
LARGE = (4, 256, 256, 7)
BUDGET_START_S = 3.0  # the child's start-up (Python, NumPy) on a busy machine
BUDGET_FACTOR = 200  # times the reference backward's own time on the hidden case

__all__ = ["CASES", "LARGE", "TOL", "Grade", "Part", "TensorCheck", "apply_rubric",
           "default_rubric", "grade", "locate"]


def grade(exercise, path, *, variant=None, rubric=None, timeout=sandbox.TIMEOUT_S,
          memory_bytes=sandbox.MEMORY_BYTES) -> Grade:
    """Grade the student file at ``path`` on ``exercise`` (a name or an Exercise).

    ``path`` may also be the student's function itself (e.g. defined in a notebook): it is
    graded with its module context (:func:`~npcell.exercises.source.function_source`: the
    imports, helpers and constants it uses) after the exercise's given code.
    ``variant``: the variant seed (int) or :class:`~npcell.exercises.variants.Variant` of an
    LSTM-family exercise (None: the file's ``NPCELL_VARIANT``; None there: the paper's cell).
    ``rubric``: instructor points per part key.
    The file runs only in the isolated child; everything scored is computed here.
    """
    start = time.perf_counter()
    ex = EXERCISES[exercise] if isinstance(exercise, str) else exercise
    if variant is None and ex.has_variants and not callable(path) and Path(path).is_file():
        variant = read_header(path)["variant"]  # the seed the file records (read, not run)
    if ex.has_variants and not isinstance(variant, variants.Variant):
        variant = variants.base(ex.name) if variant is None else variants.draw(ex.name, variant)
    parts = apply_rubric(default_rubric(ex, variant), rubric)
    if callable(path):
        source = given_source(ex, variant) + function_source(path)
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / f"{ex.name}.py"
            file.write_text(source)
            return grade(ex, file, variant=variant, rubric=rubric, timeout=timeout,
                         memory_bytes=memory_bytes)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no exercise file at {path}")
    result = Grade(ex.name, variant.to_dict() if variant is not None else None,
                   [(p, 0.0) for p in parts], isolation=sandbox.isolation().line)
    source = path.read_text(encoding="utf-8", errors="replace")
    try:
        compile(source, path.name, "exec")  # compiling runs nothing
    except SyntaxError as err:
        code = (err.text or "").strip()
        result.status = "error"
        result.message = (f"SyntaxError on line {err.lineno} of {path.name}: {err.msg}"
                          + (f":  {code}" if code else ""))
        return _finish(result, start)
    if ex.name == "finite_difference":
        _grade_fd(ex, path, result, timeout, memory_bytes)
    else:
        _grade_steps(ex, variant, path, result, timeout, memory_bytes)
    if result.flags:
        result.status = "flagged"
        result.message = ("Flagged for your instructor, scored 0: " + "; ".join(result.flags)
                          + ".")
        result.parts = [(p, 0.0) for p, _ in result.parts]
    return _finish(result, start)


def _finish(result, start):
    result.seconds = time.perf_counter() - start
    return result


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
            _gru_label(reset_after),
            functools.partial(gru.gru_step_forward, reset_after=reset_after),
            functools.partial(gru.gru_step_backward, reset_after=reset_after), dict(options),
            functools.partial(_gru_shapes, reset_after=reset_after), ("h",), shifts,
            _gru_footprints(reset_after)))
    return problems


def _gru_label(reset_after) -> str:
    return f"gru(reset_after={reset_after})"


FORM_NAMES = {_gru_label(False): "Cho et al. (reset_after=False: r_t scales h_{t-1} before W_nh)",
              _gru_label(True): "reset_after=True (PyTorch's nn.GRU: r_t scales W_nh h_{t-1} "
                                "+ b_nh)"}


def _form_notes(forms, failing, wrong_in) -> list[str]:
    """Where an exercise is graded in two forms (the GRU's), say which one the wrong values
    come from, so a bug in one branch of the student's file is not hunted in both."""
    failing_forms = set().union(*(wrong_in[n] for n in failing)) if failing else set()
    if len(forms) < 2 or not failing_forms or failing_forms == forms:
        return []
    bad = " and ".join(FORM_NAMES.get(f, f) for f in sorted(failing_forms))
    good = " and ".join(FORM_NAMES.get(f, f) for f in sorted(forms - failing_forms))
    return [f"the wrong values come only from the {bad} form; the {good} form is right"]


def _gru_shapes(X, H, *, reset_after):
    return make_cell("gru", X, H, reset_after=reset_after).param_shapes()


def _gru_footprints(reset_after) -> dict:
    gate = {g: {f"W_{g}x", f"W_{g}h", f"b_{g}", "dx", "dh_prev"} for g in "zrn"}
    fp = {"da_z": gate["z"], "da_r": gate["r"]}
    fp["da_n"] = gate["n"] | fp["da_r"] | ({"b_nh"} if reset_after else set())
    if reset_after:  # the template's dhn = dL/d(W_nh h_{t-1} + b_nh) feeds exactly these
        fp["dhn"] = {"W_nh", "b_nh", "dh_prev"}
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


def _case_inputs(problems, shapes):
    """Sandbox inputs and job cases, and the grader's own arrays of every case."""
    inputs, job_cases, cases = {}, [], []
    for problem in problems:
        for B, X, H, seed in shapes:
            params, x, state, dstate, cache = _case_arrays(problem, B, X, H, seed)
            n = len(cases)
            for part, tree in (("params", params), ("dstate", dstate), ("cache", cache)):
                inputs |= {f"{n}.{part}.{k}": numpy.asarray(v) for k, v in tree.items()}
            job_cases.append({"call_options": problem.call_options})
            cases.append((problem, (B, X, H), params, x, state, dstate, cache))
    return inputs, job_cases, cases


def _grade_steps(ex, variant, path, result, timeout, memory_bytes):
    problems = _problems(ex, variant)
    inputs, job_cases, cases = _case_inputs(problems, CASES)
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
    checks, wrong_in = {}, {}  # wrong_in: tensor -> the forms (problems) whose cases it fails
    for n, (problem, shape, params, x, state, dstate, cache) in enumerate(cases):
        report = run.status["cases"][n] if n < len(run.status["cases"]) else {}
        line = _case_error(report, ex, path, shape)
        if line:
            result.status, result.message = "error", line
            return
        truth = _truth(problem, params, x, state, dstate)
        new_state, _ = problem.forward(params, x, state)
        scale = loss_scale([dstate[k] for k in problem.state_names],
                           [new_state[k] for k in problem.state_names])
        yours = _returned(run.outputs, n)
        shifted = [(what, _flatten(problem.solution(params, dstate, move(cache))))
                   for what, move in problem.shifts]
        for name, want in truth.items():
            check = compare(name, yours.get(name), want, shifted, report, scale)
            if not check.ok:
                wrong_in.setdefault(name, set()).add(problem.label)
            old = checks.get(name)
            if old is None or (old.ok and not check.ok) or (
                    not check.ok and badness(check) > badness(old)):
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
    result.notes += _form_notes({p.label for p in problems}, failing, wrong_in)
    result.explanations = {v: explain(v, footprints[v], checks) for v in result.wrong}
    result.parts = award([p for p, _ in result.parts], result.wrong, set(checks) - failing,
                         footprints)
    if result.score > 0:  # nothing to take away from work that earned nothing
        _derivation_check(ex, problems, path, result, memory_bytes, set(checks) - failing)


def _derivation_check(ex, problems, path, result, memory_bytes, right):
    """Run the hidden larger case with a budget tied to the reference backward's time there;
    a backward that differences the forward cannot finish in it. Flags on timeout, and when a
    tensor ``right`` on the small cases is wrong there (answers that depend on the case)."""
    inputs, job_cases, cases = _case_inputs(problems, (LARGE,))
    start = time.perf_counter()
    reference = [_flatten(problem.solution(params, dstate, cache))
                 for problem, _, params, _, _, dstate, cache in cases]
    own = time.perf_counter() - start
    budget = BUDGET_START_S + BUDGET_FACTOR * own
    run = sandbox.run(path, {"function": ex.function, "kind": "step", "cases": job_cases},
                      inputs, timeout=budget, memory_bytes=memory_bytes)
    shape = ", ".join(map(str, LARGE[:3]))
    if run.timed_out:
        result.flags.append(
            f"on a hidden larger case ((B, X, H) = ({shape})) your {ex.function} did not finish "
            f"in {budget:.1f} s; the reference backward takes {own * 1000:.0f} ms there. That is "
            "the cost of differencing the forward numerically, which is not the derivation this "
            "exercise asks for, so the derivation parts get no credit. Write the backward out "
            "with the chain rule (the docs explain how)")
        return
    reports = (run.status or {}).get("cases") or [{}]
    for n, want in enumerate(reference):
        yours = _returned(run.outputs, n)
        if reports[min(n, len(reports) - 1)].get("error") or any(
                name not in yours or yours[name].shape != numpy.shape(value)
                or not numpy.allclose(yours[name], value, rtol=1e-6, atol=1e-9)
                for name, value in want.items() if name in right):
            result.flags.append(f"its results on a hidden larger case ((B, X, H) = ({shape})) "
                                "differ from the right ones although the small cases are right")
            return


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
    # leaving x unchanged is credit only beside at least one right gradient (a function that
    # returns zeros without touching x shows nothing)
    any_right = any(r.ok for r in rows[:-1])
    result.parts = [(p, 0.0 if p.variables[0] in result.wrong or not any_right else p.points)
                    for p, _ in result.parts]
