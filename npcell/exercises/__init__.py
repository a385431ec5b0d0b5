"""Gradient exercises and their autograder (``npcell exercises list | new | check | bugs | plant``).

    npcell exercises list                     # what there is
    npcell exercises new wmc work/            # work/wmc.py: the backward to write
    npcell exercises check work/wmc.py        # gradcheck-based grade; --json for course platforms
    npcell exercises bugs                     # the planted-bug catalogue
    npcell exercises plant lstm_no_dc_carry work/   # a file with a bug to find

From Python::

    from npcell import exercises
    grade = exercises.grade("lstm", "work/lstm.py")
    print(grade)              # feedback per parameter, gate block and time step
    grade.score, grade.passed, grade.location()

Solutions are the reference code npcell runs (between ``### BEGIN SOLUTION`` markers), so they
are hidden only in the notebook sense; grading needs no secret, only finite differences.
"""

from __future__ import annotations

from .autograder import SHAPES, Check, Grade, StudentOutputError, grade
from .catalogue import BUGS, EXERCISES, Exercise, PlantedBug
from .generator import load_file, solution_source, strip_solutions, student_source, write_exercise

__all__ = [
    "BUGS",
    "EXERCISES",
    "SHAPES",
    "Check",
    "Exercise",
    "Grade",
    "PlantedBug",
    "StudentOutputError",
    "grade",
    "load_file",
    "solution_source",
    "strip_solutions",
    "student_source",
    "write_exercise",
]
