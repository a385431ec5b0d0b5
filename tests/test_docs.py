"""The Sphinx docs build offline with zero warnings (as `make docs`: -W --keep-going).

The notebooks are rendered without executing them (docs/conf.py), so the build takes seconds;
the derivation pages include code by function name, so a renamed or deleted function fails it.
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
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, "MPLBACKEND": "Agg"})
    assert proc.returncode == 0, f"sphinx failed:\n{proc.stderr[-4000:]}"
    assert "WARNING" not in proc.stderr and "ERROR" not in proc.stderr, proc.stderr[-4000:]
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
