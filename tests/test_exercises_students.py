"""Per-student variants a student cannot choose: the seed is derived from the submitter's id
(Gradescope's submission metadata) and the instructor's salt, never from the file."""

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npcell import exercises
from npcell.cli import main
from npcell.exercises import EXERCISES, package, read_header, students, variants

SALT = "npcell-course-fall-2026"


def test_the_seed_is_the_documented_hash():
    text = "npcell-student-variant\0" + SALT + "\0wmc\0" + "\0".join(sorted(["77", "4242"]))
    want = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")
    assert students.student_seed(SALT, "wmc", ["4242", "77"]) == want
    assert students.student_seed(SALT, "wmc", [77, 4242]) == want  # a group, any order


@settings(max_examples=30, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_characters="\0"), min_size=1), min_size=1,
                max_size=3), st.sampled_from(variants.CELL_EXERCISES))
def test_the_seed_depends_on_salt_exercise_and_ids(ids, name):
    seed = students.student_seed(SALT, name, ids)
    assert 0 <= seed < 2**32 and seed == students.student_seed(SALT, name, list(reversed(ids)))
    assert seed != students.student_seed(SALT + "!", name, ids)
    other = "wmc" if name != "wmc" else "lstm"
    assert seed != students.student_seed(SALT, other, ids)


def test_bad_salt_ids_and_metadata_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="salt"):
        students.student_seed("", "lstm", ["1"])
    with pytest.raises(ValueError, match="student ids"):
        students.student_seed(SALT, "lstm", [])
    meta = tmp_path / "submission_metadata.json"
    meta.write_text(json.dumps({"users": [{"email": "a@b.c", "name": "A"}]}))
    with pytest.raises(ValueError, match="to have an 'id'"):
        students.gradescope_ids(meta)
    meta.write_text("{")
    with pytest.raises(ValueError, match="not JSON"):
        students.gradescope_ids(meta)
    assert main(["exercises", "check", str(meta), "--exercise", "lstm", "--metadata",
                 str(meta)]) == 2  # metadata that is not JSON: a usage error
    assert "is not JSON" in capsys.readouterr().err
    _metadata(meta, 7)
    assert main(["exercises", "check", str(meta), "--exercise", "lstm", "--metadata",
                 str(meta)]) == 2
    assert "--metadata and --salt go together" in capsys.readouterr().err
    for args, says in ((["new", "lstm", str(tmp_path), "--student", "7"], "go together"),
                       (["new", "gru", str(tmp_path), "--student", "7", "--salt", SALT],
                        "has no variants"),
                       (["new", "lstm", str(tmp_path), "--student", "7", "--salt", SALT,
                         "--variant", "3"], "give one of them"),
                       (["package", "wmc", str(tmp_path), "--platform", "prairielearn",
                         "--salt", SALT], "no user id")):
        assert main(["exercises", *args]) == 2
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1, err
    assert not list(tmp_path.glob("*.py")) and not list(tmp_path.glob("*prairielearn*"))


def _metadata(path, *ids):
    path.write_text(json.dumps({
        "id": 123456, "created_at": "2026-12-01T10:00:00.0+00:00", "assignment": {
            "id": 987, "title": "LSTM backward", "due_date": "2026-12-08T23:59:00.0+00:00"},
        "users": [{"email": f"s{i}@uni.edu", "id": i, "name": f"Student {i}"} for i in ids],
        "previous_submissions": []}))
    return path


def _other_student(name, me):
    """An id whose variant differs from ``me``'s (lstm has only a handful of variants)."""
    mine = variants.draw(name, students.student_seed(SALT, name, [me]))
    for other in range(1, 200):
        theirs = variants.draw(name, students.student_seed(SALT, name, [other]))
        if (theirs.candidate, theirs.coupled, theirs.reads) != (mine.candidate, mine.coupled,
                                                                 mine.reads):
            return other
    raise AssertionError("no other variant found")


