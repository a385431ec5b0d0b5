"""The fast paths stay exact: fused == stepwise after the optimisations, no hidden buffers,
cache size as documented, the CuPy kernel sources compute the LSTM gate block (compiled here
as C++ when a compiler exists), and ``benchmarks/bench.py --quick`` writes valid results.

No timing assertions here: speed targets live in benchmarks/ and docs/performance.md.
"""

import ctypes
import json
import re
import shutil
import subprocess
import sys
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npcell
from npcell import engine
from npcell.cli import main
from npcell.engine.cpu import loops as cpu_kernels
from npcell.engine.cuda import kernels
from npcell.engine.device import EXP_FORM_MIN_UNITS, device_for
from npcell.engine.lstm_family import PACKED_ORDER
from npcell.errors import ArgumentTypeError
from npcell.sequence import estimate_cache_bytes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the benchmark runner lives beside its twins
import bench  # noqa: E402

CONFIGS = [
    ("lstm", {}),
    ("peephole", {}),
    ("peephole", {"diagonal": False, "cell_bias": True}),
    ("wmc", {}),
    ("wmc", {"cell_bias": True}),
    ("wmc", {"diagonal": True}),
]


def make_case(kind, options, T, B, X, H, seed, dtype, scale=1.0):
    cell = npcell.make_cell(kind, X, H, seed=seed, dtype=dtype, **options)
    rng = np.random.default_rng(seed + 7)
    x = (scale * rng.standard_normal((T, B, X))).astype(dtype)
    state = {"h": (0.5 * rng.standard_normal((B, H))).astype(dtype),
             "c": rng.standard_normal((B, H)).astype(dtype)}
    dh = rng.standard_normal((T, B, H)).astype(dtype)
    dstate = {"h": rng.standard_normal((B, H)).astype(dtype),
              "c": rng.standard_normal((B, H)).astype(dtype)}
    return cell, x, state, dh, dstate


def run_both(cell, x, state, dh, dstate):
    out = {}
    for fused in (True, False):
        h, state_T, cache = npcell.forward(cell, x, state, fused=fused)
        assert cache.path == ("fused" if fused else "stepwise")
        grads, dx, dstate0 = npcell.backward(cell, dh, cache, dstate)
        out[fused] = (h, state_T, grads, dx, dstate0)
    return out


def assert_same(out, tol):
    (h, s, g, dx, d0), (h_r, s_r, g_r, dx_r, d0_r) = out[True], out[False]
    np.testing.assert_allclose(h, h_r, atol=tol, rtol=0)
    for k in s_r:
        np.testing.assert_allclose(s[k], s_r[k], atol=tol, rtol=0)
        np.testing.assert_allclose(d0[k], d0_r[k], atol=10 * tol, rtol=10 * tol)
    np.testing.assert_allclose(dx, dx_r, atol=10 * tol, rtol=10 * tol)
    assert list(g) == list(g_r)
    for k in g_r:
        assert g[k].dtype == g_r[k].dtype and g[k].shape == g_r[k].shape, k
        scale = max(1.0, float(np.abs(g_r[k]).max()))
        np.testing.assert_allclose(g[k], g_r[k], atol=10 * tol * scale, rtol=0, err_msg=k)


@settings(max_examples=20)
@given(config=st.sampled_from(CONFIGS), T=st.integers(1, 7), B=st.integers(1, 4),
       X=st.integers(1, 4), H=st.integers(1, 6), seed=st.integers(0, 2**16),
       dtype=st.sampled_from(["float32", "float64"]))
def test_fused_equals_stepwise_after_optimisations(config, T, B, X, H, seed, dtype):
    kind, options = config
    cell, x, state, dh, dstate = make_case(kind, options, T, B, X, H, seed, dtype)
    assert_same(run_both(cell, x, state, dh, dstate), 1e-12 if dtype == "float64" else 2e-5)


@pytest.mark.parametrize("kind,options", CONFIGS)
@pytest.mark.parametrize("B,H", [(8, 32), (1, 8)])  # exp form (B*H >= 256) and tanh form
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 2e-5)])
def test_fused_equals_stepwise_in_both_activation_forms(kind, options, B, H, dtype, tol):
    cell, x, state, dh, dstate = make_case(kind, options, 6, B, 3, H, 11, dtype)
    with engine.use_fused_kernels(False):  # the plain path: with Numba the kernels would run
        assert device_for(x, units=B * H).exp_form == (B * H >= EXP_FORM_MIN_UNITS)
        assert_same(run_both(cell, x, state, dh, dstate), tol)


