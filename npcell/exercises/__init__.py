"""Gradient exercises and their sandboxed grader (``npcell exercises ...``).

    npcell exercises list                        # what there is
    npcell exercises new wmc work/ --variant 17  # one student's cell: work/wmc.py
    npcell exercises check work/wmc.py           # rubric score, feedback in the student's variables
    npcell exercises check work/wmc.py --format gradescope --out results.json
    npcell exercises package wmc dist/ --platform gradescope   # an autograder zip
    npcell exercises notebook lstm course/source/ps1           # an nbgrader notebook
    npcell exercises bugs                        # the planted-bug catalogue
    npcell exercises plant lstm_dc_prev_without_f work/        # a file with one bug to find

From Python::

    from npcell import exercises
    grade = exercises.grade("lstm", "work/lstm.py")
    print(grade)              # rubric, the wrong variable, pattern hints
    grade.score, grade.max_score, grade.wrong

The student's file only ever runs in an isolated child process (:mod:`npcell.exercises.sandbox`:
its own user and namespaces where the OS allows); the grading process computes every number from
its own forward and complex-step derivatives.
"""

from __future__ import annotations

from . import finite_difference, notebook, package, sandbox, source, students, variants
from .catalogue import BUGS, EXERCISES, Exercise, PlantedBug
from .formats import FORMATS, render
from .generator import read_header, solution_source, strip_solutions, student_source, write_exercise
from .grader import CASES, Grade, Part, apply_rubric, default_rubric, grade
from .source import function_source
from .variants import Variant, base, draw

__all__ = [
    "BUGS",
    "CASES",
    "EXERCISES",
    "FORMATS",
    "Exercise",
    "Grade",
    "Part",
    "PlantedBug",
    "Variant",
    "apply_rubric",
    "base",
    "default_rubric",
    "draw",
    "finite_difference",
    "function_source",
    "grade",
    "notebook",
    "package",
    "read_header",
    "render",
    "sandbox",
    "source",
    "solution_source",
    "strip_solutions",
    "students",
    "student_source",
    "variants",
    "write_exercise",
]
