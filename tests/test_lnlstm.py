"""LayerNorm and the layer-normalised LSTM (tf and ba2016 styles).

The helpers at the top (random_case, smoothness_margin) are shared with test_fastweights.py.
"""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import npcell
from npcell.cells.layernorm import layer_norm_backward, layer_norm_forward
from npcell.errors import ConfigError

LN_STYLES = ["tf", "ba2016"]


# ----- shared helpers -----------------------------------------------------------------------
def random_case(kind, T, B, X, H, seed, **options):
    """A cell whose parameters are all moved off their special init values (gains 1, shifts 0,
    W_hh = 0.05 I would hide transposes and missing terms), an input and a random initial
    state. A_0 is a random, non-symmetric matrix, so A v and A^T v differ."""
    cell = npcell.make_cell(kind, X, H, seed=seed, **options)
    rng = np.random.default_rng(seed + 1)
    values = {}
    for name, p in cell.params.items():
        if name.startswith("ln_gain"):
            values[name] = rng.uniform(0.5, 1.5, p.shape)
        elif name.startswith("ln_bias"):
            values[name] = rng.uniform(-0.5, 0.5, p.shape)
        else:
            values[name] = rng.uniform(-1.0, 1.0, p.shape)
    cell.set_params(values)
    x = rng.standard_normal((T, B, X))
    scale = {"h": 0.5, "c": 1.0, "A": 0.3}
    state = {k: rng.standard_normal(s) * scale[k] for k, s in cell.state_shapes(B).items()}
    return cell, x, state


def _layer_norm_caches(tree):
    """Every LayerNorm cache (a dict with 'inv_std') inside a step cache."""
    if isinstance(tree, dict):
        if "inv_std" in tree:
            yield tree
        else:
            for v in tree.values():
                yield from _layer_norm_caches(v)
    elif isinstance(tree, list):
        for v in tree:
            yield from _layer_norm_caches(v)


def smoothness_margin(cell, x, state):
    """How far this case sits from where central differences (eps 1e-5) lose accuracy.

    The smallest |ReLU input| (a kink: a difference that straddles it is one-sided) and the
    smallest LayerNorm standard deviation / 150 (LN's k-th derivative grows like 1/std^k; with
    H = 2 a LayerNorm is close to a sign function). Gradient checks keep this above 2e-3.
    """
    _, _, cache = npcell.forward(cell, x, state)
    relu = [float(np.abs(a).min()) for step in cache.steps for a in step.get("relu_in", [])]
    stds = [float((1.0 / ln["inv_std"]).min()) for step in cache.steps
            for ln in _layer_norm_caches(step) if ln["a_hat"].shape[-1] > 1]
    return min(relu + [s / 150.0 for s in stds], default=math.inf)


MARGIN = 2e-3
shapes = dict(T=st.integers(1, 5), B=st.integers(1, 3), X=st.integers(1, 4), H=st.integers(1, 5),
              seed=st.integers(0, 2**20))


# ----- LayerNorm ----------------------------------------------------------------------------
def direct_layer_norm(a, gain, bias, eps):
    """LayerNorm row by row, written out plainly."""
    out = np.empty_like(a)
    for row in np.ndindex(a.shape[:-1]):
        v = a[row]
        mean = sum(v) / len(v)
        var = sum((vi - mean) ** 2 for vi in v) / len(v)
        out[row] = [g * (vi - mean) / math.sqrt(var + eps) + b for vi, g, b in zip(v, gain, bias)]
    return out


@settings(max_examples=30)
@given(rows=st.integers(1, 4), n=st.integers(1, 9), seed=st.integers(0, 2**20),
       eps=st.sampled_from([1e-5, 1e-3, 0.1]), scale=st.sampled_from([1e-2, 1.0, 30.0]))
def test_layer_norm_forward_equals_direct_computation(rows, n, seed, eps, scale):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((rows, n)) * scale + rng.standard_normal()
    gain, bias = rng.standard_normal(n), rng.standard_normal(n)
    y, cache = layer_norm_forward(a, gain, bias, eps)
    np.testing.assert_allclose(y, direct_layer_norm(a, gain, bias, eps), rtol=1e-12, atol=1e-12)
    assert cache["a_hat"].shape == a.shape and cache["inv_std"].shape == (rows, 1)


