"""Exact identities between cells, and one step of WMC / peephole computed by hand from the paper.

* WMC and peephole with every cell connection W_*c = 0 are the LSTM (forward and gradients);
* ULSTM with z_t tied to o_{t-1} and copied weights is the LSTM (reference/cells.md 3.2);
* the teaching cell is the LSTM under the seed-004 name mapping (forward and gradients);
* eq. (7)-(9) and (16)-(18) written out per sample with column vectors, compared to step_forward.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npcell
from npcell import engine
from npcell.cells.teaching import lstm_to_teaching_params, teaching_to_lstm_params
from npcell.cells.ulstm import ulstm_step_forward
from npcell.errors import ConfigError

SHAPES = dict(T=st.integers(1, 7), B=st.integers(1, 3), X=st.integers(1, 4), H=st.integers(1, 5),
              seed=st.integers(0, 2**20))


def inputs(T, B, X, H, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, X))
    state = {"h": rng.standard_normal((B, H)) * 0.5, "c": rng.standard_normal((B, H))}
    dh = rng.standard_normal((T, B, H))
    dstate = {"h": rng.standard_normal((B, H)), "c": rng.standard_normal((B, H))}
    return x, state, dh, dstate


def run(cell, x, state, dh, dstate, fused):
    h, state_T, cache = npcell.forward(cell, x, state, fused=fused)
    grads, dx, dstate0 = npcell.backward(cell, dh, cache, dstate)
    return h, state_T, grads, dx, dstate0


# ----- connected cells with zero connections are the LSTM -----------------------------------
@pytest.mark.parametrize("kind,options", [
    ("wmc", {"diagonal": False, "cell_bias": False}),
    ("wmc", {"diagonal": False, "cell_bias": True}),
    ("wmc", {"diagonal": True, "cell_bias": False}),
    ("peephole", {"diagonal": True}),
    ("peephole", {"diagonal": False}),
])
@pytest.mark.parametrize("fused", [False, True], ids=["stepwise", "fused"])
@settings(max_examples=5)
@given(**SHAPES)
def test_zero_cell_connections_give_the_lstm_exactly(kind, options, fused, T, B, X, H, seed):
    lstm = npcell.make_cell("lstm", X, H, seed=seed)
    other = npcell.make_cell(kind, X, H, seed=seed + 1, **options)
    other.set_params(lstm.params)  # the shared eq. (1)-(6) weights
    other.set_params({name: np.zeros_like(p) for name, p in other.params.items()
                      if name not in lstm.params})  # W_ic = W_fc = W_oc = 0 (and b_*c = 0)
    x, state, dh, dstate = inputs(T, B, X, H, seed)

    # Bit-identity needs the same arithmetic on both sides: the compiled CPU kernels of lstm
    # and of peephole/wmc are different kernels, so they are off here (tests/test_kernels_cpu.py
    # holds each of them == plain).
    with engine.use_fused_kernels(False):
        h_l, s_l, g_l, dx_l, d0_l = run(lstm, x, state, dh, dstate, fused)
        h_o, s_o, g_o, dx_o, d0_o = run(other, x, state, dh, dstate, fused)
    np.testing.assert_array_equal(h_o, h_l)  # tanh(0) = 0 is added: bit-identical
    for k in ("h", "c"):
        np.testing.assert_array_equal(s_o[k], s_l[k])
        np.testing.assert_array_equal(d0_o[k], d0_l[k])
    np.testing.assert_array_equal(dx_o, dx_l)
    for name in lstm.params:
        np.testing.assert_array_equal(g_o[name], g_l[name], err_msg=name)
    # The connections themselves still learn: their gradient is not zero.
    assert any(np.abs(g_o[n]).max() > 0 for n in other.params if n not in lstm.params)


# ----- ULSTM with z tied to the previous output gate is the LSTM ----------------------------
def logit(p):
    return np.log(p) - np.log1p(-p)


@settings(max_examples=15)
@given(**SHAPES)
def test_ulstm_with_z_tied_to_previous_output_gate_is_the_lstm(T, B, X, H, seed):
    """Set z_t := o_{t-1}: then m_t = o_{t-1} * tanh(c_{t-1}) = h_{t-1}, and with W_ux = W_gx,
    U_m = W_gh, b_ux + b_m = b_g and the gate weights copied, ULSTM's candidate is the LSTM's g_t.

    The tied forward runs the cell's own :func:`ulstm_step_forward`; the tie is made by giving
    its z gate zero weights and a per-sample bias logit(o_{t-1}) (shape (B, H), broadcast), so
    sigma(.) returns o_{t-1} to rounding.
    """
    lstm = npcell.make_cell("lstm", X, H, seed=seed)
    lp = lstm.params
    rng = np.random.default_rng(seed + 7)
    x = rng.standard_normal((T, B, X))
    c0 = rng.standard_normal((B, H))
    o_prev = rng.uniform(0.05, 0.95, size=(B, H))  # o_0 that produced h_0
    h0 = o_prev * np.tanh(c0)  # a state the LSTM could have produced: h_0 = o_0 * tanh(c_0)

    split = rng.uniform(-1, 1, size=H)  # the doubled biases may split b_k any way
    tied = {}
    for k in ("i", "o", "f"):
        tied |= {f"W_{k}x": lp[f"W_{k}x"], f"W_{k}h": lp[f"W_{k}h"],
                 f"b_{k}x": lp[f"b_{k}"] - split, f"b_{k}h": split}
    tied |= {"W_ux": lp["W_gx"], "U_m": lp["W_gh"], "b_ux": lp["b_g"] - split, "b_m": split,
             "W_zx": np.zeros((H, X)), "W_zh": np.zeros((H, H)), "b_zh": np.zeros(H)}

    h_lstm, state_lstm, _ = npcell.forward(lstm, x, {"h": h0, "c": c0}, fused=False)
    state = {"h": h0, "c": c0}
    for t in range(T):
        tied["b_zx"] = logit(o_prev)  # z_t := o_{t-1}
        state, cache = ulstm_step_forward(tied, x[t], state, use_o=True)
        np.testing.assert_allclose(cache["m"], cache["h_prev"], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(state["h"], h_lstm[t], rtol=1e-11, atol=1e-13)
        o_prev = cache["o"]
    np.testing.assert_allclose(state["c"], state_lstm["c"], rtol=1e-11, atol=1e-13)


def test_untied_ulstm_is_not_the_lstm():
    """Guard that the identity above is not trivial: an untied z gives a different sequence."""
    X, H, T, B = 3, 4, 5, 2
    lstm = npcell.make_cell("lstm", X, H, seed=1)
    ulstm = npcell.make_cell("ulstm", X, H, seed=2)
    lp = lstm.params
    values = {}
    for k in ("i", "o", "f"):
        values |= {f"W_{k}x": lp[f"W_{k}x"], f"W_{k}h": lp[f"W_{k}h"], f"b_{k}x": lp[f"b_{k}"],
                   f"b_{k}h": np.zeros(H)}
    values |= {"W_ux": lp["W_gx"], "U_m": lp["W_gh"], "b_ux": lp["b_g"], "b_m": np.zeros(H)}
    ulstm.set_params(values)
    x = np.random.default_rng(0).standard_normal((T, B, X))
    h_l, _, _ = npcell.forward(lstm, x)
    h_u, _, _ = npcell.forward(ulstm, x)
    assert np.abs(h_l[1:] - h_u[1:]).max() > 1e-3


# ----- teaching == lstm under the name mapping ----------------------------------------------
@pytest.mark.parametrize("fused", [False, True], ids=["lstm-stepwise", "lstm-fused"])
@settings(max_examples=8)
@given(**SHAPES)
def test_teaching_cell_is_the_lstm_under_the_name_mapping(fused, T, B, X, H, seed):
    teaching = npcell.make_cell("teaching", X, H, seed=seed)
    lstm = npcell.make_cell("lstm", X, H, seed=seed + 1)
    lstm.set_params(teaching_to_lstm_params(teaching.params))
    x, state, dh, dstate = inputs(T, B, X, H, seed)

    h_t, s_t, g_t, dx_t, d0_t = run(teaching, x, state, dh, dstate, False)
    h_l, s_l, g_l, dx_l, d0_l = run(lstm, x, state, dh, dstate, fused)
    tol = dict(rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(h_t, h_l, **tol)
    for k in ("h", "c"):  # wm is "h", ltm is "c"
        np.testing.assert_allclose(s_t[k], s_l[k], **tol)
        np.testing.assert_allclose(d0_t[k], d0_l[k], **tol)
    np.testing.assert_allclose(dx_t, dx_l, **tol)
    mapped = teaching_to_lstm_params(g_t)
    assert set(mapped) == set(g_l)
    for name in g_l:
        np.testing.assert_allclose(mapped[name], g_l[name], err_msg=name, **tol)


def test_name_mapping_is_a_bijection_with_the_seed_meaning():
    teaching = npcell.make_cell("teaching", 2, 3, seed=0)
    lstm_names = teaching_to_lstm_params(teaching.params)
    assert set(lstm_names) == set(npcell.make_cell("lstm", 2, 3).params)
    back = lstm_to_teaching_params(lstm_names)
    assert list(back) == list(teaching.params)
    for name in teaching.params:
        assert back[name] is teaching.params[name]
    # remember is the forget gate, save the input gate, focus the output gate, ltm' the candidate
    assert lstm_names["W_fx"] is teaching.params["W_r"]
    assert lstm_names["b_i"] is teaching.params["b_s"]
    assert lstm_names["W_oh"] is teaching.params["U_f"]
    assert lstm_names["b_o"] is teaching.params["b_f"]  # teaching b_f is *focus*, not forget
    assert lstm_names["W_gx"] is teaching.params["W_l"]
    with pytest.raises(ConfigError, match="W_q"):
        teaching_to_lstm_params({"W_q": 1})


def test_sigmoid_candidate_can_only_add_to_memory():
    """The teaching text's eq. (2) typo (sigma candidate): from ltm_0 = 0 memory never goes < 0."""
    x = np.random.default_rng(0).standard_normal((30, 4, 3)) * 3
    broken = npcell.make_cell("teaching", 3, 6, seed=0, candidate_act="sigmoid")
    _, _, cache = npcell.forward(broken, x)
    assert min(step["ltm"].min() for step in cache.steps) >= 0.0
    fixed = npcell.make_cell("teaching", 3, 6, seed=0)  # same weights, tanh candidate
    for name in fixed.params:
        np.testing.assert_array_equal(fixed.params[name], broken.params[name])
    _, _, cache = npcell.forward(fixed, x)
    assert min(step["ltm"].min() for step in cache.steps) < 0.0


