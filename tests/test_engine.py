"""The engine against the reference: every fused pair npcell.engine registers, on every path it
can take (plain NumPy, the Numba CPU kernels, CuPy with its kernels), equals looping the kind's
reference step pair (npcell.sequence.stepwise_forward / stepwise_backward).

Reference tests (gradcheck, hand-written equations per cell) live in test_lstm.py,
test_cells_zoo.py, test_identities.py, ...; this file and test_kernels_cpu.py,
test_performance_paths.py and test_gpu.py are the engine's.
"""

import contextlib
import re
from pathlib import Path
from unittest import mock

import fake_cupy
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import npcell
from npcell import engine
from npcell.backend import cupy_available, to_numpy
from npcell.engine.cpu import loops as cpu_loops
from npcell.sequence import stepwise_backward, stepwise_forward

# Every registered kind with every option that changes the fused code it runs.
COMBOS = [("lstm", {}),
          ("peephole", {}), ("peephole", {"diagonal": False}), ("peephole", {"cell_bias": True}),
          ("wmc", {}), ("wmc", {"cell_bias": True}), ("wmc", {"diagonal": True}),
          ("wmc", {"diagonal": True, "cell_bias": True}),
          ("gru", {}), ("gru", {"reset_after": True}), ("ulstm", {}), ("ulstm", {"use_o": False})]
CPU_KERNEL_KINDS = ("lstm", "peephole", "wmc")


def test_every_registered_kind_is_covered():
    assert {kind for kind, _ in COMBOS} == set(engine.FUSED)


def _skip_unless_available(path, kind):
    if path == "numba" and not cpu_loops.available():
        pytest.skip("needs Numba (a default dependency where it installs)")
    if path == "numba" and kind not in CPU_KERNEL_KINDS:
        pytest.skip(f"{kind} has no CPU kernels (its fused pair is plain NumPy)")
    if path == "cupy" and not cupy_available():
        pytest.skip("needs CuPy with a CUDA GPU (cupy missing or no GPU visible)")


def _case(kind, options, T, B, X, H, seed, dtype, scale):
    cell = npcell.make_cell(kind, X, H, seed=seed, dtype=dtype, **options)
    if kind in ("peephole", "wmc"):  # cell weights large enough for the reads to matter
        cell.params.update({name: (value * scale ** 0.5).astype(dtype)
                            for name, value in cell.params.items() if name.endswith("c")})
    rng = np.random.default_rng(seed)
    x = (scale * rng.standard_normal((T, B, X))).astype(dtype)
    state = {k: rng.standard_normal(shape).astype(dtype)
             for k, shape in cell.state_shapes(B).items()}
    dh = rng.standard_normal((T, B, H)).astype(dtype)
    dstate = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in state.items()}
    return cell, x, state, dh, dstate


# fake_cupy: the CuPy path on tests/fake_cupy.py (NumPy behind CuPy's rules), in make test
@pytest.mark.parametrize("path", ["plain", "numba", "fake_cupy",
                                  pytest.param("cupy", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("kind,options", COMBOS)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(T=st.integers(1, 7), B=st.integers(1, 4), H=st.integers(1, 6),
       # both sides of the CPU kernels' SMALL_INPUT: the loops' own input term and the GEMMs
       X=st.integers(1, cpu_loops.SMALL_INPUT + 2), seed=st.integers(0, 2**16),
       dtype=st.sampled_from(["float64", "float32"]),
       scale=st.sampled_from([0.1, 1.0, 60.0]),  # 60: saturated gates, exp overflows
       input_in_loops=st.booleans())
def test_fused_equals_stepwise(path, kind, options, T, B, X, H, seed, dtype, scale,
                               input_in_loops):
    _skip_unless_available(path, kind)
    cell, x, state, dh, dstate = _case(kind, options, T, B, X, H, seed, dtype, scale)
    # The reference: the step loop on the host, in the same dtype.
    h_ref, s_ref, steps = stepwise_forward(cell, x, state)
    g_ref, dx_ref, d0_ref = stepwise_backward(cell, dh, steps, dstate)
    # On the CPU test double the CuPy path runs in make test; it restores the backend after.
    with fake_cupy.installed() if path == "fake_cupy" else contextlib.nullcontext():
        if path in ("cupy", "fake_cupy"):
            cell = cell.to("cupy")
            x, dh = cell.xp.asarray(x), cell.xp.asarray(dh)
            state = {k: cell.xp.asarray(v) for k, v in state.items()}
            dstate = {k: cell.xp.asarray(v) for k, v in dstate.items()}
        # Numba's loops take the input term step by step for small X from B*H >= 2048 units;
        # input_in_loops exercises that branch on these small shapes too.
        units = 1 if input_in_loops else 10**9
        with (engine.use_fused_kernels(path != "plain"),
              mock.patch.object(cpu_loops, "SMALL_INPUT_MIN_UNITS", units)):
            h, s_T, cache = npcell.forward(cell, x, state, fused=True)
            grads, dx, d0 = npcell.backward(cell, dh, cache, dstate)
        assert cache.path == "fused"
        tol = 1e-11 if dtype == "float64" else 3e-5
        np.testing.assert_allclose(to_numpy(h), h_ref, rtol=tol, atol=tol)
        np.testing.assert_allclose(to_numpy(dx), dx_ref, rtol=tol, atol=tol * 10)
        for k in cell.state_names:
            np.testing.assert_allclose(to_numpy(s_T[k]), s_ref[k], rtol=tol, atol=tol)
            np.testing.assert_allclose(to_numpy(d0[k]), d0_ref[k], rtol=tol, atol=tol * 10)
        assert list(grads) == list(cell.params)
        for name in cell.params:
            assert grads[name].dtype == np.dtype(dtype)
            np.testing.assert_allclose(to_numpy(grads[name]), g_ref[name], rtol=tol * 10,
                                       atol=tol * 10 * T * B, err_msg=name)
        assert np.all(np.isfinite(to_numpy(h)))  # exp overflow gives the right limits


def test_a_default_install_runs_the_numba_path():
    """numba is a default dependency (with an environment marker), and the kernels run by
    default on NumPy arrays when it is there."""
    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    dependencies = text.split("dependencies = [", 1)[1].split("]", 1)[0]  # [project]'s list
    assert re.search(r"'numba>=[0-9.]+; python_version < \"3\.[0-9]+\"'", dependencies)
    if not cpu_loops.available():
        pytest.skip("Numba does not install on this Python (the marker left it out)")
    assert engine.fused_kernels_enabled() is None and engine.active(np.zeros(3))


def test_the_first_compile_is_announced_once(monkeypatch, capsys):
    if not cpu_loops.available():
        pytest.skip("needs Numba")
    monkeypatch.setattr(cpu_loops, "_disk_cache_exists", lambda: False)
    cpu_loops._compiled.cache_clear()
    try:
        cpu_loops._compiled()
        cpu_loops._compiled()
    finally:
        cpu_loops._compiled.cache_clear()
    err = capsys.readouterr().err
    assert err.count("compiling the Numba CPU kernels") == 1 and len(err.splitlines()) == 1
    monkeypatch.setattr(cpu_loops, "_disk_cache_exists", lambda: True)
    cpu_loops._compiled()
    assert capsys.readouterr().err == ""
