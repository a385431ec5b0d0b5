"""The exercise guide a student can open from any install: ``npcell exercises guide``.

The guide is docs/exercises.md. The wheel carries a copy as npcell/exercises/guide.md
(pyproject's force-include); a source checkout reads the docs file itself. Its planted-bug table
is written from the catalogue between two markers, so the guide reads complete as plain
Markdown, not only through Sphinx.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .catalogue import BUGS

BEGIN, END = "<!-- bugs:begin -->", "<!-- bugs:end -->"
_HERE = Path(__file__).resolve().parent
_PLACES = (_HERE / "guide.md", _HERE.parents[1] / "docs" / "exercises.md")


def guide_path() -> Path:
    """Where the guide is: the wheel's copy, else the checkout's docs/exercises.md."""
    for path in _PLACES:
        if path.is_file():
            return path
    raise ConfigError(f"the exercise guide is missing from this install (looked in "
                      f"{', '.join(str(p) for p in _PLACES)})")


def bug_table() -> str:
    """The planted-bug catalogue as a Markdown table (read from the code)."""
    lines = ["| bug | exercise | what is wrong | named variable | shows in |",
             "|---|---|---|---|---|"]
    for bug in BUGS.values():
        where = ", ".join(f"`{w}`" for w in bug.where[:4]) + (", ..." if len(bug.where) > 4 else "")
        description = bug.description.replace("|", "\\|")
        lines.append(f"| `{bug.name}` | {bug.exercise} | {description} | `{bug.variable}` | "
                     f"{where} |")
    return "\n".join(lines) + "\n"


def with_bug_table(text: str) -> str:
    """``text`` with the region between the bug markers replaced by :func:`bug_table`."""
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{bug_table()}{END}{tail}"
