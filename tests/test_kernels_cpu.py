"""The compiled CPU gate kernels (npcell/engine/cpu/, Numba) beyond equality with the step loop
(tests/test_engine.py holds every engine path to it over hypothesis shapes, both dtypes, carried
state and saturating inputs): their gradcheck, that they run and switch off, the small-input
loops, the compiled exp, and the workspace that reuses the big buffers (engine/workspace.py).
"""

from unittest import mock

import numpy as np
import pytest

import npcell
from npcell import engine
from npcell.engine import workspace
from npcell.engine.cpu import loops as cpu_kernels

numba_only = pytest.mark.skipif(not cpu_kernels.available(),
                                reason="needs Numba (a default dependency where it installs)")


# Every cell the kernels serve, with every combination of its connection options.
KINDS = [("lstm", {}),
         ("peephole", {}), ("peephole", {"diagonal": False}), ("peephole", {"cell_bias": True}),
         ("wmc", {}), ("wmc", {"cell_bias": True}), ("wmc", {"diagonal": True}),
         ("wmc", {"diagonal": True, "cell_bias": True})]


def _case(T, B, X, H, seed, dtype, scale, kind="lstm", options=None):
    cell = npcell.make_cell(kind, X, H, seed=seed, dtype=dtype, forget_bias=1.0,
                            **(options or {}))
    if kind != "lstm":  # cell weights large enough for the reads to matter (and saturate)
        cell.params.update({name: (value * scale ** 0.5).astype(dtype)
                            for name, value in cell.params.items() if name.endswith("c")})
    rng = np.random.default_rng(seed)
    x = (scale * rng.standard_normal((T, B, X))).astype(dtype)
    state = {"h": rng.standard_normal((B, H)).astype(dtype),
             "c": (3 * rng.standard_normal((B, H))).astype(dtype)}
    dh = rng.standard_normal((T, B, H)).astype(dtype)
    dstate = {"h": rng.standard_normal((B, H)).astype(dtype),
              "c": rng.standard_normal((B, H)).astype(dtype)}
    return cell, x, state, dh, dstate


def _input_in_loops(on):
    """Whether the kernels' loops take the input term for every X <= SMALL_INPUT (on), or
    never (off), whatever the size of a step; the default picks by B*H."""
    return mock.patch.object(cpu_kernels, "SMALL_INPUT_MIN_UNITS", 1 if on else 10**9)


def _run(cell, x, state, dh, dstate, on):
    with engine.use_fused_kernels(on):
        h, state_T, cache = npcell.forward(cell, x, state)
        grads, dx, dstate0 = npcell.backward(cell, dh, cache, dstate)
    return h.copy(), state_T, grads, dx, dstate0


@numba_only
@pytest.mark.parametrize("X", [3, cpu_kernels.SMALL_INPUT + 1])
@pytest.mark.parametrize("kind,options", KINDS)
def test_cpu_kernels_pass_the_float64_gradcheck(kind, options, X):
    cell = npcell.make_cell(kind, X, 4, seed=3, **options)
    with engine.use_fused_kernels(True), _input_in_loops(True):  # X = 3: in the loops
        x = np.random.default_rng(1).standard_normal((5, 3, X))
        report = npcell.gradcheck(cell, x, mode="full", fused=True)
    assert report.ok, report
    assert report.max_rel_error < 1e-6


@numba_only
@pytest.mark.parametrize("kind,loops", [("lstm", ("forward_loop", "backward_loop")),
                                        ("peephole", ("connected_forward_loop",
                                                      "connected_backward_loop")),
                                        ("wmc", ("connected_forward_loop",
                                                 "connected_backward_loop"))])
def test_cpu_kernels_are_used_and_switch_off(kind, loops, monkeypatch):
    calls = []

    def spy(name):
        original = getattr(cpu_kernels, name)

        def wrapped(*args):
            calls.append(name)
            return original(*args)

        return wrapped

    for name in loops:
        monkeypatch.setattr(cpu_kernels, name, spy(name))
    cell, x, state, dh, dstate = _case(4, 2, 3, 5, 0, "float64", 1.0, kind)
    npcell.backward(cell, dh, npcell.forward(cell, x, state)[2], dstate)
    assert set(calls) == set(loops), "the auto default takes the Numba path when installed"
    calls.clear()
    with engine.use_fused_kernels(False):
        npcell.backward(cell, dh, npcell.forward(cell, x, state)[2], dstate)
    assert not calls


