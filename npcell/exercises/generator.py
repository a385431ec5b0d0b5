"""Write exercise files: the solution file (the reference code, markers kept) and the student file
(every ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` block replaced by a to-do and a
``raise NotImplementedError``), as nbgrader does for notebooks.

LSTM-family files are written by :mod:`npcell.exercises.variants` for one variant; the GRU and
finite-difference files are npcell's reference functions read with :func:`inspect.getsource`.
Every file is self-contained: it imports only NumPy (the activations it needs are given in it).
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from pathlib import Path

from ..errors import ConfigError
from . import variants

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"

_TARGET = r"[A-Za-z_][\w\[\]\"'.]*"
_ASSIGNED = re.compile(rf"^\s*({_TARGET}(?:\s*,\s*{_TARGET})*)\s*[+\-*]?=(?!=)")


DOCS = "the guide installed with npcell: run  npcell exercises guide"

# What a GRU file is given besides its forward: plain NumPy versions of npcell's activations
_GIVEN_OPS = '''def array_module(a):
    """The array module of ``a``: NumPy here (npcell's own version also knows CuPy)."""
    return numpy


''' + variants.ACTIVATIONS_SOURCE


_GIVEN_NOTE = ("The code above your function is given: keep its names (the grader calls your "
               "function\nwith the cache of its own copy of that forward). Write only inside the "
               "marked blocks.\n")


def _file_header(exercise, variant, student: bool) -> str:
    kind = "student" if student else "solution"
    task = textwrap.indent(textwrap.fill(exercise.task.replace("\n", " "), 84), "    ")
    which = ""
    if variant is not None:
        seed = "the paper's cell" if variant.seed is None else f"variant {variant.seed}"
        which = f"This file's cell ({seed}):\n\n" + textwrap.indent(
            textwrap.fill(variant.describe(), 84), "    ") + "\n\n"
    note = (_GIVEN_NOTE if exercise.context or variant is not None else
            "Write only inside the marked block; keep the function's name and signature.\n")
    return (
        f'"""npcell exercise {exercise.name!r} ({kind} file).\n\n{exercise.title}.\n\n'
        f"{which}What to do:\n\n{task}\n\n"
        f"Grade it with:  npcell exercises check {exercise.name}.py\n\n{note}"
        f"How the grader works and what its messages mean:\n{DOCS}.\n"
        '"""\n'
    )


def solution_source(exercise, variant=None) -> str:
    """The complete solution file of ``exercise`` (markers kept), as text. LSTM-family
    exercises take a :class:`~npcell.exercises.variants.Variant` (default: the paper's cell)."""
    if exercise.has_variants:
        variant = variant or variants.base(exercise.name)
        seed = "None" if variant.seed is None else str(variant.seed)
        parts = [_file_header(exercise, variant, student=False), "import numpy", "",
                 f"NPCELL_EXERCISE = {exercise.name!r}",
                 f"NPCELL_VARIANT = {seed}  # the variant seed this file was written for", "",
                 "# ---- given (do not edit) " + "-" * 66, "",
                 variants.helpers_source(variant), "", variants.forward_source(variant),
                 "", "# ---- your task " + "-" * 76, "", variants.backward_source(variant)]
        return "\n".join(parts)
    parts = [_file_header(exercise, None, student=False), "import numpy", "",
             f"NPCELL_EXERCISE = {exercise.name!r}", ""]
    if exercise.context:
        parts += ["# ---- given (do not edit) " + "-" * 66, "", _GIVEN_OPS]
        for fn in exercise.context:
            parts += ["", inspect.getsource(fn).rstrip(), ""]
    parts += ["# ---- your task " + "-" * 76, "", inspect.getsource(exercise.reference).rstrip(),
              ""]
    text = "\n".join(parts) + "\n"
    if BEGIN not in text:
        raise ConfigError(f"the reference of exercise {exercise.name!r} has no {BEGIN!r} marker")
    return text


def given_source(exercise, variant=None) -> str:
    """Everything of the exercise's file before the student's function (header, imports, the
    given code), ending with the ``# ---- your task`` line."""
    return solution_source(exercise, variant).partition("# ---- your task")[0] + (
        "# ---- your task\n\n")


def strip_solutions(text: str, exercise_name: str = "exercise") -> str:
    """Replace each solution block by a to-do listing what it defined and a NotImplementedError."""
    out, block, indent = [], None, ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped == BEGIN:
            block, indent = [], line[: len(line) - len(line.lstrip())]
            continue
        if stripped == END:
            names = _assigned_names(block)
            out.append(f"{indent}# YOUR CODE HERE")
            if names:
                wrapped = textwrap.wrap("define " + ", ".join(names), 88 - len(indent))
                out += [f"{indent}# {w}" for w in wrapped]
            out.append(f'{indent}raise NotImplementedError("exercise {exercise_name}: '
                       'replace this line with your code")')
            block = None
            continue
        if block is not None:
            block.append(line)
        else:
            out.append(line)
    if block is not None:
        raise ConfigError(f"{BEGIN!r} without a matching {END!r}")
    return "\n".join(out) + "\n"


def _assigned_names(lines) -> list[str]:
    """Plain names a removed block assigned, in order (what the code after it expects)."""
    names = []
    for line in lines:
        match = _ASSIGNED.match(line)
        if not match:
            continue
        for name in match.group(1).split(","):
            name = name.strip()
            if name.isidentifier() and name not in names:
                names.append(name)
    return names


def student_source(exercise, variant=None) -> str:
    """The student file of ``exercise``: the solution file with its solution blocks removed."""
    text = solution_source(exercise, variant).replace("(solution file)", "(student file)", 1)
    return strip_solutions(text, exercise.name)


def write_exercise(exercise, directory, *, solution=False, variant=None, force=False) -> Path:
    """Write ``<directory>/<name>.py`` (student file, or the solution file with ``solution``).

    Refuses to overwrite an existing file (a student's work) unless ``force``.
    """
    directory = Path(directory)
    path = directory / f"{exercise.name}.py"
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists (a student's work?); pass --force to overwrite it")
    directory.mkdir(parents=True, exist_ok=True)
    text = (solution_source if solution else student_source)(exercise, variant)
    path.write_text(text)
    return path


def read_header(path) -> dict:
    """NPCELL_EXERCISE and NPCELL_VARIANT of a student file, read WITHOUT running it (the file
    is untrusted): {'exercise': str | None, 'variant': int | None}. A file that does not parse
    gives what it can (nothing); the grader reports the syntax error."""
    found = {"exercise": None, "variant": None}
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8", errors="replace"))
    except (SyntaxError, ValueError):
        return found
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(
                node.targets[0], ast.Name):
            key = {"NPCELL_EXERCISE": "exercise", "NPCELL_VARIANT": "variant"}.get(
                node.targets[0].id)
            if key is None:
                continue
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                continue
            if key == "exercise" and isinstance(value, str):
                found[key] = value
            if key == "variant" and (value is None or (isinstance(value, int)
                                                       and not isinstance(value, bool))):
                found[key] = value
    return found
