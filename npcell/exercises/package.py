"""Autograders for course platforms, and the nbgrader notebook of each exercise.

Both platform packages carry npcell itself as plain source (``lib/npcell``, copied from the
installed package: no wheel to build, nothing to install at grading time) and need only Python 3
with NumPy at grading time, with no network.

* :func:`package` ``platform="gradescope"``: ``<name>-gradescope.zip`` with ``setup.sh`` (runs
  once when Gradescope builds the image: makes sure NumPy is there, makes the autograder folder
  unreadable to other users), ``run_autograder`` (grades the submission in the isolated child and
  writes ``/autograder/results/results.json``) and ``lib/npcell``.
* :func:`package` ``platform="prairielearn"``: a course fragment for PrairieLearn's external
  grader (``questions/npcell_<name>/`` with ``info.json``, ``question.html`` and the student's
  starting file; ``serverFilesCourse/npcell_grader/`` with ``run.sh`` and ``lib/npcell``), as a
  folder and a zip. ``run.sh`` writes ``/grade/results/results.json``.
* :func:`write_notebook`: an nbgrader source notebook: the given code (locked), the solution cell
  (``### BEGIN SOLUTION`` blocks) and one hidden-test cell per rubric part, with its points.

The scripts read their folders from environment variables with the platform's defaults
(``NPCELL_AUTOGRADER_ROOT``, ``NPCELL_RESULTS_DIR``, ``NPCELL_PYTHON``), so a test can run them
end to end in a temporary folder; they hide the autograder root from the submission
(``NPCELL_SANDBOX_HIDE``).
"""

from __future__ import annotations

import json
import shlex
import shutil
import uuid
import zipfile
from pathlib import Path

from ..errors import ConfigError
from . import variants
from .generator import DOCS, solution_source, student_source
from .grader import apply_rubric, default_rubric

PACKAGE = Path(__file__).resolve().parents[1]  # the installed npcell package


def vendor(outdir) -> Path:
    """Copy npcell's package (source only, no caches) to ``outdir/lib/npcell``; returns lib."""
    lib = Path(outdir) / "lib"
    if (lib / "npcell").exists():
        shutil.rmtree(lib / "npcell")
    shutil.copytree(PACKAGE, lib / "npcell", ignore=shutil.ignore_patterns("__pycache__"))
    return lib


def _check_args(exercise, variant, rubric, salt=None):
    args = f"--exercise {exercise.name}"
    if variant is not None:
        args += f" --variant {int(variant)}"
    if salt is not None:  # per-student variants: the submitter's ids, read before the file runs
        args += f' --metadata "$ROOT/submission_metadata.json" --salt {shlex.quote(salt)}'
    if rubric:
        args += ' --rubric "$SOURCE/rubric.json"'
    return args


_SETUP = """#!/usr/bin/env bash
# Gradescope runs this once, when it builds the autograder image (the network is there then,
# not when grading): Python 3 with NumPy is all grading needs; npcell is in lib/ of this zip.
set -euo pipefail
SOURCE="${NPCELL_AUTOGRADER_SOURCE:-/autograder/source}"
PYTHON="${NPCELL_PYTHON:-python3}"
if ! "$PYTHON" -c 'import numpy' > /dev/null 2>&1; then
    if ! "$PYTHON" -m pip --version > /dev/null 2>&1; then
        apt-get update && apt-get install -y python3 python3-pip
    fi
    "$PYTHON" -m pip install numpy
fi
# nothing of the autograder readable by other users: the submission runs as one where the
# kernel has no namespaces for it (docs/exercises.md, isolation modes)
chmod -R go-rwx "$SOURCE"
"""

_RUN = """#!/usr/bin/env bash
# Gradescope runs this for every submission. The student's file runs only in npcell's isolated
# child (its own user and namespaces, nothing of /autograder visible); results.json is written
# after every process of the submission has ended, so nothing it writes there survives.
set -uo pipefail
{  # bash reads this block whole before running it, so a submission that rewrites this file
   # while it runs changes nothing
ROOT="${NPCELL_AUTOGRADER_ROOT:-/autograder}"
SOURCE="$ROOT/source"
RESULTS="${NPCELL_RESULTS_DIR:-$ROOT/results}"
PYTHON="${NPCELL_PYTHON:-python3}"
export PYTHONPATH="$SOURCE/lib" NPCELL_SANDBOX_HIDE="$ROOT"
mkdir -p "$RESULTS"
FILE="$(find "$ROOT/submission" -name '__NAME__.py' -type f | head -n 1)"
if [ -z "$FILE" ]; then
    FILE="$(find "$ROOT/submission" -name '*.py' -type f | head -n 1)"
fi
fail() {
    "$PYTHON" -c 'import json, sys; json.dump({"score": 0.0, "output": sys.argv[2],
        "visibility": "visible", "tests": []}, open(sys.argv[1], "w"))' \\
        "$RESULTS/results.json" "$1"
}
if [ -z "$FILE" ]; then
    fail "No __NAME__.py in your submission: upload the file npcell exercises new wrote."
    exit 0
fi
"$PYTHON" -m npcell exercises check "$FILE" __ARGS__ --format gradescope \\
    --out "$RESULTS/results.json"
STATUS=$?
if [ $STATUS -ne 0 ]; then
    fail "The autograder itself failed (exit status $STATUS); please tell your instructor."
fi
exit 0
}
"""

