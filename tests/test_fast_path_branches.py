"""Every branch of every fast path is run by a test, and the test knows which branch it ran.

The branches come from one place, :func:`npcell.engine.device.device_for`: the compiled gate
kernels ('numba', 'cupy' or None, the plain path) and, on the plain path, the activation form
(tanh form; NumPy's exp form from B*H = 256 units, and its fall-back to the tanh form when a
weight is so large that the exp form's row scale would overflow it). Each test here asserts the
branch taken (a spy on the device's GateMath, or the device itself) as well as the numbers, so a
change of thresholds cannot silently send the test down another path.
"""

import contextlib
import warnings
from unittest import mock

import fake_cupy
import numpy as np
import pytest

import npcell
from npcell import engine
from npcell.engine.cpu import loops as cpu_loops
from npcell.engine.device import EXP_FORM_MIN_UNITS, GateMath, device_for
from npcell.sequence import stepwise_backward, stepwise_forward

PLAIN_KINDS = [("lstm", {}), ("peephole", {}), ("peephole", {"diagonal": False, "cell_bias": True}),
               ("wmc", {}), ("wmc", {"diagonal": True, "cell_bias": True}),
               ("gru", {}), ("gru", {"reset_after": True}), ("ulstm", {}),
               ("ulstm", {"use_o": False})]
needs_numba = pytest.mark.skipif(not cpu_loops.available(), reason="needs Numba")


def case(kind, options, T, B, X, H, dtype, scale=1.0, seed=4):
    cell = npcell.make_cell(kind, X, H, seed=seed, dtype=dtype, **options)
    rng = np.random.default_rng(seed)
    x = (scale * rng.standard_normal((T, B, X))).astype(dtype)
    state = {k: rng.standard_normal(s).astype(dtype) for k, s in cell.state_shapes(B).items()}
    dh = rng.standard_normal((T, B, H)).astype(dtype)
    dstate = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in state.items()}
    return cell, x, state, dh, dstate


@contextlib.contextmanager
def forms_used():
    """Record the activation form of every GateMath that computes a sigmoid."""
    used = []
    original = GateMath.sigmoid_

    def spy(self, z):
        used.append("exp" if self.exp_form else "tanh")
        return original(self, z)

    with mock.patch.object(GateMath, "sigmoid_", spy):
        yield used


def check_against_reference(cell, x, state, dh, dstate):
    h_ref, s_ref, steps = stepwise_forward(cell, x, state)
    g_ref, dx_ref, d0_ref = stepwise_backward(cell, dh, steps, dstate)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exp's overflow must stay silenced
        h, s_T, cache = npcell.forward(cell, x, state, fused=True)
        grads, dx, d0 = npcell.backward(cell, dh, cache, dstate)
    tol = 1e-11 if x.dtype == np.float64 else 5e-5
    np.testing.assert_allclose(h, h_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, dx_ref, rtol=tol, atol=10 * tol)
    for k in s_ref:
        np.testing.assert_allclose(s_T[k], s_ref[k], rtol=tol, atol=tol)
        np.testing.assert_allclose(d0[k], d0_ref[k], rtol=tol, atol=10 * tol)
    for k in g_ref:
        scale = max(1.0, float(np.abs(g_ref[k]).max()))
        np.testing.assert_allclose(grads[k], g_ref[k], rtol=0, atol=10 * tol * scale, err_msg=k)
    assert np.isfinite(h).all()


# ----- the device: one decision per backend --------------------------------------------------
def test_device_for_numpy_decides_kernels_and_form_once():
    x = np.zeros((1, 1, 1))
    with engine.use_fused_kernels(False):
        small = device_for(x, units=EXP_FORM_MIN_UNITS - 1)
        large = device_for(x, units=EXP_FORM_MIN_UNITS)
    assert (small.name, small.kernels, small.exp_form, small.pooled) == ("numpy", None, False,
                                                                          True)
    assert large.exp_form and large.in_tanh_form().exp_form is False
    with engine.use_fused_kernels(True):
        compiled = device_for(x, units=10**6)
        gru = device_for(x, units=10**6, lstm_kernels=False)
    assert compiled.kernels == ("numba" if cpu_loops.available() else None)
    assert not compiled.exp_form or compiled.kernels is None  # Numba takes a unscaled
    assert gru.kernels is None and gru.exp_form  # GRU/ULSTM: plain path, the device's form