def test_new_writes_the_students_variant_and_check_grades_the_derived_one(tmp_path, capsys):
    me = 4242
    seed = students.student_seed(SALT, "lstm", [str(me)])
    assert main(["exercises", "new", "lstm", str(tmp_path / "mine"), "--student", str(me),
                 "--salt", SALT, "--solution"]) == 0
    mine = tmp_path / "mine" / "lstm.py"
    assert read_header(mine)["variant"] == seed
    meta = _metadata(tmp_path / "submission_metadata.json", me)
    out = tmp_path / "results.json"
    args = ["--metadata", str(meta), "--salt", SALT, "--format", "json", "--out", str(out)]
    assert main(["exercises", "check", str(mine), *args]) == 0
    result = json.loads(out.read_text())
    assert result["passed"] and result["variant"]["seed"] == seed and result["warnings"] == []
    # the student changes NPCELL_VARIANT to a classmate's seed: still graded as their own
    other = _other_student("lstm", me)
    other_seed = students.student_seed(SALT, "lstm", [str(other)])
    edited = tmp_path / "edited" / "lstm.py"
    edited.parent.mkdir()
    edited.write_text(mine.read_text().replace(f"NPCELL_VARIANT = {seed}",
                                               f"NPCELL_VARIANT = {other_seed}"))
    assert main(["exercises", "check", str(edited), *args]) == 0
    result = json.loads(out.read_text())
    assert result["passed"] and result["variant"]["seed"] == seed
    assert result["warnings"] == [students.mismatch_line(other_seed, seed,
                                                         "your Gradescope account")]
    # a classmate's (correct) file handed in under my id: graded as MY variant, and it fails
    assert main(["exercises", "new", "lstm", str(tmp_path / "theirs"), "--student", str(other),
                 "--salt", SALT, "--solution"]) == 0
    assert main(["exercises", "check", str(tmp_path / "theirs" / "lstm.py"), *args]) == 1
    result = json.loads(out.read_text())
    assert not result["passed"] and result["variant"]["seed"] == seed
    assert f"NPCELL_VARIANT = {other_seed}" in result["warnings"][0]
    assert result["feedback"].index("Warning:") < result["feedback"].index("output gate")
    # --variant and --metadata both choose: refused
    assert main(["exercises", "check", str(mine), *args, "--variant", "3"]) == 2
    assert "give one of them" in capsys.readouterr().err


def test_the_gradescope_zip_grades_the_variant_of_the_submitter(tmp_path):
    # npcell comes from the zip's lib/ (run_autograder sets PYTHONPATH to it)
    with pytest.raises(ValueError, match="no user id"):
        package.package(EXERCISES["wmc"], tmp_path, platform="prairielearn", salt=SALT)
    zip_path = package.package(EXERCISES["wmc"], tmp_path / "dist", platform="gradescope",
                               salt=SALT)
    root = tmp_path / "autograder"
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(root / "source")
        script = zf.read("run_autograder").decode()
    assert "--metadata" in script and SALT in script
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path),
           "NPCELL_AUTOGRADER_ROOT": str(root), "NPCELL_PYTHON": sys.executable}
    me, other = 31337, None
    other = _other_student("wmc", me)
    group = sorted([str(me), "555"])
    seed = students.student_seed(SALT, "wmc", group)
    _metadata(root / "submission_metadata.json", me, 555)  # a group submission
    (root / "submission").mkdir(parents=True)
    results = root / "results" / "results.json"

    def run(text):
        (root / "submission" / "wmc.py").write_text(text)
        done = subprocess.run(["bash", str(root / "source" / "run_autograder")], env=env,
                              cwd=root, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(results.read_text())

    ours = exercises.solution_source(EXERCISES["wmc"], variants.draw("wmc", seed))
    got = run(ours)
    assert got["score"] == 100 and got["extra_data"]["variant"]["seed"] == seed
    assert "Warning" not in got["output"]
    theirs = exercises.solution_source(EXERCISES["wmc"], variants.draw(
        "wmc", students.student_seed(SALT, "wmc", [str(other)])))
    got = run(theirs)
    assert got["score"] < 100 and got["extra_data"]["variant"]["seed"] == seed
    assert "the variant assigned to you (from your Gradescope account)" in got["output"]
    # no metadata: the autograder says it failed (never grades some other variant)
    (root / "submission_metadata.json").unlink()
    got = run(ours)
    assert got["score"] == 0 and "autograder itself failed" in got["output"]


def test_the_documented_warning_is_the_one_the_grader_writes():
    docs = Path(exercises.__file__).parents[2] / "docs" / "exercises.md"
    text = " ".join(docs.read_text().split())
    line = students.mismatch_line(17, students.student_seed("fall26", "lstm", ["4242"]),
                                  "your Gradescope account")
    assert line in text
