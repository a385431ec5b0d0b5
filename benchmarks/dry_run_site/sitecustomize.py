"""Loaded only by ``benchmarks/gpu_check.sh --dry-run`` (it puts this folder first on PYTHONPATH).

It makes a CPU machine look like the GPU machine the check is written for, minus the GPU:

* ``import cupy`` gets tests/fake_cupy.py (NumPy behind CuPy's rules), so every CuPy code path
  runs;
* packages the GPU machine does not have (its python3 has numpy, cupy, torch, matplotlib,
  tqdm, scikit-learn and their dependencies, pytest, hypothesis) cannot be imported, so a
  dependency on one of them shows up here instead of on the GPU.
"""

import importlib.abc
import sys
from pathlib import Path

ABSENT_ON_THE_GPU_MACHINE = frozenset({
    "numba", "llvmlite", "mlxtend", "dask", "distributed", "jsonschema", "nbclient", "nbformat",
    "jupytext", "ipykernel", "pytest_timeout", "sphinx", "myst_nb", "myst_parser", "pandas",
    "cupyx",
})


class _Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ABSENT_ON_THE_GPU_MACHINE:
            raise ImportError(f"No module named {name!r} (not on the GPU machine; dry run)")
        return None


sys.meta_path.insert(0, _Absent())
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
import fake_cupy  # noqa: E402 - after the path entry above

sys.modules["cupy"] = fake_cupy.make_module()