_PL_RUN = """#!/usr/bin/env bash
# PrairieLearn's external grader runs this in its container, with no network: the submission
# is in /grade/student, results go to /grade/results/results.json (written after every process
# of the submission has ended). npcell is in lib/ beside this script; NumPy is in the image.
set -uo pipefail
{  # read whole before it runs (see run_autograder)
ROOT="${NPCELL_AUTOGRADER_ROOT:-/grade}"
SOURCE="$ROOT/serverFilesCourse/npcell_grader"
RESULTS="${NPCELL_RESULTS_DIR:-$ROOT/results}"
PYTHON="${NPCELL_PYTHON:-python3}"
export PYTHONPATH="$SOURCE/lib" NPCELL_SANDBOX_HIDE="$ROOT"
mkdir -p "$RESULTS"
"$PYTHON" -m npcell exercises check "$ROOT/student/__NAME__.py" __ARGS__ \\
    --format prairielearn --out "$RESULTS/results.json"
if [ $? -ne 0 ]; then
    "$PYTHON" -c 'import json, sys; json.dump({"gradable": False, "score": 0.0,
        "message": "the autograder failed; please tell your instructor"},
        open(sys.argv[1], "w"))' "$RESULTS/results.json"
fi
exit 0
}
"""


def package(exercise, outdir, *, platform, variant=None, rubric=None, salt=None) -> Path:
    """Write the autograder of ``exercise`` for ``platform`` into ``outdir``; returns the zip.

    ``salt`` (gradescope, LSTM-family exercises): grade each submission as the variant
    :func:`~npcell.exercises.students.student_seed` derives from the submitters' Gradescope ids
    and this salt (the one the students' files were written with)."""
    outdir = Path(outdir)
    if salt is not None:
        _check_salt(exercise, platform, variant, salt)
    outdir.mkdir(parents=True, exist_ok=True)
    if rubric:
        apply_rubric(default_rubric(exercise, _variant(exercise, variant)), rubric)  # validate
    args = _check_args(exercise, variant, rubric, salt)
    if platform == "gradescope":
        return _gradescope(exercise, outdir, args, rubric)
    if platform == "prairielearn":
        return _prairielearn(exercise, outdir, args, rubric, variant)
    raise ConfigError(f"platform must be 'gradescope' or 'prairielearn'; got {platform!r}")


def _check_salt(exercise, platform, variant, salt):
    """Per-student variants need a Gradescope package of an LSTM-family exercise, no fixed
    variant and a non-empty salt; ValueError with one line otherwise."""
    if platform != "gradescope":
        raise ConfigError("--salt (per-student variants) works with --platform gradescope: "
                         "PrairieLearn's grading data carries no user id (docs/exercises.md)")
    if not exercise.has_variants:
        raise ConfigError(f"exercise {exercise.name!r} has no variants; --salt works for lstm, "
                         "peephole, wmc")
    if variant is not None:
        raise ConfigError("--variant and --salt both choose the variant; give one of them")
    if not isinstance(salt, str) or not salt:
        raise ConfigError(f"the salt must be non-empty text; got {salt!r}")


def _variant(exercise, seed):
    if not exercise.has_variants:
        return None
    return variants.base(exercise.name) if seed is None else variants.draw(exercise.name, seed)


def _gradescope(exercise, outdir, args, rubric):
    files = {"setup.sh": _SETUP,
             "run_autograder": _RUN.replace("__NAME__", exercise.name).replace("__ARGS__", args)}
    if rubric:
        files["rubric.json"] = json.dumps(rubric)
    path = outdir / f"{exercise.name}-gradescope.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16  # executable scripts
            zf.writestr(info, text)
        for file in sorted(PACKAGE.rglob("*")):
            if file.is_file() and "__pycache__" not in file.parts:
                zf.write(file, f"lib/npcell/{file.relative_to(PACKAGE)}")
    return path


