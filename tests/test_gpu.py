"""The same cells on CuPy: equal to NumPy, gradients checked on the GPU, fused kernels == plain.

Every test that takes the ``cp`` fixture runs twice: on the CPU test double of CuPy
(tests/fake_cupy.py: NumPy behind CuPy's rules, so it runs in ``make test`` and catches a stray
NumPy call on a device array), and on real CuPy, marked ``gpu`` (tests/conftest.py skips it with
a reason when CuPy or a CUDA GPU is missing). On a GPU machine ``benchmarks/gpu_check.sh OUTDIR``
runs the ``gpu`` ones. The double's numbers are NumPy's, so "GPU == CPU" is exact there; what it
checks is the code path (no implicit conversion, no mixing of host and device arrays, and the
number of host-device synchronisations).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import npcell
from npcell import backend, engine
from npcell.backend import to_numpy
from npcell.training import SequenceModel, TrainConfig, train

LSTM_FAMILY = [("lstm", {}), ("peephole", {}), ("wmc", {}), ("wmc", {"cell_bias": True}),
               ("peephole", {"diagonal": False})]


@pytest.fixture(params=["fake", pytest.param("cupy", marks=pytest.mark.gpu)])
def cp(request):
    """The CuPy module under test: the CPU double, or real CuPy on a GPU machine."""
    if request.param == "fake":
        return request.getfixturevalue("fake_cupy")
    import cupy

    return cupy


def _case(kind, options, dtype="float64", T=5, B=3, X=2, H=4, seed=0):
    rng = np.random.default_rng(seed)
    cpu = npcell.make_cell(kind, X, H, dtype=dtype, seed=seed, backend="numpy", **options)
    gpu = cpu.to("cupy")
    x = rng.standard_normal((T, B, X)).astype(dtype)
    dh = rng.standard_normal((T, B, H)).astype(dtype)
    return cpu, gpu, x, dh


def _run(cell, x, dh, **kw):
    h, state, cache = npcell.forward(cell, x, **kw)
    grads, dx, dstate0 = npcell.backward(cell, dh, cache)
    return h, state, grads, dx, dstate0


def _host(tree):
    if isinstance(tree, dict):
        return {k: _host(v) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return type(tree)(_host(v) for v in tree)
    return to_numpy(tree)


def _assert_close(a, b, atol):
    a, b = _host(a), _host(b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _assert_close(a[k], b[k], atol)
    elif isinstance(a, (tuple, list)):
        for u, v in zip(a, b, strict=True):
            _assert_close(u, v, atol)
    else:
        np.testing.assert_allclose(a, b, atol=atol, rtol=0)


# ----- forward, backward, gradcheck, fused paths ---------------------------------------------
@pytest.mark.parametrize("kind", sorted(npcell.CELLS))
def test_every_cell_on_cupy_equals_numpy(cp, kind):
    cpu, gpu, x, dh = _case(kind, {})
    ref = _run(cpu, x, dh)
    out = _run(gpu, cp.asarray(x), cp.asarray(dh))
    assert isinstance(out[0], cp.ndarray) and isinstance(out[3], cp.ndarray)
    assert all(isinstance(g, cp.ndarray) for g in out[2].values())
    _assert_close(out, ref, atol=1e-10)


@pytest.mark.parametrize("kind", sorted(npcell.CELLS))
def test_gradcheck_full_float64_on_gpu(cp, kind):
    # H=4: at H=3, seed 0, ln_lstm's dstate0[h] misses tol 1e-6 (1.07e-6) on NumPy too, a
    # finite-difference error of layer norm over 3 units (other seeds and H pass at <3e-7)
    _, gpu, x, _ = _case(kind, {}, T=3, B=2, X=2, H=4)
    report = npcell.gradcheck(gpu, cp.asarray(x), mode="full")
    assert report.ok, str(report)


@pytest.mark.parametrize("kind,options", LSTM_FAMILY)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_sequence_path_equals_stepwise_on_gpu(cp, kind, options, dtype):
    _, gpu, x, dh = _case(kind, options, dtype=dtype)
    x, dh = cp.asarray(x), cp.asarray(dh)
    tol = 1e-12 if dtype == "float64" else 1e-5
    _assert_close(_run(gpu, x, dh, fused=True), _run(gpu, x, dh, fused=False), atol=tol)


@pytest.mark.parametrize("B,T,H", [(1, 1, 1), (3, 7, 5), (16, 40, 64)])
def test_fused_kernels_equal_plain_path_float64(cp, B, T, H):
    """The ElementwiseKernels (on the double: their C body run as NumPy) == the plain path."""
    _, gpu, x, dh = _case("lstm", {}, T=T, B=B, X=3, H=H, seed=B + T + H)
    x, dh = cp.asarray(x), cp.asarray(dh)
    with engine.use_fused_kernels(False):
        plain = _run(gpu, x, dh)
    with engine.use_fused_kernels(True):
        assert engine.active(x)
        fused = _run(gpu, x, dh)
    _assert_close(fused, plain, atol=1e-12)
    assert fused[0].dtype == cp.float64


@settings(max_examples=15, deadline=None,  # the double holds no state between examples
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(B=st.integers(1, 5), T=st.integers(1, 6), X=st.integers(1, 4), H=st.integers(1, 9),
       seed=st.integers(0, 2**16), dtype=st.sampled_from(["float32", "float64"]))
def test_elementwise_kernel_bodies_equal_plain_path_any_shape(fake_cupy, B, T, X, H, seed,
                                                              dtype):
    """On the double the kernels' C bodies run as NumPy: any shape, seed and dtype gives the
    plain path's numbers (the row/unit index arithmetic of the bodies included)."""
    _, gpu, x, dh = _case("lstm", {}, dtype=dtype, T=T, B=B, X=X, H=H, seed=seed)
    x, dh = fake_cupy.asarray(x), fake_cupy.asarray(dh)
    with engine.use_fused_kernels(False):
        plain = _run(gpu, x, dh)
    with engine.use_fused_kernels(True):
        fused = _run(gpu, x, dh)
    _assert_close(fused, plain, atol=1e-12 if dtype == "float64" else 2e-6)


