"""Platform documents and packages: Gradescope results.json against a JSON Schema transcribed
from Gradescope's autograder specification, PrairieLearn's results.json, JUnit XML, the
Gradescope autograder zip run end to end, the PrairieLearn layout, and nbgrader for real."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import jsonschema
import pytest

from npcell import exercises
from npcell.exercises import BUGS, EXERCISES, package, render

# Transcribed from Gradescope's "Autograder Specifications" (results.json output format):
# top-level score (optional if every test has one), execution_time (seconds), output,
# output_format / test_output_format / test_name_format (text, html, simple_format, md, ansi),
# visibility and stdout_visibility (hidden, after_due_date, after_published, visible),
# extra_data, tests[] (score, max_score, status passed/failed, name, name_format, number,
# output, output_format, tags, visibility, extra_data) and leaderboard[] (name, value, order).
_FORMAT = {"enum": ["text", "html", "simple_format", "md", "ansi"]}
_VISIBILITY = {"enum": ["hidden", "after_due_date", "after_published", "visible"]}
GRADESCOPE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "score": {"type": "number"},
        "execution_time": {"type": "number", "minimum": 0},
        "output": {"type": "string"},
        "output_format": _FORMAT,
        "test_output_format": _FORMAT,
        "test_name_format": _FORMAT,
        "visibility": _VISIBILITY,
        "stdout_visibility": _VISIBILITY,
        "extra_data": {"type": "object"},
        "tests": {"type": "array", "items": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "score": {"type": "number"},
                "max_score": {"type": "number"},
                "status": {"enum": ["passed", "failed"]},
                "name": {"type": "string"},
                "name_format": _FORMAT,
                "number": {"type": "string"},
                "output": {"type": "string"},
                "output_format": _FORMAT,
                "tags": {"type": "array", "items": {"type": "string"}},
                "visibility": _VISIBILITY,
                "extra_data": {"type": "object"},
            },
        }},
        "leaderboard": {"type": "array", "items": {
            "type": "object", "required": ["name", "value"],
            "properties": {"name": {"type": "string"}, "value": {},
                           "order": {"enum": ["asc", "desc"]}}}},
    },
    # the score is on the submission, or on every test
    "anyOf": [{"required": ["score"]},
              {"required": ["tests"], "properties": {"tests": {"items": {"required":
                                                                          ["score"]}}}}],
}

# PrairieLearn external grading results (docs "External grading", results.json): gradable,
# score in [0, 1], message, output, images, tests[] (name, description, points, max_points,
# message, output, images).
PRAIRIELEARN_SCHEMA = {
    "type": "object",
    "required": ["gradable"],
    "properties": {
        "gradable": {"type": "boolean"},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "message": {"type": "string"},
        "output": {"type": "string"},
        "images": {"type": "array"},
        "tests": {"type": "array", "items": {
            "type": "object", "required": ["name"], "additionalProperties": False,
            "properties": {"name": {"type": "string"}, "description": {"type": "string"},
                           "points": {"type": "number"}, "max_points": {"type": "number"},
                           "message": {"type": "string"}, "output": {"type": "string"},
                           "images": {"type": "array"}}}},
    },
}


@pytest.fixture(scope="module")
def grades(tmp_path_factory):
    """A passing, a failing (one located bug) and an ungradable (syntax error) grade."""
    tmp = tmp_path_factory.mktemp("grades")
    ok = exercises.write_exercise(EXERCISES["wmc"], tmp / "ok", solution=True)
    bad = tmp / "bad" / "lstm.py"
    bad.parent.mkdir()
    bad.write_text(BUGS["lstm_forget_paired_with_c_t"].source())
    broken = tmp / "broken" / "lstm.py"
    broken.parent.mkdir()
    broken.write_text("def step_backward(:\n")
    return {"ok": exercises.grade("wmc", ok), "bad": exercises.grade("lstm", bad),
            "broken": exercises.grade("lstm", broken)}


@pytest.mark.parametrize("which", ["ok", "bad", "broken"])
def test_gradescope_results_match_the_schema_and_the_rubric(grades, which):
    grade = grades[which]
    doc = json.loads(render(grade, "gradescope"))
    jsonschema.validate(doc, GRADESCOPE_SCHEMA)
    assert doc["score"] == sum(t["score"] for t in doc["tests"]) == grade.score
    assert sum(t["max_score"] for t in doc["tests"]) == 100
    assert all(t["output"] for t in doc["tests"])
    names = [t["name"] for t in doc["tests"]]
    assert len(names) == len(set(names))
    if which == "bad":
        failed = [t for t in doc["tests"] if t["status"] == "failed"]
        assert [t["name"] for t in failed] == ["forget gate: da_f", "dx and dh_prev"]
        assert "Your da_f is wrong" in failed[0]["output"]


def test_schema_rejects_what_gradescope_would_reject():
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"tests": [{"name": "x"}]}, GRADESCOPE_SCHEMA)  # no score anywhere
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"score": 1, "visibility": "students"}, GRADESCOPE_SCHEMA)


@pytest.mark.parametrize("which", ["ok", "bad", "broken"])
def test_prairielearn_and_junit_documents(grades, which):
    grade = grades[which]
    doc = json.loads(render(grade, "prairielearn"))
    jsonschema.validate(doc, PRAIRIELEARN_SCHEMA)
    assert doc["gradable"] is True
    assert doc["score"] == pytest.approx(grade.score / 100)
    assert sum(t["points"] for t in doc["tests"]) == grade.score
    root = ElementTree.fromstring(render(grade, "junit"))
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == len(grade.parts)
    assert int(suite.get("failures")) == sum(1 for c in cases if c.find("failure") is not None)
    assert (int(suite.get("failures")) == 0) == grade.passed


def _run(cmd, env, cwd):
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_gradescope_zip_runs_end_to_end(tmp_path):
    zip_path = package.package(EXERCISES["lstm"], tmp_path / "dist", platform="gradescope",
                               rubric={"dc": 30})
    root = tmp_path / "autograder"
    source = root / "source"
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        zf.extractall(source)
    assert {"setup.sh", "run_autograder", "rubric.json",
            "lib/npcell/exercises/_child.py"} <= set(names)
    assert not any(n.endswith(".whl") for n in names)  # source, nothing to install
    for script in ("setup.sh", "run_autograder"):
        (source / script).chmod(0o755)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path),
           "NPCELL_AUTOGRADER_SOURCE": str(source), "NPCELL_AUTOGRADER_ROOT": str(root),
           "NPCELL_PYTHON": sys.executable}
    done = _run(["bash", str(source / "setup.sh")], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert (source / "lib").stat().st_mode & 0o077 == 0  # unreadable to other users
    (root / "submission").mkdir(parents=True)
    (root / "submission" / "lstm.py").write_text(
        BUGS["lstm_dc_without_dh_term"].source()
        + "\nopen('/dev/null', 'w')\nprint('score 100/100 (PASS)')\n")
    done = _run(["bash", str(source / "run_autograder")], env, root)
    assert done.returncode == 0, done.stderr
    results = json.loads((root / "results" / "results.json").read_text())
    jsonschema.validate(results, GRADESCOPE_SCHEMA)
    assert results["score"] == 20 + 15  # dc lost: only the output gate and the weights stand
    assert sum(t["max_score"] for t in results["tests"]) == 115
    assert results["extra_data"]["wrong_variables"] == ["dc"]
    # no submission: still a results.json with one clear line
    shutil.rmtree(root / "submission")
    (root / "submission").mkdir()
    done = _run(["bash", str(source / "run_autograder")], env, root)
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == 0 and "No lstm.py" in results["output"]


def test_prairielearn_layout(tmp_path):
    zip_path = package.package(EXERCISES["wmc"], tmp_path, platform="prairielearn", variant=4)
    with zipfile.ZipFile(zip_path) as zf:
        names = set(zf.namelist())
    assert "questions/npcell_wmc/info.json" in names
    assert "serverFilesCourse/npcell_grader/run.sh" in names
    info = json.loads((tmp_path / "wmc-prairielearn" / "questions" / "npcell_wmc" /
                       "info.json").read_text())
    assert info["gradingMethod"] == "External" and info["externalGradingOptions"]["enabled"]
    run = (tmp_path / "wmc-prairielearn" / "serverFilesCourse" / "npcell_grader" /
           "run.sh").read_text()
    assert "--variant 4" in run and "/grade/results" in run
    starting = (tmp_path / "wmc-prairielearn" / "questions" / "npcell_wmc" /
                "clientFilesQuestion" / "wmc.py").read_text()
    assert "NPCELL_VARIANT = 4" in starting and "raise NotImplementedError" in starting
    # run.sh as PrairieLearn's container would: /grade/{serverFilesCourse,student,results}
    grade_root = tmp_path / "grade"
    shutil.copytree(tmp_path / "wmc-prairielearn" / "serverFilesCourse",
                    grade_root / "serverFilesCourse")
    (grade_root / "student").mkdir()
    (grade_root / "student" / "wmc.py").write_text(starting)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "NPCELL_PYTHON": sys.executable,
           "NPCELL_AUTOGRADER_ROOT": str(grade_root)}
    script = grade_root / "serverFilesCourse" / "npcell_grader" / "run.sh"
    assert "pip install" not in script.read_text()  # nothing installed at grading time
    # PrairieLearn's external graders have no network: run it in a network namespace of its
    # own when the kernel lets us (root, or unprivileged user namespaces)
    offline = (["unshare", "-n"] if os.geteuid() == 0 else
               ["unshare", "--user", "--map-root-user", "-n"])
    if subprocess.run([*offline, "true"], capture_output=True).returncode != 0:
        offline = []
    (grade_root / "student" / "wmc.py").write_text(starting)
    done = _run([*offline, "bash", str(script)], env, grade_root)
    assert done.returncode == 0, done.stderr
    results = json.loads((grade_root / "results" / "results.json").read_text())
    jsonschema.validate(results, PRAIRIELEARN_SCHEMA)
    assert results["gradable"] is True and results["score"] == 0
    assert "not implemented yet" in results["message"]
    solution = exercises.solution_source(EXERCISES["wmc"], exercises.draw("wmc", 4))
    (grade_root / "student" / "wmc.py").write_text(solution)
    done = _run([*offline, "bash", str(script)], env, grade_root)
    results = json.loads((grade_root / "results" / "results.json").read_text())
    assert results["score"] == 1.0 and "Isolation: " in results["output"], results


def _nbgrader():
    return shutil.which("nbgrader", path=str(Path(sys.executable).parent))


# bob's mistake in each notebook: a catalogue bug (the lstm one is written out with its score)
NOTEBOOK_BUGS = {"lstm": (('da_f = dc * k["c_prev"]', 'da_f = dc * k["c"]'),),
                 "peephole": exercises.BUGS["peephole_o_gate_reads_c_prev"].edits,
                 "wmc": exercises.BUGS["wmc_missing_dc_through_W_fc"].edits,
                 "gru": exercises.BUGS["gru_W_nh_paired_with_h_prev"].edits,
                 "finite_difference": exercises.BUGS["fd_one_sided"].edits}


@pytest.mark.slow
@pytest.mark.skipif(_nbgrader() is None, reason="nbgrader is not installed (pip install "
                                                "npcell[grading])")
def test_nbgrader_generate_assignment_and_autograde_every_exercise(tmp_path):
    """One assignment holding the notebook of every exercise: generate_assignment hides the
    solutions and tests; autograde gives the solution 100 in each, and a planted bug the score
    the command-line grader gives the same code."""
    assert set(NOTEBOOK_BUGS) == set(EXERCISES)
    course = tmp_path / "course"
    source = course / "source" / "ps1"
    for name in EXERCISES:
        exercises.package.write_notebook(EXERCISES[name], source)
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\nc.CourseDirectory.course_id = 'npcell'\n"
        "c.CourseDirectory.db_assignments = [dict(name='ps1')]\n"
        "c.CourseDirectory.db_students = [dict(id='alice'), dict(id='bob')]\n"
        "c.Execute.timeout = 120\n")
    env = {**os.environ, "PYTHONPATH": str(Path(exercises.__file__).parents[2]),
           "HOME": str(tmp_path), "JUPYTER_PLATFORM_DIRS": "1"}
    nbgrader = _nbgrader()
    done = _run([nbgrader, "db", "assignment", "add", "ps1"], env, course)
    done = _run([nbgrader, "generate_assignment", "ps1", "--force"], env, course)
    assert done.returncode == 0, done.stdout + done.stderr
    expected = {}
    for name, edits in NOTEBOOK_BUGS.items():
        release = course / "release" / "ps1" / f"{name}.ipynb"
        student_nb = json.loads(release.read_text())
        text = "".join("".join(c["source"]) for c in student_nb["cells"])
        assert "HIDDEN TESTS" not in text and "_grade.earned" not in text, name
        assert "raise NotImplementedError" in text, name
        bugged = exercises.solution_source(EXERCISES[name])
        for old, new in edits:
            bugged = bugged.replace(old, new)
        buggy = tmp_path / name / f"{name}.py"
        buggy.parent.mkdir()
        buggy.write_text(bugged)
        expected[name] = exercises.grade(name, buggy).score
        assert expected[name] < 100, name
        # alice hands in the solution, bob the notebook with the bug planted
        solution = json.loads((source / f"{name}.ipynb").read_text())
        for student, student_edits in (("alice", ()), ("bob", edits)):
            nb = json.loads(release.read_text())
            for cell, src in zip(nb["cells"], solution["cells"]):
                if cell["metadata"].get("nbgrader", {}).get("solution"):
                    body = "\n".join(ln for ln in "".join(src["source"]).splitlines()
                                     if ln.strip() not in ("### BEGIN SOLUTION",
                                                           "### END SOLUTION"))
                    for old, new in student_edits:
                        assert body.count(old) == 1, (name, old)
                        body = body.replace(old, new)
                    if student == "alice" and name == "lstm":  # her own import style and helper
                        body = ("import numpy as np\n\n\ndef batch_sum(a):\n"
                                "    return np.sum(a, axis=0)\n\n\n"
                                + body.replace("da.sum(axis=0)", "batch_sum(da)"))
                        assert "batch_sum(da)" in body
                    cell["source"] = body
            out = course / "submitted" / student / "ps1" / f"{name}.ipynb"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(nb))
    assert expected["lstm"] == 80  # the forget gate, and dx and dh_prev which da_f feeds
    done = _run([nbgrader, "autograde", "ps1", "--force"], env, course)
    assert done.returncode == 0, done.stdout + done.stderr
    done = _run([sys.executable, "-c", (
        "from nbgrader.api import Gradebook\n"
        "with Gradebook('sqlite:///gradebook.db') as gb:\n"
        f"    for nb in {list(EXERCISES)!r}:\n"
        "        for s in ('alice', 'bob'):\n"
        "            sub = gb.find_submission_notebook(nb, 'ps1', s)\n"
        "            print(nb, s, sub.score, sub.max_score)\n")], env, course)
    scores = {(line.split()[0], line.split()[1]): (float(line.split()[2]),
                                                   float(line.split()[3]))
              for line in done.stdout.split("\n") if line.strip()}
    for name in EXERCISES:
        assert scores[(name, "alice")] == (100.0, 100.0), (name, done.stdout + done.stderr)
        assert scores[(name, "bob")] == (expected[name], 100.0), (name, done.stdout)
