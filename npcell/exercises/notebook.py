"""Grading from a notebook (the check and hidden-test cells of the nbgrader version).

:func:`check` grades the student's function object with :func:`~npcell.exercises.grade`, which
writes it with its module context (the imports, helpers and constants it uses, from any cell:
:func:`~npcell.exercises.source.function_source`) after the exercise's given code and grades that
file in the sandbox like any other submission.
Results are cached by source, so the hidden-test cells (one per rubric part) share one run.

In nbgrader the hidden tests run in the student's own kernel, so the kernel itself is not
protected the way a platform autograder is; what is graded still runs only in the sandbox.
"""

from __future__ import annotations

from .catalogue import EXERCISES
from .grader import grade
from .source import function_source

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


def check(exercise, function, *, variant=None) -> NotebookGrade:
    """Grade ``function`` (the student's, defined in the notebook) on ``exercise``."""
    ex = EXERCISES[exercise] if isinstance(exercise, str) else exercise
    key = (ex.name, variant, function_source(function))
    if key not in _CACHE:
        _CACHE[key] = NotebookGrade(grade(ex, function, variant=variant))
    return _CACHE[key]
