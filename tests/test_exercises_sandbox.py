"""The grader never trusts the submission (DESIGN section 9): each adversarial file gets 0 or a
flag, with one line a student understands, and never hangs or crashes the grader."""

import json
import time

import numpy as np
import pytest

from npcell import exercises, numdiff
from npcell.cli import main
from npcell.errors import ConfigError
from npcell.exercises import EXERCISES, grader, sandbox

FAKE = "npcell exercise lstm (the paper's cell): 100/100  PASS"


def _student(tmp_path, extra="", *, name="lstm", at_import=True, solution=False):
    """The student (or solution) file with ``extra`` code at import or inside the function."""
    ex = EXERCISES[name]
    text = (exercises.solution_source if solution else exercises.student_source)(ex)
    if at_import:
        text = text + "\n" + extra + "\n"
    else:
        text = text.replace('    dh = dstate["h"]\n', '    dh = dstate["h"]\n' + extra + "\n", 1)
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    return path


def test_fake_output_and_sys_exit_at_import_scores_zero(tmp_path, capsys):
    path = _student(tmp_path, f"print({FAKE!r})\nimport sys\nsys.exit(0)", solution=True)
    grade = exercises.grade("lstm", path)
    assert grade.score == 0 and grade.status == "error"
    assert "calls exit()" in grade.message
    assert FAKE in grade.output  # shown, labelled as printed output, not read as a grade
    assert "it is not a grade" in str(grade)
    assert main(["exercises", "check", str(path)]) == 2
    out = tmp_path / "r.json"
    assert main(["exercises", "check", str(path), "--format", "gradescope", "--out",
                 str(out)]) == 0
    assert json.loads(out.read_text())["score"] == 0


def test_sys_exit_inside_the_function_scores_zero(tmp_path):
    grade = exercises.grade("lstm", _student(tmp_path, "    raise SystemExit(0)",
                                             at_import=False, solution=True))
    assert grade.score == 0 and "called exit()" in grade.message


def test_os_exit_scores_zero(tmp_path):
    path = _student(tmp_path, f"import os\nprint({FAKE!r}, flush=True)\nos._exit(0)",
                    solution=True)
    grade = exercises.grade("lstm", path)
    assert grade.score == 0 and "ended the grading process" in grade.message


def test_infinite_loop_is_stopped(tmp_path):
    path = _student(tmp_path, "    while True:\n        pass", at_import=False, solution=True)
    start = time.perf_counter()
    grade = exercises.grade("lstm", path, timeout=2)
    assert time.perf_counter() - start < 10
    assert grade.score == 0 and "stopped after 2 s" in grade.message


def test_memory_hog_is_stopped(tmp_path):
    path = _student(tmp_path, "    hog = bytearray(8 * 1024**3)", at_import=False, solution=True)
    grade = exercises.grade("lstm", path, memory_bytes=1024**3)
    assert grade.score == 0 and grade.status == "error"
    assert "MemoryError" in grade.message or "memory" in grade.message