@pytest.mark.parametrize("kind,options", CONFIGS)
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 2e-5)])
def test_saturated_exp_form_is_finite_quiet_and_exact(kind, options, dtype, tol):
    # Inputs of size 1e3 drive pre-activations far below -709 (float64) / -88 (float32), where
    # exp(-a) overflows to inf in the NumPy "exp form"; the limits must still be exact and no
    # warning escapes.
    cell, x, state, dh, dstate = make_case(kind, options, 5, 16, 2, 16, 3, dtype, scale=1e3)
    assert 16 * 16 >= EXP_FORM_MIN_UNITS  # this case takes the exp form
    with warnings.catch_warnings(), engine.use_fused_kernels(False):
        warnings.simplefilter("error")
        assert device_for(x, units=16 * 16).exp_form
        out = run_both(cell, x, state, dh, dstate)
    for arr in (out[True][0], out[True][3], *out[True][2].values()):
        assert np.isfinite(arr).all()
    assert_same(out, tol)


@pytest.mark.parametrize("kind,options", CONFIGS)
def test_backward_reads_the_cache_without_changing_it(kind, options):
    cell, x, state, dh, dstate = make_case(kind, options, 6, 3, 2, 5, 1, "float64")
    _, _, cache = npcell.forward(cell, x, state)
    before = {k: v.copy() for k, v in cache.data.items()}
    first = npcell.backward(cell, dh, cache, dstate)
    second = npcell.backward(cell, dh, cache, dstate)
    for k, v in before.items():
        np.testing.assert_array_equal(cache.data[k], v, err_msg=k)
    for k in first[0]:
        np.testing.assert_array_equal(first[0][k], second[0][k])
    np.testing.assert_array_equal(first[1], second[1])


@pytest.mark.parametrize("kind,options", CONFIGS)
def test_cache_nbytes_is_the_memory_guards_formula(kind, options):
    """The fused cache holds exactly what lstm_family_cache_floats counts: cache.nbytes adds the
    reference to x (T*B*X) and leaves out the final state's two copies (2BH), returned apart."""
    T, B, X, H = 9, 4, 3, 5
    cell, x, state, _, _ = make_case(kind, options, T, B, X, H, 0, "float32")
    _, _, cache = npcell.forward(cell, x, state)
    formula = estimate_cache_bytes(cell, T, B, fused=True)
    assert cache.nbytes == formula + (T * B * X - 2 * B * H) * 4


def _peak_above_cache(cell, x):
    # Call under the no_workspace fixture, so that the forward allocates its cache (the
    # workspace would hand back the previous call's buffers, which tracemalloc would not see).
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        _, _, cache = npcell.forward(cell, x)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return peak - cache.nbytes + x.nbytes  # x is referenced by the cache, not allocated


@pytest.mark.parametrize("kind", ["lstm", "wmc"])
def test_forward_workspace_does_not_grow_with_T(kind, no_workspace):
    # Everything the forward allocates beyond the cache (packed weights, per-step temporaries)
    # must be the same for 20 and 320 steps: no buffer per step and none of size T hidden away.
    cell = npcell.make_cell(kind, 3, 64, dtype="float64")
    rng = np.random.default_rng(0)
    short = _peak_above_cache(cell, rng.standard_normal((20, 8, 3)))
    long = _peak_above_cache(cell, rng.standard_normal((320, 8, 3)))
    step_of_gates = 8 * 4 * 64 * 8  # the size of one step's gate buffer, in bytes
    assert abs(long - short) < step_of_gates, (short, long)


def test_packed_order_puts_sigmoid_gates_first_and_candidate_last():
    assert PACKED_ORDER[-1] == "g" and set(PACKED_ORDER) == {"i", "f", "g", "o"}


