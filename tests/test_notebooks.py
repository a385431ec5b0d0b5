"""The teaching notebooks: each executes top to bottom, and each .ipynb matches its .py source.

The executor runs every ``notebooks/*.ipynb`` with nbclient on the ``python3`` kernel of the
interpreter running the tests (ipykernel's native kernel spec), with ``NPCELL_QUICK=1`` (fewer
steps) and matplotlib's inline backend (as Jupyter and the docs build run them), and fails on
any cell error or timeout, on anything a cell writes to stderr (warnings included), and when the
notebook's last cell does not print its computed take-away. Each take-away cell asserts the
claims it prints, so a take-away the data no longer supports fails here.
"""

import os
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
jupytext = pytest.importorskip("jupytext")

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
IPYNBS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
SOURCES = sorted(NOTEBOOK_DIR.glob("[0-9]*.py"))
CELL_TIMEOUT = 120  # seconds per cell


def test_every_source_has_its_notebook_and_back():
    assert len(SOURCES) >= 6, SOURCES
    assert {p.stem for p in SOURCES} == {p.stem for p in IPYNBS}


def _cells(nb):
    return [(c.cell_type, c.source.strip()) for c in nb.cells if c.source.strip()]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_ipynb_is_in_sync_with_py_and_stripped(source):
    from_py = jupytext.read(source)
    ipynb = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    assert _cells(from_py) == _cells(ipynb), (
        f"{source.name} and its .ipynb differ: run `.venv/bin/jupytext --sync {source}`")
    for cell in ipynb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{source.stem}.ipynb has stored outputs: strip them (jupytext --to ipynb)")
    assert ipynb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.notebooks
@pytest.mark.parametrize("path", IPYNBS, ids=lambda p: p.stem)
def test_notebook_executes(path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("NPCELL_QUICK", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend draws figures
    monkeypatch.delenv("TQDM_DISABLE", raising=False)  # as a user runs it: no warning either
    # The kernel must import this checkout's npcell even when the package is not installed.
    root = str(NOTEBOOK_DIR.parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    # ipykernel's native "python3" spec runs sys.executable: the interpreter running the tests.
    client.kernel_manager_class = _kernel_manager_class()
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    errors = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
              if out.output_type == "error"]
    assert not errors, errors
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    stderr = [out.text for out in outputs if out.output_type == "stream" and out.name == "stderr"]
    assert not stderr, f"{path.name} wrote to stderr: {stderr}"
    last_code = [cell for cell in nb.cells if cell.cell_type == "code"][-1]
    printed = "".join(out.get("text", "") for out in last_code.outputs)
    assert printed.startswith("Take-away:"), f"{path.name}: the last cell prints no take-away"
    print(f"{path.name}: {elapsed:.1f} s")
    assert elapsed < 60 * 3, f"{path.name} took {elapsed:.0f} s in quick mode"


def _kernel_manager_class():
    """A kernel manager whose 'python3' kernel is the test interpreter (not whatever python3
    a user-level Jupyter install points at)."""
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import KernelManager

    class ThisInterpreterKernel(KernelManager):
        @property
        def kernel_spec(self):
            return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f",
                                    "{connection_file}"],
                              display_name="Python 3", language="python", name="python3")

    return ThisInterpreterKernel