def test_syntax_error_is_one_line_and_json_is_still_written(tmp_path, capsys):
    path = tmp_path / "lstm.py"
    path.write_text(exercises.solution_source(EXERCISES["lstm"]).replace(
        'dc_prev = dc * k["f"]', 'dc_prev = dc * k["f"'))
    grade = exercises.grade("lstm", path)
    assert grade.score == 0 and grade.message.startswith("SyntaxError on line ")
    assert "\n" not in grade.message and "lstm.py" in grade.message
    assert main(["exercises", "check", str(path), "--format", "json"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "error" and data["score"] == 0


def test_import_error_and_exception_are_graded_results(tmp_path):
    grade = exercises.grade("lstm", _student(tmp_path, "import no_such_module_xyz"))
    assert grade.score == 0 and "ModuleNotFoundError" in grade.message
    grade = exercises.grade("lstm", _student(tmp_path, '    raise KeyError("W_zz")',
                                             at_import=False, solution=True))
    assert grade.score == 0 and "KeyError" in grade.message and "line" in grade.message


def test_wrong_return_structure_and_missing_function(tmp_path):
    grade = exercises.grade("lstm", _student(tmp_path, "    return [1, 2]", at_import=False,
                                             solution=True))
    assert grade.score == 0 and "not (grads, dx, dstate_prev)" in grade.message
    path = tmp_path / "lstm.py"
    path.write_text("import numpy\n")
    grade = exercises.grade("lstm", path)
    assert grade.score == 0 and "defines no function step_backward" in grade.message


def test_importing_the_reference_is_flagged(tmp_path):
    path = _student(tmp_path, "from npcell.cells.lstm import lstm_step_backward\n"
                              "step_backward = lstm_step_backward")
    grade = exercises.grade("lstm", path)
    assert grade.status == "flagged" and grade.score == 0
    assert "it imports npcell at run time" in grade.message
    path = _student(tmp_path, "m = __import__('npcell.cells.lstm', fromlist=['x'])\n"
                              "step_backward = m.lstm_step_backward")
    assert exercises.grade("lstm", path).status == "flagged"


# spelled so that no reading of the file's text could see it
DYNAMIC_IMPORT = ("import builtins\n"
                  "_load = getattr(builtins, '__imp' + 'ort__')\n"
                  "_ref = _load('npc' + 'ell.cells.wmc', fromlist=['wmc_step_backward'])\n")


def test_a_dynamically_built_import_of_npcell_is_refused_in_the_child_and_flagged(tmp_path):
    text = (exercises.student_source(EXERCISES["wmc"]).split("# ---- your task")[0]
            + "def step_backward(params, dstate, cache):\n"
            + "".join("    " + line + "\n" for line in DYNAMIC_IMPORT.splitlines())
            + "    return _ref.wmc_step_backward(params, dstate, cache)\n")
    path = tmp_path / "wmc.py"
    path.write_text(text)
    grade = exercises.grade("wmc", path)
    assert grade.status == "flagged" and grade.score == 0
    assert "imports npcell at run time" in grade.message and "refused" in grade.message
    # at import time too, and importlib.import_module (with a built name) is refused the same way
    path = _student(tmp_path, DYNAMIC_IMPORT, solution=True)
    assert "imports npcell at run time" in exercises.grade("lstm", path).message


def test_npcell_is_not_importable_in_the_child_even_unflagged(tmp_path):
    # the file reports what it sees; it is graded normally (the solution), with the report as
    # its printed output: npcell absent from sys.modules and refused, no npcell folder on sys.path
    probe = ("import sys, builtins, os\n"
             "try:\n    getattr(builtins, '__imp' + 'ort__')('npc' + 'ell')\n"
             "    print('REACHED')\nexcept ImportError as err:\n    print('REFUSED', err)\n"
             "print('MODULES', [m for m in sys.modules if m.startswith('npc' + 'ell')])\n"
             "print('PATHS', [p for p in sys.path if os.path.isfile("
             "os.path.join(p, 'npc' + 'ell', 'exercises', 'grader.py'))])\n")
    path = _student(tmp_path, probe, solution=True)
    grade = exercises.grade("lstm", path)
    assert "REFUSED" in grade.output and "REACHED" not in grade.output
    assert "MODULES []" in grade.output
    assert grade.status == "flagged"  # the attempt itself is what the instructor sees


def test_the_finite_difference_functions_lead_nowhere_near_npcell(tmp_path):
    # f is built in the child from fd_functions.py (NumPy only): its globals hold no reference
    # solution and no npcell; a dynamically built import of npcell's reference is refused
    peek = ("    print('GLOBALS', sorted(k for k in f.__globals__ if not k.startswith('__')))\n"
            "    print('HAS', 'numerical_gradient' in f.__globals__)\n")
    text = exercises.solution_source(EXERCISES["finite_difference"]).replace(
        "    ### BEGIN SOLUTION\n", "    ### BEGIN SOLUTION\n" + peek, 1)
    path = tmp_path / "finite_difference.py"
    path.write_text(text)
    grade = exercises.grade("finite_difference", path)
    assert grade.passed and "GLOBALS ['make', 'numpy']" in grade.output
    assert "HAS True" not in grade.output
    cheat = ("def numerical_gradient(f, x, eps=1e-5):\n"
             + "".join("    " + line + "\n" for line in DYNAMIC_IMPORT.replace(
                 "cells.wmc", "exercises.finite_difference").splitlines())
             + "    return _ref.numerical_gradient(f, x, eps)\n")
    path.write_text("import numpy\n\n" + cheat)
    grade = exercises.grade("finite_difference", path)
    assert grade.status == "flagged" and "imports npcell at run time" in grade.message


DIFFERENCING = '''

def step_backward(params, dstate, cache):
    forward = globals()["step_" + "forward"]  # the given forward under another name
    arrays = {**params, "x": cache["x"], "h": cache["h_prev"], "c": cache["c_prev"]}

    def loss(a):
        new, _ = forward({k: a[k] for k in params}, a["x"], {"h": a["h"], "c": a["c"]})
        return sum((dstate[k] * new[k]).sum() for k in new)

    out = {}
    for name, value in arrays.items():
        out[name] = numpy.zeros(value.shape)
        for index in numpy.ndindex(*value.shape):
            a = {k: v.astype(complex) for k, v in arrays.items()}
            a[name][index] += 1e-20j  # complex step: exact, no eps to tune
            out[name][index] = loss(a).imag / 1e-20
    return {k: out[k] for k in params}, out["x"], {"h": out["h"], "c": out["c"]}
'''


def test_differencing_the_given_forward_is_detected_at_run_time(tmp_path):
    # right to round-off on the small cases, but no derivation: the hidden larger case runs out
    # of its budget; the flag says so plainly and no part earns anything
    text = exercises.student_source(EXERCISES["lstm"]).split("# ---- your task")[0]
    path = tmp_path / "lstm.py"
    path.write_text(text + DIFFERENCING)
    grade = exercises.grade("lstm", path)
    assert grade.status == "flagged" and grade.score == 0
    assert "differencing the forward numerically" in grade.message
    assert "did not finish in" in grade.message and "reference backward takes" in grade.message


def test_a_copied_forward_with_central_differences_is_detected_with_no_false_hint(tmp_path):
    # a copy of the forward (another name, so no spelling gives it away) and central
    # differences: small cases 1e-8..1e-7 off, no "off by one step" hint on numbers that close
    given = exercises.student_source(EXERCISES["lstm"]).split("# ---- your task")[0]
    copy = given.split("def step_forward")[1].split("\n\n\n")[0]
    central = (DIFFERENCING.replace('globals()["step_" + "forward"]', "my_cell")
               .replace("a = {k: v.astype(complex) for k, v in arrays.items()}",
                        "a = {k: v.copy() for k, v in arrays.items()}\n"
                        "            b = {k: v.copy() for k, v in arrays.items()}")
               .replace("a[name][index] += 1e-20j  # complex step: exact, no eps to tune",
                        "a[name][index] += 1e-5\n            b[name][index] -= 1e-5")
               .replace("out[name][index] = loss(a).imag / 1e-20",
                        "out[name][index] = (loss(a) - loss(b)) / 2e-5"))
    path = tmp_path / "lstm.py"
    path.write_text(given + "def my_cell" + copy + "\n\n" + central)
    grade = exercises.grade("lstm", path)
    assert grade.score <= 10 and (grade.status == "flagged" or grade.wrong)
    assert "off by one" not in str(grade)


def test_monkey_patching_npcell_or_the_grader_cannot_reach_the_grading_process(tmp_path):
    # patches numpy and the grader module inside the child, with a wrong backward
    patch = ("import numpy\nnumpy.abs = lambda a: 0 * a\nnumpy.isfinite = lambda a: a == a\n"
             "import sys\nsys.modules['npcell.exercises.grader'] = None\n")
    text = exercises.BUGS["lstm_input_gate_sign"].source() + "\n" + patch
    path = tmp_path / "lstm.py"
    path.write_text(text)
    grade = exercises.grade("lstm", path)
    assert grade.wrong == ["da_i"] and grade.score == 80  # the math is still checked here
    assert np.abs(np.array([-1.0]))[0] == 1.0 and grader.TOL == numdiff.tolerance('float64')
    # importing and patching npcell's grader itself: refused in the child and flagged (npcell's
    # files are not even there in the isolated modes), and our grader is untouched
    text = exercises.BUGS["lstm_input_gate_sign"].source() + (
        "\nimport npcell.exercises.grader as g\ng.TOL = 1e9\ng.locate = lambda *a: []\n")
    path.write_text(text)
    grade = exercises.grade("lstm", path)
    assert grade.status == "flagged" and grade.score == 0
    assert "it imports npcell at run time" in grade.message
    assert grader.TOL == numdiff.tolerance('float64')


def test_a_results_file_written_by_the_submission_is_overwritten(tmp_path):
    out = tmp_path / "results" / "results.json"
    out.parent.mkdir()
    fake = json.dumps({"score": 100, "tests": []})
    path = _student(tmp_path, f"open({str(out)!r}, 'w').write({fake!r})\n"
                              f"open('results.json', 'w').write({fake!r})")
    assert main(["exercises", "check", str(path), "--format", "gradescope",
                 "--out", str(out)]) == 0
    assert json.loads(out.read_text())["score"] == 0  # the grader's, written after the child


def test_the_child_gets_copies_and_a_clean_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("NPCELL_SECRET_TOKEN", "s3cret")
    path = _student(tmp_path, "import os\nprint(sorted(os.environ))\n", solution=True)
    grade = exercises.grade("lstm", path)
    assert grade.passed and "NPCELL_SECRET_TOKEN" not in grade.output


def test_the_sandbox_reads_back_only_arrays(tmp_path):
    # outputs come back as npz without pickles: an object array cannot come back
    path = tmp_path / "lstm.py"
    path.write_text(exercises.solution_source(EXERCISES["lstm"]).replace(
        '    return grads, dx, {"h": dh_prev, "c": dc_prev}',
        '    grads["b_o"] = {"evil": object()}\n'
        '    return grads, dx, {"h": dh_prev, "c": dc_prev}'))
    grade = exercises.grade("lstm", path)
    assert grade.wrong == ["db_o"] and "not an array" in str(grade)
    assert sandbox.MEMORY_BYTES and sandbox.TIMEOUT_S > 0


@pytest.mark.parametrize("name", ["lstm", "wmc", "gru", "finite_difference"])
def test_grading_one_submission_takes_seconds(name, tmp_path):
    # two isolated children (the cases, then the hidden larger case): ~1 s on a quiet machine,
    # ~2 s on the shared 2-core CI machine; a platform's limit is a minute
    path = exercises.write_exercise(EXERCISES[name], tmp_path, solution=True)
    start = time.perf_counter()
    grade = exercises.grade(name, path)
    elapsed = time.perf_counter() - start
    assert grade.passed
    assert elapsed < 5.0, f"grading {name} took {elapsed:.2f} s"


@pytest.mark.parametrize("mode", ["process", "namespace"])
def test_every_output_format_says_which_isolation_graded(mode, tmp_path, monkeypatch):
    # the weaker mode says what it does not stop, in each document a platform reads
    if mode == "namespace" and sandbox.isolation().mode != "namespace":
        pytest.skip("the isolated mode needs root and namespaces (CI has both)")
    monkeypatch.setenv("NPCELL_SANDBOX", mode)
    sandbox.isolation.cache_clear()
    try:
        grade = exercises.grade("lstm", _student(tmp_path, "", solution=True))
    finally:
        monkeypatch.undo()
        sandbox.isolation.cache_clear()
    assert grade.passed
    line = f"Isolation: {mode} ("
    for fmt in exercises.FORMATS:
        assert line in exercises.render(grade, fmt), fmt
    assert ("Not stopped" in grade.isolation) == (mode == "process")


def test_a_bad_sandbox_mode_is_one_line(monkeypatch):
    monkeypatch.setenv("NPCELL_SANDBOX", "chroot-ish")
    sandbox.isolation.cache_clear()
    try:
        with pytest.raises(ConfigError, match="NPCELL_SANDBOX must be one of"):
            sandbox.isolation()
    finally:
        monkeypatch.undo()
        sandbox.isolation.cache_clear()


def test_the_stepper_entry_point_runs_a_function_on_arrays(tmp_path):
    # sandbox.run is the stable entry point the BPTT stepper's check mode uses
    path = _student(tmp_path, "", solution=True)
    ex = EXERCISES["lstm"]
    problem = grader._problems(ex, exercises.base("lstm"))[0]
    params, _, _, dstate, cache = grader._case_arrays(problem, 2, 3, 4, 0)
    inputs = {f"0.{part}.{k}": v for part, tree in (("params", params), ("dstate", dstate),
                                                    ("cache", cache)) for k, v in tree.items()}
    result = sandbox.run(path, {"function": "step_backward", "kind": "step",
                                "cases": [{"call_options": {}}]}, inputs, timeout=20,
                         memory_bytes=sandbox.MEMORY_BYTES)
    grads, dx, dprev = problem.solution(params, dstate, cache)
    assert result.status["loaded"] and not result.timed_out and result.leftovers == 0
    np.testing.assert_allclose(result.outputs["0.grads.W_ix"], grads["W_ix"])
    np.testing.assert_allclose(result.outputs["0.dx"], dx)
    np.testing.assert_allclose(result.outputs["0.dstate_prev.c"], dprev["c"])
