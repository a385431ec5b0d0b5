"""The exercise generator and the autograder (npcell.exercises).

The autograder must score the reference solutions 100, flag every planted bug in the catalogue,
and name the parameter, gate block or state row where each bug shows.
"""

import json
import re

import numpy as np
import pytest

from npcell import exercises
from npcell.cli import main
from npcell.exercises import BUGS, EXERCISES
from npcell.exercises.generator import BEGIN, END, load_source


def _solution_function(name):
    ex = EXERCISES[name]
    module = load_source(exercises.solution_source(ex), f"solution_{name}")
    return getattr(module, ex.function)


@pytest.mark.parametrize("name", list(EXERCISES))
def test_reference_solution_scores_100(name):
    grade = exercises.grade(name, _solution_function(name))
    assert grade.passed, str(grade)
    assert grade.score == 100.0
    assert grade.failed_rows() == []


@pytest.mark.parametrize("name", list(EXERCISES))
def test_student_file_has_the_solution_removed_and_raises(name, tmp_path):
    ex = EXERCISES[name]
    path = exercises.write_exercise(ex, tmp_path)
    text = path.read_text()
    solution = exercises.solution_source(ex)
    block = solution.split(BEGIN, 1)[1].split(END, 1)[0]
    code_lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
    assert code_lines, "the reference has an empty solution block"
    removed = [ln for ln in code_lines if ln in {t.strip() for t in text.splitlines()}]
    # Lines that also occur outside the block (e.g. a bare `return grad`) may remain; the
    # defining lines must not.
    assert len(removed) < len(code_lines) / 3, removed
    assert BEGIN not in text and END not in text
    assert f"def {ex.function}(" in text  # the signature and docstring stay
    assert "YOUR CODE HERE" in text and "raise NotImplementedError" in text
    grade = exercises.grade(name, path)
    assert not grade.passed and grade.score == 0.0
    assert "not implemented" in str(grade)


def test_solution_file_is_the_reference_code():
    # The solution block of the lstm exercise is the code npcell runs, line for line.
    import inspect

    from npcell.cells import lstm

    text = exercises.solution_source(EXERCISES["lstm"])
    assert inspect.getsource(lstm.lstm_step_backward) in text
    assert inspect.getsource(lstm.lstm_step_forward) in text


def test_catalogue_has_at_least_12_bugs_over_every_cell_exercise():
    assert len(BUGS) >= 12
    assert {b.exercise for b in BUGS.values()} >= {"lstm", "peephole", "wmc", "gru",
                                                   "finite_difference"}
    for bug in BUGS.values():
        assert bug.where and bug.edits and bug.description
        assert bug.source() != exercises.solution_source(EXERCISES[bug.exercise])


@pytest.mark.parametrize("bug_name", list(BUGS))
def test_every_planted_bug_is_flagged_where_it_shows(bug_name):
    bug = BUGS[bug_name]
    grade = exercises.grade(bug.exercise, bug.function())
    assert not grade.passed, f"{bug_name} passed the autograder"
    assert grade.score < 100.0
    named = grade.names()  # worst parameter, gate block, state row / test, and error locations
    assert named & set(bug.where), (
        f"{bug_name}: expected the report to point at one of {bug.where}, it points at "
        f"{grade.location()}\n{grade}")
    # and what the grade points at is a failing row (or a shape error naming it)
    failed = set(grade.failed_rows()) | set(grade.location()["errors"])
    assert named & set(bug.where) <= failed


def test_location_rows_are_specific():
    # A bug in one gate's derivative: that gate's block is the worst gate block, and the worst
    # parameter belongs to it.
    grade = exercises.grade("lstm", BUGS["lstm_sigmoid_candidate"].function())
    loc = grade.location()
    assert loc["gate"] == "gate g"
    assert loc["param"] in ("W_gx", "W_gh", "b_g")
    # A bug confined to W_oc fails W_oc and its gate block, and nothing else.
    grade = exercises.grade("wmc", BUGS["wmc_o_gate_reads_c_prev"].function())
    assert set(grade.failed_rows()) == {"W_oc", "gate c-connections"}
    # A missing dc_{t-1} factor: dx is right at the last step and wrong before it.
    grade = exercises.grade("lstm", BUGS["lstm_dc_prev_without_f"].function())
    assert grade.location()["bad_steps"] == [0, 1, 2, 3]
    assert "last step is right" in str(grade)


def test_shape_errors_name_the_parameter():
    grade = exercises.grade("lstm", BUGS["lstm_db_not_summed"].function())
    assert grade.location()["errors"][0] == "b_i"
    assert "missing sum over the batch" in str(grade)


def test_student_exception_is_reported_not_raised():
    def broken(params, dstate, cache):
        return params["no such"]

    grade = exercises.grade("lstm", broken)
    assert grade.score == 0.0 and "KeyError" in str(grade)


def test_bug_edits_fail_loudly_when_the_reference_changes():
    bug = exercises.PlantedBug("x", "lstm", "d", ("W_ix",), (("text that is not there", "y"),))
    with pytest.raises(ValueError, match="exactly once"):
        bug.source()


def test_finite_difference_grader_catches_scaling_mistakes():
    def half(f, x, eps=1e-5):
        return 0.5 * _solution_function("finite_difference")(f, x, eps)

    grade = exercises.grade("finite_difference", half)
    assert not grade.passed
    assert "half the gradient" in str(grade)
    # the reference's gradient of sum(x^3) at eps=1e-3 is 3x^2 + eps^2 to round-off
    x = np.array([0.7, 1.3])
    g = _solution_function("finite_difference")(lambda v: float(np.sum(v ** 3)), x, 1e-3)
    np.testing.assert_allclose(g, 3 * x ** 2 + 1e-6, rtol=1e-9)


def test_cli_new_check_plant_and_json(tmp_path, capsys):
    assert main(["exercises", "list"]) == 0
    out = capsys.readouterr().out
    for name in EXERCISES:
        assert re.search(rf"^{name}\s", out, re.M)
    assert main(["exercises", "new", "peephole", str(tmp_path / "student")]) == 0
    assert main(["exercises", "check", str(tmp_path / "student" / "peephole.py")]) == 1
    capsys.readouterr()
    assert main(["exercises", "new", "gru", str(tmp_path / "sol"), "--solution"]) == 0
    capsys.readouterr()
    assert main(["exercises", "check", str(tmp_path / "sol" / "gru.py"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] is True and data["score"] == 100.0 and data["exercise"] == "gru"
    assert main(["exercises", "plant", "wmc_missing_tanh_prime", str(tmp_path / "bug")]) == 0
    capsys.readouterr()
    assert main(["exercises", "check", str(tmp_path / "bug" / "wmc.py"), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] is False
    assert data["failed_rows"] and {"W_ic", "b_ic", "gate c-connections"} & set(
        [data["location"]["param"], data["location"]["gate"]])
    assert main(["exercises", "bugs"]) == 0
    assert "lstm_sigmoid_candidate" in capsys.readouterr().out
    assert main(["exercises", "new", "nope", str(tmp_path)]) == 2