# ----- the CuPy kernel sources, compiled as C++ on the CPU -----------------------------------
def _compile_kernel(source, tmp_path):
    """Wrap an ElementwiseKernel body in a C++ loop over i, as CuPy does on the GPU."""
    args, prologue = [], []
    for direction, params in (("in", source.in_params), ("out", source.out_params)):
        for spec in params.split(","):
            words = spec.split()
            name = words[-1]
            if words[0] == "int32":
                args.append(f"int {name}")
            elif words[0] == "raw":
                args.append(f"T* {name}")
            else:
                args.append(f"T* {name}_ptr")
                ref = "T&" if direction == "out" else "const T"
                prologue.append(f"{ref} {name} = {name}_ptr[i];")
    code = (
        "#include <cmath>\n#include <cstddef>\nusing std::tanh;\ntypedef double T;\n"
        f'extern "C" void run(long n, {", ".join(args)}) {{\n'
        "  for (ptrdiff_t i = 0; i < n; ++i) {\n" + "\n".join(prologue) + source.body
        + "\n  }\n}\n"
    )
    src = tmp_path / f"{source.name}.cpp"
    lib = tmp_path / f"{source.name}.so"
    src.write_text(code)
    subprocess.run(["g++", "-O1", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    fn = ctypes.CDLL(str(lib)).run
    names = [re.split(r"\s+", s.strip())[-1] for s in
             (source.in_params + "," + source.out_params).split(",")]
    return fn, names


def _call(fn, names, n, arrays):
    argv = [ctypes.c_long(n)]
    for name in names:
        value = arrays[name]
        if isinstance(value, int):
            argv.append(ctypes.c_int(value))
        else:
            assert value.dtype == np.float64 and value.flags.c_contiguous
            argv.append(value.ctypes.data_as(ctypes.c_void_p))
    fn(*argv)


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++ to compile the kernel text")
def test_cupy_kernel_sources_compute_the_lstm_gate_block(tmp_path):
    rng = np.random.default_rng(5)
    B, H = 3, 4
    n = B * H
    a_true = rng.standard_normal((B, 4, H)) * 2  # true pre-activations, blocks o, i, f, g
    rec = rng.standard_normal((B, 4, H))
    act = a_true - rec
    act[:, :3] *= 0.5  # the kernel contract: sigmoid rows arrive halved (rec halved too)
    rec_in = rec.copy()
    rec_in[:, :3] *= 0.5
    c_prev = rng.standard_normal((B, H))
    outs = {k: np.zeros((B, H)) for k in ("c", "tanh_c", "h")}
    act_io = np.ascontiguousarray(act.reshape(B, 4 * H))
    fn, names = _compile_kernel(kernels.LSTM_FORWARD, tmp_path)
    _call(fn, names, n, dict(rec=np.ascontiguousarray(rec_in.reshape(B, 4 * H)),
                             c_prev=c_prev, H=H, act=act_io, **outs))
    o, i, f = (_sigmoid(a_true[:, k]) for k in range(3))
    g = np.tanh(a_true[:, 3])
    c = f * c_prev + i * g  # eq. (4)
    np.testing.assert_allclose(act_io.reshape(B, 4, H), np.stack([o, i, f, g], 1), atol=1e-14)
    np.testing.assert_allclose(outs["c"], c, atol=1e-14)
    np.testing.assert_allclose(outs["tanh_c"], np.tanh(c), atol=1e-14)
    np.testing.assert_allclose(outs["h"], o * np.tanh(c), atol=1e-14)  # eq. (6)

    # Backward against the pure step function's derivatives (npcell.cells.lstm).
    from npcell.cells.lstm import lstm_step_backward

    dh_loss, dh_next, dc_next = (rng.standard_normal((B, H)) for _ in range(3))
    dact = np.zeros((B, 4 * H))
    dc_prev = np.zeros((B, H))
    fn, names = _compile_kernel(kernels.LSTM_BACKWARD, tmp_path)
    _call(fn, names, n, dict(act=act_io, c_prev=c_prev, tanh_c=np.tanh(c), dh_loss=dh_loss,
                             dh_next=dh_next, dc_next=dc_next, H=H, dact=dact, dc_prev=dc_prev))
    cell = npcell.make_cell("lstm", 2, H)
    x = rng.standard_normal((B, 2))
    cache = dict(x=x, h_prev=np.zeros((B, H)), c_prev=c_prev, i=i, f=f, g=g, o=o, c=c,
                 tanh_c=np.tanh(c))
    grads, _, d_prev = lstm_step_backward(cell.params, {"h": dh_loss + dh_next, "c": dc_next},
                                          cache)
    np.testing.assert_allclose(dc_prev, d_prev["c"], atol=1e-13)
    # dL/db_k = sum over the batch of dL/da_k: compare the gate blocks through it.
    for n_gate, k in enumerate(PACKED_ORDER):
        np.testing.assert_allclose(dact.reshape(B, 4, H)[:, n_gate].sum(0), grads[f"b_{k}"],
                                   atol=1e-13, err_msg=k)


def test_fused_kernel_switch_is_scoped_and_has_an_auto_default():
    assert engine.fused_kernels_enabled() is None  # auto
    assert engine.active(np.zeros(3)) == cpu_kernels.available()
    with engine.use_fused_kernels(False):
        assert engine.fused_kernels_enabled() is False
        assert not engine.active(np.zeros(3))  # False forces the plain NumPy path
        with engine.use_fused_kernels(True):
            assert engine.active(np.zeros(3)) == cpu_kernels.available()
        assert engine.fused_kernels_enabled() is False
    assert engine.fused_kernels_enabled() is None
    with pytest.raises(ArgumentTypeError, match="True, False or None"):
        engine.use_fused_kernels("yes")


# ----- benchmarks/bench.py --quick -----------------------------------------------------------
def test_bench_quick_writes_valid_json_and_table(tmp_path):
    pytest.importorskip("torch")
    rc = bench.main(["--quick", "--out", str(tmp_path), "--kinds", "lstm", "wmc",
                     "--shapes", "adding", "latency", "--dtypes", "float64"])
    assert rc == 0
    data = json.loads((tmp_path / "bench_cpu_quick.json").read_text())
    assert data["meta"]["threads"]["requested"] == 1
    assert data["meta"]["threads"]["torch"] == 1
    assert data["meta"]["machine"]["cpu_count"] >= 1
    cases = {(r["kind"], r["shape"]) for r in data["results"]}
    assert cases == {("lstm", "adding"), ("wmc", "adding"), ("lstm", "latency")}
    for r in data["results"]:
        assert r["npcell_s"] > 0 and r["torch_s"] > 0 and r["gemm_floor_s"] > 0
        assert r["ratio_npcell_over_torch"] == pytest.approx(r["npcell_s"] / r["torch_s"])
        # the baseline computes the same function as npcell (same weights, float64)
        assert r["parity_max_abs_diff"] < 1e-10, r
        assert 1.0 <= r["cache_ratio"] < 1.2
    table = (tmp_path / "bench_cpu_quick.md").read_text()
    variants = 1 + cpu_kernels.available()  # plain, and the Numba kernels beside it
    assert table.count("\n| lstm") == 2 * variants and "torch.nn.LSTM" in table
    assert table.count("\n| wmc") == variants
    assert "torch autograd loop" in table


def test_bench_rejects_unknown_kind(tmp_path, capsys):
    assert bench.main(["--quick", "--out", str(tmp_path), "--kinds", "nope"]) == 2
    assert capsys.readouterr().err.count("\n") == 1  # one line
    assert main(["bench", "--quick", "--out", str(tmp_path), "--kinds", "nope"]) == 2


def test_npcell_bench_says_where_the_benchmarks_went(capsys):
    assert main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err
    assert "python benchmarks/bench.py" in err and err.count("\n") == 1
    assert (ROOT / "benchmarks" / "bench.py").is_file()


def test_bench_paths_select_plain_or_kernels():
    def run(paths):
        data = bench.run_benchmarks(quick=True, kinds=["peephole", "gru"], shapes=["adding"],
                                    dtypes=["float64"], with_torch=False, paths=paths,
                                    progress=lambda line: None)
        return [(r["kind"], r["fused_kernels"]) for r in data["results"]]

    assert run(("plain",)) == [("peephole", False), ("gru", False)]
    # gru has no kernels; the peephole has CPU kernels when Numba is installed
    assert run(("kernels",)) == ([("peephole", True)] if cpu_kernels.available() else [])
