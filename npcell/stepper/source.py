"""The line of the reference step_backward that computes each local gradient, read from
npcell/cells/*.py with :mod:`inspect` (never a copy): its code, comment, file, line number and
``# eq. (N)`` tags."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from .record import HELPERS, LOCALS, REFERENCE

_EQ = re.compile(r"eq\.\s*\((\d+)\)")


def _lines(fn):
    """[(line number, text)] of a function's source."""
    lines, start = inspect.getsourcelines(fn)
    return [(start + n, line.rstrip("\n")) for n, line in enumerate(lines)]


def _file(fn):
    path = Path(inspect.getsourcefile(fn))
    parts = path.parts
    return "/".join(parts[parts.index("npcell"):]) if "npcell" in parts else path.name


def _assignment(lines, name):
    """The index of the LAST line assigning ``name`` (``dh_prev = 0.0`` then ``dh_prev =
    dh_prev + ...``: the last one is the one that computes it)."""
    pattern = re.compile(rf"^\s*{name}\s*=(?!=)")
    found = [n for n, (_, text) in enumerate(lines) if pattern.match(text)]
    return found[-1] if found else None


def _comment_above(lines, index):
    """Comment lines right above line ``index`` (the reference puts a long comment there)."""
    out = []
    while index > 0 and lines[index - 1][1].strip().startswith("#"):
        index -= 1
        if "SOLUTION" in lines[index][1]:
            break
        out.insert(0, lines[index][1].strip())
    return out


def reference_line(kind, name) -> dict | None:
    """{'code', 'comment', 'file', 'line', 'eqs'} for local ``name`` of ``kind``'s backward."""
    for fn in (REFERENCE[kind], *HELPERS):
        lines = _lines(fn)
        index = _assignment(lines, name)
        if index is None:
            continue
        number, text = lines[index]
        code, _, comment = text.strip().partition("  # ")
        comment = " ".join([*(c.lstrip("# ") for c in _comment_above(lines, index)),
                            comment]).strip()
        return {"code": code, "comment": comment, "file": _file(fn), "line": number,
                "eqs": list(dict.fromkeys(_EQ.findall(comment)))}
    return None


def reference_lines(kind) -> dict:
    """{local name: reference_line} for every local gradient the kind's backward has."""
    out = {name: reference_line(kind, name) for name in LOCALS}
    return {k: v for k, v in out.items() if v is not None}
