"""Write exercise files: the solution file (the reference code, markers kept) and the student file
(every ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` block replaced by a to-do and a
``raise NotImplementedError``), as nbgrader does for notebooks.

The reference functions are read with :func:`inspect.getsource`, so the exercises always match
the code npcell runs; the forward and the small helpers the function calls are copied in front of
it, so a student file is self-contained (it imports only npcell's activations and backend).
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import re
import sys
import textwrap
from pathlib import Path

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"

_TARGET = r"[A-Za-z_][\w\[\]\"'.]*"
_ASSIGNED = re.compile(rf"^\s*({_TARGET}(?:\s*,\s*{_TARGET})*)\s*[+\-*]?=(?!=)")


def _file_header(exercise, student: bool) -> str:
    kind = "student" if student else "solution"
    task = textwrap.indent(exercise.task.strip(), "    ")
    return (
        f'"""npcell exercise {exercise.name!r} ({kind} file): {exercise.title}.\n\n'
        f"Write ``{exercise.function}`` below, then grade it:\n\n"
        f"    npcell exercises check {exercise.name}.py\n\n"
        f"What to do:\n\n{task}\n\n"
        "The functions above it are given. The autograder runs npcell's own forward and plugs\n"
        "your function into the stepwise BPTT driver, so keep the cache names and the return\n"
        "format: (grads_t keyed like params, dx_t, dstate_prev).\n"
        '"""\n'
    )


def solution_source(exercise) -> str:
    """The complete solution file of ``exercise`` (markers kept), as text."""
    parts = [_file_header(exercise, student=False), "\n".join(exercise.imports), "",
             f"NPCELL_EXERCISE = {exercise.name!r}", ""]
    if exercise.context:
        parts.append("# ---- given (do not edit) " + "-" * 66)
        for fn in exercise.context:
            parts += ["", inspect.getsource(fn).rstrip(), ""]
    parts.append("# ---- your task " + "-" * 76)
    parts += ["", inspect.getsource(exercise.reference).rstrip(), ""]
    text = "\n".join(parts) + "\n"
    if BEGIN not in text:
        raise ValueError(f"the reference of exercise {exercise.name!r} has no {BEGIN!r} marker")
    return text


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
        raise ValueError(f"{BEGIN!r} without a matching {END!r}")
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


def student_source(exercise) -> str:
    """The student file of ``exercise``: the solution file with its solution blocks removed."""
    text = solution_source(exercise).replace("(solution file)", "(student file)")
    return strip_solutions(text, exercise.name)


def write_exercise(exercise, directory, *, solution=False) -> Path:
    """Write ``<directory>/<name>.py`` (student file, or the solution file with ``solution``)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{exercise.name}.py"
    path.write_text(solution_source(exercise) if solution else student_source(exercise))
    return path


_counter = itertools.count()


def load_source(text: str, module_name: str):
    """Execute exercise source text as a fresh module (nothing is left in ``sys.modules``)."""
    name = f"{module_name}_{next(_counter)}"
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and inspect look modules up while executing
    try:
        exec(compile(text, f"<{module_name}>", "exec"), module.__dict__)  # noqa: S102
    finally:
        sys.modules.pop(name, None)
    return module


def load_file(path):
    """Import a student's file as a module (a fresh one on every call)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no exercise file at {path}")
    return load_source(path.read_text(), path.stem)
