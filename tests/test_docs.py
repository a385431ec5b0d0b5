"""The Sphinx docs build offline with zero warnings (as `make docs`: -W --keep-going).

The tutorials are executed by myst-nb (cached in docs/_build/.jupyter_cache, so only the first
build after a notebook changes pays for it) and each tutorial page must show every figure its
notebook draws. The derivation pages include code by function name, so a renamed or deleted
function fails the build.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx")
pytest.importorskip("myst_nb")

ROOT = Path(__file__).resolve().parent.parent


def test_docs_build_without_warnings(tmp_path):
    out = tmp_path / "html"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q",
         "-d", str(tmp_path / "doctrees"), str(ROOT / "docs"), str(out)],
        capture_output=True, text=True, timeout=900, cwd=ROOT, env=dict(os.environ))
    assert proc.returncode == 0, f"sphinx failed:\n{proc.stderr[-4000:]}"
    # the executing kernels log one line each about their local TCP transport: not the build's
    build_log = "\n".join(line for line in proc.stderr.splitlines()
                          if not line.startswith("[IPKernelApp] WARNING | Kernel is running"))
    assert "WARNING" not in build_log and "ERROR" not in build_log, build_log[-4000:]
    # every page the index promises exists, and the derivations show the real code
    for page in ["index", "tutorials", "exercises", "api", "derivations/lstm",
                 "derivations/connected", "derivations/gru"]:
        assert (out / f"{page}.html").is_file(), page
    tutorials = sorted(p.stem for p in (out / "tutorials").glob("*.html"))
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9]*.ipynb"))
    assert tutorials == notebooks
    lstm_page = (out / "derivations" / "lstm.html").read_text()
    assert "constant error carousel of eq. (4)" in lstm_page  # a comment of lstm_step_backward
    bugs_page = (out / "exercises.html").read_text()
    from npcell.exercises import BUGS

    assert all(name in bugs_page for name in BUGS)
    check_tutorial_figures(out)


def check_tutorial_figures(out):
    """Every tutorial page holds as many images as its executed notebook has figure outputs
    (read back from the execution cache), and every notebook that draws shows at least one."""
    import nbformat
    from jupyter_cache import get_cache

    cache = get_cache(ROOT / "docs" / "_build" / ".jupyter_cache")
    drawing = 0
    for path in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")):
        _, executed = cache.merge_match_into_notebook(nbformat.read(path, as_version=4))
        figures = sum("image/png" in out.get("data", {}) for cell in executed.cells
                      if cell.cell_type == "code" for out in cell.outputs)
        page = (out / "tutorials" / f"{path.stem}.html").read_text()
        assert page.count("<img") == figures, (path.stem, page.count("<img"), figures)
        source = path.with_suffix(".py").read_text()
        if "plt.show()" in source:
            assert figures >= 1, f"{path.stem} draws but its page shows no figure"
            drawing += 1
        assert "Take-away:" in page, f"{path.stem}: the page lacks the computed take-away"
    assert drawing >= 5
