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
# Mathematics is typeset by a MathJax that travels with the built pages (_static/mathjax/), so
# the equations render with nothing fetched: on an intranet, from a USB stick, on a train.
# The files are MathJax 3.2.2's own distribution (es5/) as shipped, unchanged, by the
# django-static-mathjax package (a dependency of the docs and test extras; no dependencies of
# its own); _local_mathjax copies what the pages use at the end of the build. TeX in, SVG out:
# the SVG output draws its glyphs from JavaScript, with no web fonts, which browsers refuse to
# pages opened from file://. myst's window.MathJax settings (typeset only class "math") apply.
# Without the package the pages fall back to Sphinx's CDN MathJax, with a warning (-W fails).
_MATHJAX = __import__("importlib").util.find_spec("mathjax")
_MATHJAX = (Path(_MATHJAX.submodule_search_locations[0]) / "static" / "mathjax" / "es5"
            if _MATHJAX and _MATHJAX.submodule_search_locations else None)
if _MATHJAX is not None and (_MATHJAX / "tex-svg.js").is_file():
    mathjax_path = "mathjax/tex-svg.js"  # under _static/
else:
    _MATHJAX = None
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


def _local_mathjax(app, exception):
    """Copy MathJax (tex-svg.js and the parts it loads on demand: TeX extensions, the menu,
    accessibility) into the built pages' _static/mathjax/, once per output folder."""
    if exception is not None or app.builder.format != "html":
        return
    if _MATHJAX is None:
        from sphinx.util import logging

        logging.getLogger(__name__).warning(
            "django-static-mathjax is not installed: the pages load MathJax from a CDN and "
            "show raw LaTeX offline (pip install -e '.[docs]')")
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    stamp = target / ".npcell-source"
    source = f"{_MATHJAX} {(_MATHJAX / 'tex-svg.js').stat().st_size}"
    if stamp.is_file() and stamp.read_text() == source:
        return

    def unused(folder, names):  # the other combined builds and the web-font (CHTML) output
        if Path(folder) == _MATHJAX:
            return [n for n in names if n.endswith(".js") and n != "tex-svg.js"]
        return [n for n in names if n.startswith("chtml")]

    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(_MATHJAX, target, ignore=unused)
    shutil.copyfile(_MATHJAX.parent / "LICENSE", target / "LICENSE")
    stamp.write_text(source)


def setup(app):
    app.connect("build-finished", _local_mathjax)
    app.connect("source-read", _optional_pages)
    app.connect("autodoc-process-docstring", _plain_docstrings, priority=600)
    app.connect("builder-inited", _copy_notebooks)
    app.connect("builder-inited", _bug_table)