# ----- one step of WMC and peephole by hand, straight from the paper ------------------------
def sigma(a):
    return 1.0 / (1.0 + np.exp(-a))


def paper_step(P, x, h_prev, c_prev, *, wmc, diagonal):
    """One sample, column-vector form, eq. (1), (4), (6) with (7)-(9) or (16)-(18)."""
    def W(name):  # a diagonal connection is the matrix diag(w)
        return np.diag(P[name]) if diagonal and name.endswith("c") else P[name]

    def conn(name, c):
        return np.tanh(W(name) @ c) if wmc else W(name) @ c

    g = np.tanh(P["W_gx"] @ x + P["W_gh"] @ h_prev + P["b_g"])  # (1)
    i = sigma(P["W_ix"] @ x + P["W_ih"] @ h_prev + conn("W_ic", c_prev) + P["b_i"])  # (7)/(16)
    f = sigma(P["W_fx"] @ x + P["W_fh"] @ h_prev + conn("W_fc", c_prev) + P["b_f"])  # (8)/(17)
    c = f * c_prev + i * g  # (4)
    o = sigma(P["W_ox"] @ x + P["W_oh"] @ h_prev + conn("W_oc", c) + P["b_o"])  # (9)/(18)
    h = o * np.tanh(c)  # (6)
    return h, c