def test_layer_norm_of_one_feature_outputs_its_bias_and_passes_no_gradient():
    a = np.array([[3.0], [-7.0]])
    y, cache = layer_norm_forward(a, np.array([2.0]), np.array([0.25]))
    np.testing.assert_array_equal(y, [[0.25], [0.25]])
    da, dgain, dbias = layer_norm_backward(np.array([[1.0], [2.0]]), cache)
    np.testing.assert_array_equal(da, 0.0)
    np.testing.assert_array_equal(dgain, 0.0)
    np.testing.assert_array_equal(dbias, [3.0])


@settings(max_examples=30)
@given(lead=st.sampled_from([(1,), (3,), (2, 3)]), n=st.integers(2, 8),
       seed=st.integers(0, 2**20), eps=st.sampled_from([1e-5, 1e-2]))
def test_layer_norm_backward_matches_finite_differences(lead, n, seed, eps):
    """Every entry of dL/da, dL/dgain, dL/dbias against central differences of
    L = sum(R * LN(a)), R random (float64, step 1e-6)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((*lead, n))
    assume(float(a.std(axis=-1).min()) > 0.1)  # keep LN's curvature moderate
    gain, bias = rng.uniform(0.5, 1.5, n), rng.standard_normal(n)
    R = rng.standard_normal(a.shape)
    _, cache = layer_norm_forward(a, gain, bias, eps)
    da, dgain, dbias = layer_norm_backward(R, cache)

    def loss(a_, g_, b_):
        return float(np.sum(R * layer_norm_forward(a_, g_, b_, eps)[0]))

    step = 1e-6
    for value, analytic in ((a, da), (gain, dgain), (bias, dbias)):
        assert analytic.shape == value.shape
        numeric = np.empty_like(value)
        for idx in np.ndindex(value.shape):
            orig = value[idx]
            value[idx] = orig + step
            plus = loss(a, gain, bias)
            value[idx] = orig - step
            minus = loss(a, gain, bias)
            value[idx] = orig
            numeric[idx] = (plus - minus) / (2 * step)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7)


# ----- ln_lstm: gradients -------------------------------------------------------------------
@pytest.mark.parametrize("style", LN_STYLES)
@settings(max_examples=8, derandomize=True)  # fixed examples: see test_fastweights.FW_FLOOR
@given(**shapes)
def test_ln_lstm_full_gradcheck(style, T, B, X, H, seed):
    cell, x, state = random_case("ln_lstm", T, B, X, H, seed, ln_style=style)
    assume(smoothness_margin(cell, x, state) > MARGIN)
    report = npcell.gradcheck(cell, x, state, mode="full", seed=seed)
    names = {r.name for r in report.rows}
    assert set(cell.params) | {"dstate0[h]", "dstate0[c]"} | {f"dx[t={t}]" for t in range(T)} \
        <= names
    assert {"gate i", "gate f", "gate g", "gate o", "gate c-norm"} <= names
    assert report.ok, str(report)
    assert report.max_rel_error < 1e-6


def test_gradcheck_catches_a_missing_layer_norm_on_the_carried_cell():
    """The tf style carries LN(c~): a backward that skips that LN Jacobian on dc_{t-1} fails."""
    from npcell.cells.lnlstm import LNLSTMCell

    class Broken(LNLSTMCell):
        kind = "ln_lstm"

        def step_backward(self, params, dstate, cache_t):
            grads, dx, dprev = super().step_backward(params, dstate, cache_t)
            dprev["c"] = (dstate["c"] + 0.0) * cache_t["f"]  # skips LN on the recurrent path
            return grads, dx, dprev

    cell, x, state = random_case("ln_lstm", 4, 2, 3, 4, 7)
    broken = Broken(3, 4)
    broken.set_params(cell.params)
    report = npcell.gradcheck(broken, x, state, mode="full")
    assert not report.ok
    assert not report.row("dstate0[c]").ok


# ----- ln_lstm: forward semantics against plain NumPy ---------------------------------------
def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def ln_lstm_reference(p, x, state, style, forget_bias=1.0, eps=1e-5):
    """The two LN-LSTM forms, one sequence at a time, with direct_layer_norm."""
    T, B, _ = x.shape
    H = state["h"].shape[1]
    hs = np.empty((T, B, H))
    h_T, c_T = np.empty((B, H)), np.empty((B, H))
    for b in range(B):
        h, c = state["h"][b], state["c"][b]
        for t in range(T):
            if style == "tf":
                z = {}
                for k in "ifgo":
                    a_k = p[f"W_{k}x"] @ x[t, b] + p[f"W_{k}h"] @ h
                    z[k] = direct_layer_norm(a_k[None], p[f"ln_gain_{k}"], p[f"ln_bias_{k}"],
                                             eps)[0]
                c_new = _sigmoid(z["f"] + forget_bias) * c + _sigmoid(z["i"]) * np.tanh(z["g"])
                c = direct_layer_norm(c_new[None], p["ln_gain_c"], p["ln_bias_c"], eps)[0]
                h = np.tanh(c) * _sigmoid(z["o"])
            else:
                Wh = np.concatenate([p[f"W_{k}h"] for k in "ifgo"])
                Wx = np.concatenate([p[f"W_{k}x"] for k in "ifgo"])
                gh = np.concatenate([p[f"ln_gain_{k}h"] for k in "ifgo"])
                gx = np.concatenate([p[f"ln_gain_{k}x"] for k in "ifgo"])
                bias = np.concatenate([p[f"b_{k}"] for k in "ifgo"])
                zero = np.zeros(4 * H)
                a = (direct_layer_norm((Wh @ h)[None], gh, zero, eps)[0]
                     + direct_layer_norm((Wx @ x[t, b])[None], gx, zero, eps)[0] + bias)
                ai, af, ag, ao = np.split(a, 4)
                c = _sigmoid(af + forget_bias) * c + _sigmoid(ai) * np.tanh(ag)
                n_c = direct_layer_norm(c[None], p["ln_gain_c"], p["ln_bias_c"], eps)[0]
                h = _sigmoid(ao) * np.tanh(n_c)
            hs[t, b] = h
        h_T[b], c_T[b] = h, c
    return hs, {"h": h_T, "c": c_T}


@pytest.mark.parametrize("style", LN_STYLES)
@settings(max_examples=10)
@given(**shapes, forget_bias=st.sampled_from([0.0, 1.0, -0.5]))
def test_ln_lstm_forward_equals_plain_numpy(style, T, B, X, H, seed, forget_bias):
    cell, x, state = random_case("ln_lstm", T, B, X, H, seed, ln_style=style,
                                 forget_bias=forget_bias)
    h, state_T, _ = npcell.forward(cell, x, state)
    h_ref, s_ref = ln_lstm_reference(cell.params, x, state, style, forget_bias)
    np.testing.assert_allclose(h, h_ref, rtol=1e-11, atol=1e-12)
    for k in ("h", "c"):
        np.testing.assert_allclose(state_T[k], s_ref[k], rtol=1e-11, atol=1e-12)


def test_tf_style_carries_the_normalised_cell_and_ba2016_the_raw_one():
    cell_tf, x, state = random_case("ln_lstm", 3, 2, 3, 5, 11, ln_style="tf")
    _, s_tf, _ = npcell.forward(cell_tf, x, state)
    c = s_tf["c"]  # LN(c~) with gain g, shift b: (c - b) / g has mean 0 and variance ~1
    normed = (c - cell_tf.params["ln_bias_c"]) / cell_tf.params["ln_gain_c"]
    np.testing.assert_allclose(normed.mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(normed.var(axis=1), 1.0, rtol=1e-3)
    cell_ba, x, state = random_case("ln_lstm", 3, 2, 3, 5, 11, ln_style="ba2016")
    _, s_ba, _ = npcell.forward(cell_ba, x, state)
    assert np.abs(s_ba["c"].mean(axis=1)).max() > 1e-3  # not normalised


# ----- ln_lstm: sequences, counts, options --------------------------------------------------
@pytest.mark.parametrize("style", LN_STYLES)
@settings(max_examples=8)
@given(**shapes, cut=st.integers(1, 4))
def test_ln_lstm_chunked_bptt_equals_whole_sequence(style, T, B, X, H, seed, cut):
    """forward/backward over [0, cut) then [cut, T) with the state and dstate carried equals
    one pass over T (the sequence driver loops the step pair)."""
    assume(cut < T)
    cell, x, state = random_case("ln_lstm", T, B, X, H, seed, ln_style=style)
    rng = np.random.default_rng(seed)
    dh = rng.standard_normal((T, B, H))
    h, s_T, cache = npcell.forward(cell, x, state)
    grads, dx, d0 = npcell.backward(cell, dh, cache)
    h1, s1, c1 = npcell.forward(cell, x[:cut], state)
    h2, s2, c2 = npcell.forward(cell, x[cut:], s1)
    g2, dx2, d1 = npcell.backward(cell, dh[cut:], c2)
    g1, dx1, d0_chunk = npcell.backward(cell, dh[:cut], c1, d1)
    np.testing.assert_allclose(np.concatenate([h1, h2]), h, atol=1e-13)
    np.testing.assert_allclose(np.concatenate([dx1, dx2]), dx, atol=1e-12)
    for k in s_T:
        np.testing.assert_allclose(s2[k], s_T[k], atol=1e-13)
        np.testing.assert_allclose(d0_chunk[k], d0[k], atol=1e-12)
    for k in grads:
        np.testing.assert_allclose(g1[k] + g2[k], grads[k], atol=1e-11)


@settings(max_examples=20)
@given(X=st.integers(1, 50), H=st.integers(1, 50))
def test_ln_lstm_parameter_counts(X, H):
    assert npcell.make_cell("ln_lstm", X, H).num_params == 4 * H * (X + H) + 10 * H
    assert npcell.make_cell("ln_lstm", X, H, ln_style="ba2016").num_params == \
        4 * H * (X + H) + 14 * H


def test_ln_lstm_init_gains_one_shifts_zero_and_no_gate_bias_in_tf_style():
    cell = npcell.make_cell("ln_lstm", 3, 4)
    assert not any(name.startswith("b_") for name in cell.params)
    for name, p in cell.params.items():
        if name.startswith("ln_gain"):
            np.testing.assert_array_equal(p, 1.0)
        elif name.startswith("ln_bias"):
            np.testing.assert_array_equal(p, 0.0)
        else:
            assert 0 < np.abs(p).max() <= 0.5  # U(-1/sqrt(4), 1/sqrt(4))


def test_unknown_ln_style_names_the_valid_ones():
    with pytest.raises(ConfigError, match="ln_style") as err:
        npcell.make_cell("ln_lstm", 2, 3, ln_style="pytorch")
    assert "'tf'" in str(err.value) and "'ba2016'" in str(err.value)


@pytest.mark.parametrize("options", [{"ln_eps": 0.0}, {"ln_eps": -1e-5}, {"ln_eps": "small"},
                                     {"forget_bias": "one"}, {"forget_bias": math.nan},
                                     {"layer_norm": True}])
def test_ln_lstm_bad_options_raise_config_error(options):
    with pytest.raises(ConfigError):
        npcell.make_cell("ln_lstm", 2, 3, **options)


@pytest.mark.parametrize("style", LN_STYLES)
def test_ln_lstm_describe_shows_equations_options_and_count(style):
    cell = npcell.make_cell("ln_lstm", 2, 3, ln_style=style)
    text = cell.describe()
    assert ("(TF5)" if style == "tf" else "(BA4)") in text
    assert f"ln_style={style!r}" in text and "forget_bias=1.0" in text
    assert f"total parameters: {cell.num_params:,}" in text