def test_device_for_cupy_has_one_form_and_no_workspace_pool():
    with fake_cupy.installed() as cupy:
        x = cupy.zeros((1, 1, 1))
        auto = device_for(x, units=10**6)
        with engine.use_fused_kernels(True):
            lstm = device_for(x, units=10**6)
            peephole = device_for(x, units=10**6, cell_read=object())
        assert (auto.name, auto.kernels, auto.exp_form, auto.pooled) == ("cupy", None, False,
                                                                          False)
        assert lstm.kernels == "cupy" and peephole.kernels is None
        assert not lstm.exp_form and not peephole.exp_form
        before = fake_cupy.SYNCS.count
        auto.sync()  # waits on the stream: one synchronisation, counted by the test double
        assert fake_cupy.SYNCS.count == before + 1


# ----- the plain NumPy path, both activation forms -------------------------------------------
@pytest.mark.parametrize("kind,options", PLAIN_KINDS)
@pytest.mark.parametrize("form,B,H", [("tanh", 2, 5), ("exp", 16, 16)])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_plain_path_in_each_activation_form_equals_the_reference(kind, options, form, B, H,
                                                                  dtype):
    assert (B * H >= EXP_FORM_MIN_UNITS) == (form == "exp")
    cell, x, state, dh, dstate = case(kind, options, 5, B, 3, H, dtype)
    with engine.use_fused_kernels(False), forms_used() as used:
        check_against_reference(cell, x, state, dh, dstate)
    assert used and set(used) == {form}


@pytest.mark.parametrize("kind,options", PLAIN_KINDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_exp_form_saturated_is_finite_quiet_and_exact(kind, options, dtype):
    # inputs of 1e3: exp(-a) overflows to inf, 1 / (1 + inf) = 0 is the right limit
    cell, x, state, dh, dstate = case(kind, options, 4, 16, 2, 16, dtype, scale=1e3)
    with engine.use_fused_kernels(False), forms_used() as used:
        check_against_reference(cell, x, state, dh, dstate)
    assert set(used) == {"exp"}


@pytest.mark.parametrize("kind,options", [("lstm", {}), ("wmc", {})])
def test_exp_form_falls_back_to_the_tanh_form_for_huge_weights(kind, options):
    cell, x, state, dh, dstate = case(kind, options, 3, 16, 2, 16, "float64")
    cell.params["W_gx"][0, 0] = 1e308  # x -2 would overflow it to -inf
    x[:, :, 0] = 0.0  # ... while the input it multiplies keeps the numbers finite
    with engine.use_fused_kernels(False), forms_used() as used:
        h, _, _ = npcell.forward(cell, x, state, fused=True)
    assert set(used) == {"tanh"}
    h_ref, _, _ = stepwise_forward(cell, x, state)
    np.testing.assert_allclose(h, h_ref, rtol=1e-12, atol=1e-12)


# ----- the compiled paths --------------------------------------------------------------------
@needs_numba
@pytest.mark.parametrize("kind,options", PLAIN_KINDS[:5])
@pytest.mark.parametrize("B,H", [(2, 5), (16, 16)])
def test_numba_path_runs_no_plain_activation_and_equals_the_reference(kind, options, B, H):
    cell, x, state, dh, dstate = case(kind, options, 5, B, 3, H, "float64")
    calls = {"forward": 0}
    loops = ("forward_loop", "connected_forward_loop")
    originals = {name: getattr(cpu_loops, name) for name in loops}

    def counting(name):
        def run(*args, **kw):
            calls["forward"] += 1
            return originals[name](*args, **kw)
        return run

    with engine.use_fused_kernels(True), forms_used() as used, \
            mock.patch.multiple(cpu_loops, **{n: counting(n) for n in loops}):
        check_against_reference(cell, x, state, dh, dstate)
    assert calls["forward"] == 1 and used == []  # the kernels did the gate block


@pytest.mark.parametrize("kind,module", [("lstm", "lstm_family"), ("gru", "gru"),
                                         ("ulstm", "ulstm")])
def test_the_fused_pairs_read_their_branches_from_device_for(kind, module):
    # no fast path decides on its own: each forward asks device_for
    cell, x, state, dh, dstate = case(kind, {}, 2, 2, 2, 3, "float64")
    with mock.patch(f"npcell.engine.{module}.device_for", wraps=device_for) as spy:
        npcell.forward(cell, x, state, fused=True)
    assert spy.call_count >= 1