@numba_only
@pytest.mark.parametrize("kind", ["lstm", "wmc"])
def test_small_inputs_are_projected_inside_the_loops(kind, monkeypatch):
    """Up to SMALL_INPUT features and from SMALL_INPUT_MIN_UNITS units B*H a step, x_t W_x^T
    and dx, dW_x, db are computed step by step in the loops (one call a step each way); with
    more features or smaller steps, by the hoisted GEMMs (no call)."""
    calls = []

    def spy(method):
        original = getattr(cpu_kernels.SmallInput, method)

        def wrapped(self, t, act):
            calls.append((method, t))
            return original(self, t, act)

        return wrapped

    for method in ("project", "backward"):
        monkeypatch.setattr(cpu_kernels.SmallInput, method, spy(method))
    T, small, big = 4, cpu_kernels.SMALL_INPUT, cpu_kernels.SMALL_INPUT + 1
    units = cpu_kernels.SMALL_INPUT_MIN_UNITS
    for B, X, H, expected in [(2, 1, units // 2, T), (2, small, units // 2, T),
                              (2, big, units // 2, 0), (1, 1, units // 2, 0)]:
        cell, x, state, dh, dstate = _case(T, B, X, H, 0, "float64", 1.0, kind)
        npcell.forward(cell, x, state)  # the first call of a shape also measures its cache
        calls.clear()
        npcell.backward(cell, dh, npcell.forward(cell, x, state)[2], dstate)
        assert sorted(calls) == sorted([("project", t) for t in range(expected)]
                                       + [("backward", t) for t in range(expected)]), (B, X)


@numba_only
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_compiled_exp_is_within_an_ulp_of_numpy(dtype):
    from npcell.engine.cpu.kernels import exp_array

    finfo = np.finfo(dtype)
    top = 708.0 if dtype == "float64" else 87.0  # the normal range the kernels promise
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-30, 30, 20000), rng.uniform(-top, top, 20000),
                        np.linspace(-1, 1, 2001), [0.0, -0.0, top, -top]]).astype(dtype)
    got = x.copy()
    exp_array(got)
    exact = np.exp(x.astype(np.longdouble))
    rel = np.abs(got - exact) / exact
    assert rel.max() <= 1.5 * finfo.eps, f"max error {rel.max() / finfo.eps:.2f} ulp"
    # beyond that range it saturates as 1 / (1 + exp) needs; NaN passes through
    ends = np.array([top + 2, np.inf, -top - 2, -np.inf, np.nan], dtype)
    exp_array(ends)
    assert ends[0] == np.inf and ends[1] == np.inf and ends[2] == 0 and ends[3] == 0
    assert np.isnan(ends[4])


@numba_only
def test_cpu_kernels_sum_the_diagonal_gradients_in_float64():
    """The kernels add up dL/dw_kc (and, for small X, dL/dW_x, dL/db) over T*B terms: in
    float32 that sum is kept in float64, so it matches a float64 run to float32 precision
    even over many steps."""
    cell64 = npcell.make_cell("peephole", 2, 8, seed=0)
    cell32 = npcell.make_cell("peephole", 2, 8, seed=0, dtype="float32")
    x = np.random.default_rng(0).standard_normal((300, 16, 2))
    dh = np.ones((300, 16, 8))
    with _input_in_loops(True):
        g64 = npcell.backward(cell64, dh, npcell.forward(cell64, x)[2])[0]
        g32 = npcell.backward(cell32, dh.astype("float32"),
                              npcell.forward(cell32, x.astype("float32"))[2])[0]
    # the small-input sums (X = 2: dW_x and db from the loop) are kept in float64 too
    for name in ("W_ic", "W_fc", "W_oc", "W_ix", "W_gx", "b_f", "b_o"):
        np.testing.assert_allclose(g32[name], g64[name], rtol=2e-4, atol=1e-4, err_msg=name)


def test_workspace_never_hands_out_a_buffer_in_use():
    cell, x, state, dh, dstate = _case(5, 3, 2, 4, 1, "float64", 1.0)
    h1, _, cache1 = npcell.forward(cell, x, state)
    kept = h1.copy()
    grads1, _, _ = npcell.backward(cell, dh, cache1, dstate)
    kept_grads = {k: v.copy() for k, v in grads1.items()}
    # A second pass on other data while the first cache and h are alive: nothing of theirs moves.
    x2 = x[::-1].copy() * 3
    h2, _, cache2 = npcell.forward(cell, x2, state)
    npcell.backward(cell, dh, cache2, dstate)
    np.testing.assert_array_equal(h1, kept)
    assert not np.shares_memory(h1, h2)
    grads_again, _, _ = npcell.backward(cell, dh, cache1, dstate)  # cache1 still intact
    for k in kept_grads:
        np.testing.assert_array_equal(grads_again[k], kept_grads[k])


def test_workspace_reuses_a_free_buffer_and_respects_its_limit():
    shape = (7, 3, 5)  # a shape no other test asks for
    a = workspace.empty(np, shape, np.float64)
    address = a.ctypes.data
    b = workspace.empty(np, shape, np.float64)
    assert b.ctypes.data != address  # a is alive: not handed out twice
    view = a[1:]
    del a
    c = workspace.empty(np, shape, np.float64)
    assert c.ctypes.data not in (address, b.ctypes.data)  # a view still holds a's memory
    del view
    d = workspace.empty(np, shape, np.float64)
    assert d.ctypes.data == address  # free again: reused, not allocated
    del b, c, d
    assert workspace.release_workspace() >= 3 * 7 * 3 * 5 * 8
    try:
        workspace.set_workspace_limit(0)
        e = workspace.empty(np, shape, np.float64)
        # limit 0: a plain allocation, not kept by the pool
        assert all(buf is not e for bufs in workspace._pool.values() for buf in bufs)
        del e
    finally:
        workspace.set_workspace_limit(None)
    with pytest.raises(npcell.errors.ConfigError, match="workspace limit"):
        workspace.set_workspace_limit(-1)


def test_workspace_gives_cupy_style_modules_a_plain_allocation():
    class FakeXp:
        __name__ = "cupy"

        @staticmethod
        def empty(shape, dtype):
            return ("plain", shape, dtype)

    assert workspace.empty(FakeXp, (2, 3), "float32") == ("plain", (2, 3), "float32")
