"""What a student meets in the exercise files and messages (issue 26): the guide they point to
can be opened from any install, reads complete as plain Markdown, and messages print cleanly."""

import importlib.util
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from npcell import cli
from npcell.exercises import BUGS, compare, guide

DOCS = Path(__file__).resolve().parents[1] / "docs" / "exercises.md"


def test_new_names_the_file_without_a_double_slash(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["exercises", "new", "lstm", "work/"]) == 0
    out = capsys.readouterr().out
    assert "npcell exercises check work/lstm.py" in out and "//" not in out


def test_generated_files_point_to_a_guide_the_student_can_open(tmp_path, capsys):
    cli.main(["exercises", "new", "wmc", str(tmp_path)])
    text = (tmp_path / "wmc.py").read_text()
    assert "npcell exercises guide" in text and "docs/exercises.md" not in text
    capsys.readouterr()
    assert cli.main(["exercises", "guide"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# Gradient exercises and the grader")
    assert all(f"`{name}`" in printed for name in BUGS)  # the bug table, not an include


def test_the_guide_reads_complete_as_plain_markdown():
    text = DOCS.read_text()
    assert "{include}" not in text
    assert guide.with_bug_table(text) == text, (
        "docs/exercises.md's bug table is stale: `make docs` rewrites it from the catalogue")


def test_a_transposed_weight_hint_keeps_its_parentheses_balanced():
    check = compare.compare("dW_ih", np.zeros((3, 2)), np.zeros((2, 3)), None, {}, 1.0)
    assert "transposed W?" in check.problem
    assert check.problem.count("(") == check.problem.count(")"), check.problem


@pytest.mark.skipif(importlib.util.find_spec("hatchling") is None,
                    reason="building the wheel offline needs hatchling (the test extra has it)")
def test_the_wheel_carries_the_guide(tmp_path):
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--no-index", "-q", "-w", str(tmp_path), str(DOCS.parents[1])], check=True)
    with zipfile.ZipFile(next(tmp_path.glob("npcell-*.whl"))) as wheel:
        shipped = wheel.read("npcell/exercises/guide.md").decode()
    assert re.sub(r"\s+", " ", shipped) == re.sub(r"\s+", " ", DOCS.read_text())
