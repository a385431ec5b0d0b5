"""The backend switch and the dtype policy."""

import builtins

import numpy as np
import pytest

import npcell
from npcell import backend


def test_numpy_is_default_and_context_manager_restores():
    assert npcell.get_backend() == "numpy"
    with npcell.use_backend("numpy") as xp:
        assert xp is np
    assert npcell.get_backend() == "numpy"


def test_cupy_requested_without_cupy_is_a_clear_error(monkeypatch):
    real_import = builtins.__import__

    def no_cupy(name, *args, **kwargs):
        if name == "cupy" or name.startswith("cupy."):
            raise ImportError("No module named 'cupy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cupy)
    monkeypatch.delitem(__import__("sys").modules, "cupy", raising=False)
    monkeypatch.setattr(backend, "_cupy", {"checked": False, "module": None, "error": None})
    with pytest.raises(npcell.BackendError, match=r"CuPy is not installed.*npcell\[gpu\]"):
        npcell.use_backend("cupy")
    with pytest.raises(npcell.BackendError, match="CuPy"):
        npcell.make_cell("lstm", 2, 3, backend="cupy")
    assert npcell.get_backend() == "numpy"  # a failed switch changes nothing
    assert not npcell.cupy_available()


def test_unknown_backend_and_dtype_are_clear_errors():
    with pytest.raises(npcell.BackendError, match="'jax'.*numpy"):
        npcell.use_backend("jax")
    with pytest.raises(npcell.DTypeError, match="float16"):
        npcell.make_cell("lstm", 2, 3, dtype="float16")
    with pytest.raises(npcell.DTypeError, match="int64"):
        npcell.make_cell("lstm", 2, 3, dtype="int64")


def test_array_module_refuses_mixed_backends():
    class FakeCupyArray:  # looks like a cupy array to backend_of()
        __module__ = "cupy._core.core"

    assert backend.array_module(np.zeros(2)) is np
    with pytest.raises(npcell.BackendError, match="mixed"):
        backend.array_module(np.zeros(2), FakeCupyArray())


def test_mixed_dtypes_are_refused_not_cast():
    cell = npcell.make_cell("lstm", 2, 3)  # float64
    x32 = np.zeros((4, 1, 2), dtype=np.float32)
    with pytest.raises(npcell.DTypeError, match=r"x has dtype float32.*float64"):
        npcell.forward(cell, x32)
    x = np.zeros((4, 1, 2))
    h, state, cache = npcell.forward(cell, x)
    with pytest.raises(npcell.DTypeError, match="dh has dtype float32"):
        npcell.backward(cell, h.astype(np.float32), cache)


def test_float32_cell_runs_in_float32():
    cell = npcell.make_cell("wmc", 2, 3, dtype="float32")
    x = np.ones((5, 2, 2), dtype=np.float32)
    h, state, cache = npcell.forward(cell, x)
    grads, dx, d0 = npcell.backward(cell, np.ones_like(h), cache)
    assert h.dtype == dx.dtype == d0["c"].dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values())
