"""The same cells on CuPy: equal to NumPy, gradients checked on the GPU, fused kernels == plain.

Every test here is marked ``gpu``; tests/conftest.py skips them with a reason when CuPy or a
CUDA GPU is missing. On a GPU machine: ``benchmarks/gpu_check.sh OUTDIR`` runs them.
"""

import numpy as np
import pytest

import npcell
from npcell import engine

pytestmark = pytest.mark.gpu

LSTM_FAMILY = [("lstm", {}), ("peephole", {}), ("wmc", {}), ("wmc", {"cell_bias": True}),
               ("peephole", {"diagonal": False})]


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
    from npcell.backend import to_numpy

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


@pytest.mark.parametrize("kind", sorted(npcell.CELLS))
def test_every_cell_on_cupy_equals_numpy(kind):
    import cupy

    cpu, gpu, x, dh = _case(kind, {})
    ref = _run(cpu, x, dh)
    out = _run(gpu, cupy.asarray(x), cupy.asarray(dh))
    assert isinstance(out[0], cupy.ndarray) and isinstance(out[3], cupy.ndarray)
    _assert_close(out, ref, atol=1e-10)


@pytest.mark.parametrize("kind", sorted(npcell.CELLS))
def test_gradcheck_full_float64_on_gpu(kind):
    import cupy

    _, gpu, x, _ = _case(kind, {}, T=3, B=2, X=2, H=3)
    report = npcell.gradcheck(gpu, cupy.asarray(x), mode="full")
    assert report.ok, str(report)


@pytest.mark.parametrize("kind,options", LSTM_FAMILY)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_sequence_path_equals_stepwise_on_gpu(kind, options, dtype):
    import cupy

    _, gpu, x, dh = _case(kind, options, dtype=dtype)
    x, dh = cupy.asarray(x), cupy.asarray(dh)
    tol = 1e-12 if dtype == "float64" else 1e-5
    _assert_close(_run(gpu, x, dh, fused=True), _run(gpu, x, dh, fused=False), atol=tol)


@pytest.mark.parametrize("B,T,H", [(1, 1, 1), (3, 7, 5), (16, 40, 64)])
def test_fused_kernels_equal_plain_path_float64(B, T, H):
    import cupy

    _, gpu, x, dh = _case("lstm", {}, T=T, B=B, X=3, H=H, seed=B + T + H)
    x, dh = cupy.asarray(x), cupy.asarray(dh)
    with engine.use_fused_kernels(False):
        plain = _run(gpu, x, dh)
    with engine.use_fused_kernels(True):
        assert engine.active(x)
        fused = _run(gpu, x, dh)
    _assert_close(fused, plain, atol=1e-12)
    assert fused[0].dtype == cupy.float64


def test_fused_kernels_gradcheck_float64():
    import cupy

    _, gpu, x, _ = _case("lstm", {}, T=4, B=2, X=2, H=3)
    with engine.use_fused_kernels(True):
        report = npcell.gradcheck(gpu, cupy.asarray(x), mode="full")
    assert report.ok, str(report)