def test_fused_kernels_gradcheck_float64(cp):
    _, gpu, x, _ = _case("lstm", {}, T=4, B=2, X=2, H=3)
    with engine.use_fused_kernels(True):
        report = npcell.gradcheck(gpu, cp.asarray(x), mode="full")
    assert report.ok, str(report)


def test_mixed_backends_raise(cp):
    cell = npcell.make_cell("lstm", 3, 4)
    with pytest.raises(npcell.BackendError, match="cupy array but the lstm cell's parameters"):
        npcell.forward(cell, cp.zeros((2, 1, 3)))


# ----- diagnose and training on the device ---------------------------------------------------
@pytest.mark.parametrize("kind", ["lstm", "wmc", "gru"])
def test_diagnose_on_cupy_equals_numpy(cp, kind):
    cpu, gpu, x, _ = _case(kind, {}, T=6)
    ref = npcell.diagnose(cpu, x)
    out = npcell.diagnose(gpu, cp.asarray(x))
    assert out.loss == pytest.approx(ref.loss, rel=1e-10)
    assert out.gate_activation == ref.gate_activation
    for name in ref.grads:
        np.testing.assert_allclose(out.grad_step_norm[name], ref.grad_step_norm[name],
                                   rtol=1e-10, atol=1e-14)
    for gate in ref.saturation:
        np.testing.assert_array_equal(out.saturation[gate], ref.saturation[gate])


def _config(task, **overrides):
    options = {"adding": {"T": 6, "n_train": 64, "n_test": 16},
               "copy": {"T": 3, "n_train": 64, "n_test": 16}}[task]
    values = dict(task=task, task_options=options, cell="wmc", hidden=5, batch=16,
                  optimizer="sgd", lr=1e-2, momentum=0.9, nesterov=True, clip=1.0, epochs=1,
                  steps_per_epoch=4, log_every=1, dtype="float64", seed=0, eval_batch=16)
    values.update(overrides)
    return TrainConfig(**values)


@pytest.mark.parametrize("task,overrides", [("adding", {}), ("copy", {}),
                                            ("copy", {"embedding": 3, "optimizer": "adam"})])
def test_training_on_cupy_matches_numpy(cp, tmp_path, task, overrides):
    config = _config(task, **overrides)
    on_cpu = train(config, tmp_path / "cpu", progress=False)
    with npcell.use_backend("cupy"):
        on_gpu = train(config, tmp_path / "gpu", progress=False)
    assert [r["split"] for r in on_gpu.history] == [r["split"] for r in on_cpu.history]
    np.testing.assert_allclose([r["loss"] for r in on_gpu.history],
                               [r["loss"] for r in on_cpu.history], rtol=1e-9)
    metrics = [(r.get("metric"), s.get("metric")) for r, s in zip(on_gpu.history,
                                                                   on_cpu.history)]
    np.testing.assert_allclose([m for m, _ in metrics if m is not None],
                               [m for _, m in metrics if m is not None], rtol=1e-9)


