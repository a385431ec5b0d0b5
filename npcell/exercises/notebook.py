"""Grading from a notebook (the check and hidden-test cells of the nbgrader version).

:func:`check` takes the student's function object, writes its source (``inspect.getsource``,
which works for functions defined in notebook cells) after the exercise's given code into a
temporary file, and grades that file in the sandbox like any other submission. Results are
cached by source, so the hidden-test cells (one per rubric part) share one grading run.

In nbgrader the hidden tests run in the student's own kernel, so the kernel itself is not
protected the way a platform autograder is; what is graded still runs only in the sandbox.
"""

from __future__ import annotations

import inspect
import tempfile
from pathlib import Path

from . import variants
from .catalogue import EXERCISES
from .generator import solution_source
from .grader import grade

_CACHE: dict = {}


class NotebookGrade:
    """A :class:`~npcell.exercises.grader.Grade` with per-part look-ups for test cells."""

    def __init__(self, result):
        self.result = result

    def earned(self, key) -> bool:
        return any(p.key == key and e == p.points for p, e in self.result.parts)

    def feedback(self, key) -> str:
        for part, _ in self.result.parts:
            if part.key == key:
                return f"{part.title}: {self.result.part_feedback(part)}"
        raise KeyError(f"no rubric part {key!r}")

    def __str__(self):
        return str(self.result)


def given_source(exercise, variant=None) -> str:
    """Everything of the exercise's file before the student's function."""
    ex = EXERCISES[exercise] if isinstance(exercise, str) else exercise
    v = None
    if ex.has_variants:
        v = variants.base(ex.name) if variant is None else variants.draw(ex.name, variant)
    return solution_source(ex, v).partition("# ---- your task")[0]


def check(exercise, function, *, variant=None) -> NotebookGrade:
    """Grade ``function`` (the student's, defined in the notebook) on ``exercise``."""
    ex = EXERCISES[exercise] if isinstance(exercise, str) else exercise
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError) as err:
        raise ValueError(f"cannot read the source of {function!r}: define it in a cell") from err
    text = given_source(ex, variant) + "# ---- your task\n\n" + source
    key = (ex.name, variant, text)
    if key not in _CACHE:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{ex.name}.py"
            path.write_text(text)
            _CACHE[key] = NotebookGrade(grade(ex, path, variant=variant))
    return _CACHE[key]