@pytest.mark.parametrize("kind,diagonal", [("wmc", False), ("wmc", True),
                                           ("peephole", False), ("peephole", True)])
@settings(max_examples=10)
@given(B=st.integers(1, 3), X=st.integers(1, 4), H=st.integers(1, 5), seed=st.integers(0, 2**20))
def test_one_step_matches_the_paper_equations_by_hand(kind, diagonal, B, X, H, seed):
    cell = npcell.make_cell(kind, X, H, seed=seed, diagonal=diagonal)
    rng = np.random.default_rng(seed)
    # Large connection weights, so a swapped c_{t-1}/c_t or a missing tanh shows up clearly.
    cell.set_params({n: rng.standard_normal(cell.params[n].shape) * 2
                     for n in ("W_ic", "W_fc", "W_oc")})
    x = rng.standard_normal((B, X))
    state = {"h": rng.standard_normal((B, H)) * 0.5, "c": rng.standard_normal((B, H)) * 2}
    new_state, _ = cell.step_forward(cell.params, x, state)
    for b in range(B):
        h, c = paper_step(cell.params, x[b], state["h"][b], state["c"][b],
                          wmc=(kind == "wmc"), diagonal=diagonal)
        np.testing.assert_allclose(new_state["h"][b], h, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(new_state["c"][b], c, rtol=1e-13, atol=1e-14)