# ----- what only the double can show: stray NumPy calls and synchronisations -----------------
def test_double_catches_a_stray_numpy_asarray_on_a_device_array(fake_cupy, monkeypatch,
                                                                tmp_path):
    """A step function that calls numpy.asarray on its input works on NumPy and on the double
    is the TypeError CuPy raises; the same for a loss inside the training model."""
    cpu, gpu, x, dh = _case("lstm", {})

    def planted(cell):
        step = cell.step_forward

        def stray(params, x_t, state):
            return step(params, np.asarray(x_t), state)  # the bug: a host copy of x_t

        monkeypatch.setattr(cell, "step_forward", stray)

    planted(cpu)
    npcell.forward(cpu, x, fused=False)  # NumPy never notices
    planted(gpu)
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array"):
        npcell.forward(gpu, fake_cupy.asarray(x), fused=False)

    mse = SequenceModel.run.__globals__["mse_loss"]

    def stray_mse(pred, target):
        loss, dpred = mse(pred, target)
        return np.asarray(loss), dpred  # the bug: reads the loss into NumPy

    monkeypatch.setitem(SequenceModel.run.__globals__, "mse_loss", stray_mse)
    with npcell.use_backend("cupy"), pytest.raises(TypeError, match="Implicit conversion"):
        train(_config("adding"), tmp_path, progress=False)


def test_double_refuses_host_arrays_where_cupy_does(fake_cupy):
    a = fake_cupy.zeros((2, 3))
    with pytest.raises(TypeError):
        np.asarray(a)
    with pytest.raises(TypeError, match="Unsupported type"):
        a + np.ones((2, 3))
    with pytest.raises(TypeError, match="Unsupported type"):
        a[...] = np.ones((2, 3))
    with pytest.raises(AttributeError, match="nanmedian"):
        fake_cupy.nanmedian  # noqa: B018 - a name the double (and npcell) does not use
    fake_cupy.SYNCS.reset()
    total = a.sum()
    assert isinstance(total, fake_cupy.ndarray) and total.shape == ()  # 0-d, as CuPy's
    assert fake_cupy.SYNCS.count == 0
    assert float(total) == 0.0 and fake_cupy.SYNCS.count == 1


@pytest.mark.parametrize("task,overrides", [("adding", {}), ("copy", {}),
                                            ("copy", {"embedding": 3, "optimizer": "adam"}),
                                            ("copy", {"clip": None})])
def test_a_training_step_synchronises_host_and_device_once(fake_cupy, tmp_path, task,
                                                           overrides):
    """Between two optimiser steps of the real loop (batch, forward, loss, backward, clip,
    update, log line, progress bar) the host reads one value back: the logged loss."""
    counts = []

    def at_step(step, loss):
        counts.append(fake_cupy.SYNCS.count)

    with npcell.use_backend("cupy"):
        train(_config(task, **overrides), tmp_path, progress=False, callback=at_step)
    per_step = np.diff(counts)
    assert len(per_step) == 3
    assert list(per_step) == [1, 1, 1], fake_cupy.SYNCS.where


@pytest.mark.parametrize("kind", ["lstm", "fw_lstm"])  # fw_lstm: gate kinds read from values
def test_diagnose_synchronisations_do_not_grow_with_T(fake_cupy, kind):
    """diagnose reads its per-step series back once each, not once per step (or per gate)."""
    counts = []
    for T in (4, 12):
        _, gpu, x, _ = _case(kind, {}, T=T)
        fake_cupy.SYNCS.reset()
        npcell.diagnose(gpu, fake_cupy.asarray(x))
        counts.append(fake_cupy.SYNCS.count)
    assert counts[0] == counts[1], fake_cupy.SYNCS.where


def test_cupy_is_imported_and_checked_once(fake_cupy, monkeypatch):
    calls = []
    monkeypatch.setattr(fake_cupy, "is_available", lambda: calls.append(1) or True)
    monkeypatch.setattr(backend, "_cupy", {"checked": False, "module": None, "error": None})
    _, gpu, x, dh = _case("wmc", {})
    for _ in range(3):
        _run(gpu, fake_cupy.asarray(x), fake_cupy.asarray(dh), fused=False)
    assert backend.array_module(fake_cupy.zeros(1)) is fake_cupy
    assert len(calls) == 1  # not once per step function call
