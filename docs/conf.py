"""Sphinx configuration for npcell's docs (offline build: `make docs`).

The tutorials are the notebooks in ../notebooks: they are copied into docs/tutorials/ at the
start of every build (that folder is generated and git-ignored) and executed by myst-nb with
their outputs and figures rendered (``nb_execution_mode = "cache"``: a notebook runs again
only when one of its code cells changed; the cache lives in docs/_build/.jupyter_cache, so
``make clean`` empties it). Executing needs no network. Anything a cell writes to stderr is a
Sphinx warning (``nb_output_stderr = "warn"``), so ``-W`` fails the build on it. Set
``NPCELL_DOCS_EXECUTE=off`` to render the code only.
"""

import os
import re
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

project = "npcell"
author = "npcell contributors"
copyright = "npcell contributors"  # noqa: A001 - Sphinx's name
import npcell  # noqa: E402

release = version = npcell.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
nb_execution_mode = os.environ.get("NPCELL_DOCS_EXECUTE", "cache")
nb_execution_cache_path = str(DOCS / "_build" / ".jupyter_cache")
nb_execution_timeout = 180
nb_execution_raise_on_error = True
nb_output_stderr = "warn"
# The kernel is a separate process: it must import this checkout's npcell, draw with the
# inline backend, and run the notebooks in full (not in the tests' quick mode).
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
for name in ("MPLBACKEND", "NPCELL_QUICK"):
    os.environ.pop(name, None)
exclude_patterns = ["_build", "**.ipynb_checkpoints", "tutorials/*.py"]
html_theme = "pydata_sphinx_theme" if __import__("importlib").util.find_spec(
    "pydata_sphinx_theme") else "alabaster"
html_title = "npcell"
html_static_path = []
autodoc_member_order = "bysource"
autodoc_default_options = {}  # each directive in api.md names its members
napoleon_numpy_docstring = True
napoleon_google_docstring = False
# Docstrings written for readers of the source use plain text; keep them from turning into
# cross-reference warnings.
nitpicky = False
# Docstring type fields such as "(T, B, X) array" are text, not references: without this,
# napoleon's types become ambiguous cross-references to every attribute named T.
suppress_warnings = ["myst.header", "ref.python"]


def _copy_notebooks(app):
    """Copy ../notebooks/*.ipynb into docs/tutorials/ (the rendered tutorials)."""
    target = DOCS / "tutorials"
    target.mkdir(exist_ok=True)
    sources = {nb.name: nb for nb in (ROOT / "notebooks").glob("[0-9]*.ipynb")}
    for old in target.glob("*.ipynb"):
        if old.name not in sources:
            old.unlink()
    for name, nb in sorted(sources.items()):
        copy = target / name
        if not copy.exists() or copy.read_bytes() != nb.read_bytes():
            shutil.copyfile(nb, copy)


def _bug_table(app):
    """Keep the planted-bug table in docs/exercises.md (between its markers) equal to the
    catalogue; the file is then complete as plain Markdown too."""
    from npcell.exercises.guide import with_bug_table

    path = DOCS / "exercises.md"
    text = path.read_text()
    if with_bug_table(text) != text:  # unchanged files keep the build incremental
        path.write_text(with_bug_table(text))


_FIELD = re.compile(r"^\w+ : \S")  # "name : text", the plain-text field style of the docstrings
_STAR = re.compile(r"(?<=[\s(,])\*(?=\w+[),])")  # "(T, *shape)": a star that is not emphasis


def _plain_docstrings(app, what, name, obj, options, lines):
    """Let plain-text docstrings written for readers of the source render without warnings:
    a "name : text" line (outside napoleon's sections, which are already converted) starts its
    own paragraph, so an indented continuation below it reads as a definition, and a star in
    "(T, *shape)" is literal."""
    out = []
    for line in lines:
        if _FIELD.match(line) and out and out[-1].strip():
            out.append("")
        out.append(_STAR.sub(r"\\*", line))
    lines[:] = out


OPTIONAL_PAGES = ("results", "performance")  # written by the training and benchmark tools


def _optional_pages(app, docname, source):
    """Drop the toctree entries of measurement pages that have not been written yet, so a
    fresh checkout still builds without warnings (the page list stays in index.md)."""
    if docname != "index":
        return
    missing = [p for p in OPTIONAL_PAGES if not (DOCS / f"{p}.md").exists()]
    for page in missing:
        source[0] = re.sub(rf"(?m)^{page}\n", "", source[0])
        print(f"npcell docs: {page}.md not written yet; left out of the table of contents")


def setup(app):
    app.connect("source-read", _optional_pages)
    app.connect("autodoc-process-docstring", _plain_docstrings, priority=600)
    app.connect("builder-inited", _copy_notebooks)
    app.connect("builder-inited", _bug_table)