def _prairielearn(exercise, outdir, args, rubric, seed):
    root = outdir / f"{exercise.name}-prairielearn"
    if root.exists():
        shutil.rmtree(root)
    question = root / "questions" / f"npcell_{exercise.name}"
    grader = root / "serverFilesCourse" / "npcell_grader"
    (question / "tests").mkdir(parents=True)
    grader.mkdir(parents=True)
    vendor(grader)
    run = _PL_RUN.replace("__NAME__", exercise.name).replace("__ARGS__", args)
    (grader / "run.sh").write_text(run)
    (grader / "run.sh").chmod(0o755)
    if rubric:
        (grader / "rubric.json").write_text(json.dumps(rubric))
    info = {"uuid": _uuid(exercise.name, seed), "title": exercise.title, "topic": "Backpropagation",
            "tags": ["npcell"], "type": "v3", "singleVariant": True,
            "gradingMethod": "External",
            "externalGradingOptions": {
                "enabled": True, "image": "prairielearn/grader-python",
                "serverFilesCourse": ["npcell_grader/"],
                "entrypoint": "/grade/serverFilesCourse/npcell_grader/run.sh", "timeout": 60}}
    (question / "info.json").write_text(json.dumps(info, indent=2))
    starting = student_source(exercise, _variant(exercise, seed))
    (question / "clientFilesQuestion").mkdir()
    (question / "clientFilesQuestion" / f"{exercise.name}.py").write_text(starting)
    (question / "question.html").write_text(
        f"<pl-question-panel><p>{exercise.title}. Edit the file below; it is graded by npcell's "
        f"sandboxed grader ({DOCS}).</p></pl-question-panel>\n"
        f'<pl-file-editor file-name="{exercise.name}.py" ace-mode="ace/mode/python" '
        f'source-file-name="clientFilesQuestion/{exercise.name}.py"></pl-file-editor>\n'
        "<pl-submission-panel><pl-external-grader-results></pl-external-grader-results>"
        "</pl-submission-panel>\n")
    path = outdir / f"{exercise.name}-prairielearn.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(root.rglob("*")):
            if file.is_file():
                zf.write(file, file.relative_to(root))
    return path


def _uuid(name, seed):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"npcell-exercise-{name}-{seed}"))


# ----- nbgrader ---------------------------------------------------------------------------------
def _cell(kind, source, grade_id, *, solution=False, grade=False, locked=False, points=None):
    """One notebook cell (nbformat 4 JSON) with its nbgrader metadata."""
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    cell = {"cell_type": kind, "metadata": {"nbgrader": meta}, "source": source}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def write_notebook(exercise, directory, *, variant=None, force=False) -> Path:
    """An nbgrader source notebook ``<directory>/<name>.ipynb`` of ``exercise``."""
    path = Path(directory) / f"{exercise.name}.ipynb"
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to overwrite it")
    v = _variant(exercise, variant)
    text = solution_source(exercise, v)
    given, _, task = text.partition("# ---- your task")
    task = task.split("\n", 1)[1].strip() + "\n"
    header, _, given_code = given.partition('"""\n\n')
    docstring = header.split('"""', 1)[1]
    parts = default_rubric(exercise, v)
    check = f"check({exercise.name!r}, {exercise.function}, variant={variant!r})"
    cells = [
        _cell("markdown", f"# {exercise.title}\n\n```\n{docstring.strip()}\n```\n\nWrite "
              "your code in the solution cell and run the check cell.", "intro", locked=True),
        _cell("code", given_code.strip(), "given", locked=True),
        _cell("code", task.strip(), exercise.function, solution=True),
        _cell("code", "# Check your work (runs your function in npcell's sandboxed grader)\n"
              f"from npcell.exercises.notebook import check\n\nprint({check})", "check",
              locked=True),
    ]
    for part in parts:
        code = ("from npcell.exercises.notebook import check\n\n"
                f"_grade = {check}\n### BEGIN HIDDEN TESTS\n"
                f"assert _grade.earned({part.key!r}), _grade.feedback({part.key!r})\n"
                "### END HIDDEN TESTS")
        cells.append(_cell("code", code, f"test_{part.key}", grade=True, locked=True,
                           points=part.points))
    nb = {"cells": cells, "nbformat": 4, "nbformat_minor": 4,
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                      "language": "python"},
                       "language_info": {"name": "python"}}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1) + "\n")
    return path
