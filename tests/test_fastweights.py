"""Fast-weight cells: FW-RNN (Ba et al. 2016) and FW-LSTM variants A and B (Keller et al. 2018)."""

import itertools

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_lnlstm import MARGIN, direct_layer_norm, random_case, shapes, smoothness_margin

import npcell
from npcell.cells.fastweights import FastWeightRNNCell
from npcell.errors import ConfigError, ShapeError

# The fast-weight cells put B*N^2 state entries of size O(1) into gradcheck's loss (N = H or
# 4H). Central differences at eps = 1e-5 then carry an absolute round-off of about 1e-10..1e-9
# (measured against extended-precision differences, which agreed with the analytic gradients
# to ~1e-11), so entries below 1e-3 are compared on an absolute scale of 1e-9 instead of the
# default floor's 1e-10. Entries above 1e-3 keep the plain relative error < 1e-6.
FW_FLOOR = 1e-3
# Even inside the smoothness margin, central differences have a truncation error
# eps^2 * (third derivative) / 6 that reaches 1e-6 relative in about 1 of 300 random draws
# (measured; S = 2 inner loops with U(-1, 1) weights are strongly curved). The full checks
# therefore run a fixed (derandomized) set of examples, so that a red test means a real change.

WRITES, QUERIES = ["prev_h", "prelim"], ["new_A", "old_A"]
FW_RNN_OPTIONS = [dict(S=S, fw_write=w, fw_query=q)
                  for S, w, q in itertools.product([1, 2], WRITES, QUERIES)]
FW_LSTM_OPTIONS = [dict(variant="A", fw_write=w, fw_query=q)
                   for w, q in itertools.product(WRITES, QUERIES)]
FW_LSTM_OPTIONS += [dict(variant="B", fw_query=q) for q in QUERIES]


def _id(options):
    return "-".join(str(v) for v in options.values())


def check_full(kind, T, B, X, H, seed, options):
    cell, x, state = random_case(kind, T, B, X, H, seed, **options)
    assume(smoothness_margin(cell, x, state) > MARGIN)
    report = npcell.gradcheck(cell, x, state, mode="full", seed=seed, floor=FW_FLOOR)
    names = {r.name for r in report.rows}
    expected = set(cell.params) | {f"dstate0[{k}]" for k in cell.state_names}
    assert expected | {f"dx[t={t}]" for t in range(T)} <= names
    assert "dstate0[A]" in names
    assert {f"gate {g}" for g in cell.gate_blocks()} <= names
    assert report.ok, str(report)
    assert report.max_rel_error < 1e-6
    return report


# ----- full gradient checks -----------------------------------------------------------------
@pytest.mark.parametrize("options", FW_RNN_OPTIONS, ids=_id)
@settings(max_examples=6, derandomize=True)
@given(**shapes)
def test_fw_rnn_full_gradcheck(options, T, B, X, H, seed):
    check_full("fw_rnn", T, B, X, H, seed, options)


@settings(max_examples=4, derandomize=True)
@given(**shapes, S=st.integers(1, 2))
def test_fw_rnn_full_gradcheck_tanh(T, B, X, H, seed, S):
    check_full("fw_rnn", T, B, X, H, seed, dict(S=S, activation="tanh"))


@pytest.mark.parametrize("options", FW_LSTM_OPTIONS, ids=_id)
@settings(max_examples=5, derandomize=True)
@given(**shapes)
def test_fw_lstm_full_gradcheck(options, T, B, X, H, seed):
    check_full("fw_lstm", T, B, X, H, seed, options)


def test_gradcheck_catches_a_dropped_fast_weight_adjoint():
    """A backward that forgets to carry dL/dA (returns dA_{t-1} = 0) must fail the check."""

    class Forgetful(FastWeightRNNCell):
        def step_backward(self, params, dstate, cache_t):
            grads, dx, dprev = super().step_backward(params, dstate, cache_t)
            return grads, dx, {"h": dprev["h"], "A": 0.0 * dprev["A"]}

    cell, x, state = random_case("fw_rnn", 4, 2, 3, 4, 3)
    forgetful = Forgetful(3, 4)
    forgetful.set_params(cell.params)
    report = npcell.gradcheck(forgetful, x, state, mode="full", floor=FW_FLOOR)
    assert not report.row("dstate0[A]").ok
    assert not report.row("W_hh").ok  # earlier steps' weights lose the path through A


# ----- forward semantics against plain NumPy ------------------------------------------------
def _relu(v):
    return np.maximum(v, 0.0)


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _ln(v, gain, bias):
    return direct_layer_norm(v[None], gain, bias, 1e-5)[0]


def fw_rnn_reference(p, x, state, lam, eta, S, fw_write, fw_query):
    """Ba et al.'s FW-RNN, one sequence at a time, with np.outer and explicit matrices."""
    T, B, _ = x.shape
    hs = np.empty((T, B, state["h"].shape[1]))
    final = {"h": np.empty_like(state["h"]), "A": np.empty_like(state["A"])}
    for b in range(B):
        h, A = state["h"][b], state["A"][b]
        for t in range(T):
            slow = p["W_hh"] @ h + p["W_hx"] @ x[t, b] + p["b_h"]
            h_s = _relu(slow)
            written = h if fw_write == "prev_h" else h_s
            A_new = lam * A + eta * np.outer(written, written)
            A_read = A_new if fw_query == "new_A" else A
            for _ in range(S):
                h_s = _relu(_ln(slow + A_read @ h_s, p["ln_gain"], p["ln_bias"]))
            h, A = h_s, A_new
            hs[t, b] = h
        final["h"][b], final["A"][b] = h, A
    return hs, final


def fw_lstm_reference(p, x, state, lam, eta, variant, fw_write, fw_query):
    """FW-LSTM variants A (co-author's PyTorch) and B (first author's TF), one sequence at a
    time; gate vector order i, f, g, o."""
    T, B, _ = x.shape
    H = state["h"].shape[1]
    cat = np.concatenate
    W_x, W_h = cat([p[f"W_{k}x"] for k in "ifgo"]), cat([p[f"W_{k}h"] for k in "ifgo"])
    b = cat([p[f"b_{k}"] for k in "ifgo"])
    gain, shift = cat([p[f"ln_gain_{k}"] for k in "ifgo"]), cat([p[f"ln_bias_{k}"] for k in "ifgo"])
    hs = np.empty((T, B, H))
    final = {k: np.empty_like(v) for k, v in state.items()}
    for n in range(B):
        h, c, A = state["h"][n], state["c"][n], state["A"][n]
        for t in range(T):
            pi, pf, pg, po = np.split(_ln(W_x @ x[t, n] + W_h @ h + b, gain, shift), 4)
            if variant == "A":
                g = _relu(pg)
                w = g if fw_write == "prelim" else h
                A_new = lam * A + eta * np.outer(w, w)
                r = (A_new if fw_query == "new_A" else A) @ g
                i, f, o = _sigmoid(pi), _sigmoid(pf), _sigmoid(po)
                u = _relu(pg + r)
            else:
                a = _relu(cat([pi, pf, pg, po]))
                A_new = lam * A + eta * np.outer(a, a)
                qi, qf, qg, qo = np.split((A_new if fw_query == "new_A" else A) @ a, 4)
                i, f, o = _sigmoid(pi + qi), _sigmoid(pf + qf + 1.0), _sigmoid(po + qo)
                u = _relu(pg + qg)
            c = _ln(f * c + i * u, p["ln_gain_c"], p["ln_bias_c"])
            h = o * _relu(c)
            A = A_new
            hs[t, n] = h
        final["h"][n], final["c"][n], final["A"][n] = h, c, A
    return hs, final


@pytest.mark.parametrize("options", FW_RNN_OPTIONS, ids=_id)
@settings(max_examples=5)
@given(**shapes, lam=st.sampled_from([0.95, 0.5, 1.0]), eta=st.sampled_from([0.5, 0.0, 1.0]))
def test_fw_rnn_forward_equals_plain_numpy(options, T, B, X, H, seed, lam, eta):
    cell, x, state = random_case("fw_rnn", T, B, X, H, seed, lam=lam, eta=eta, **options)
    h, state_T, _ = npcell.forward(cell, x, state)
    h_ref, s_ref = fw_rnn_reference(cell.params, x, state, lam, eta, **options)
    np.testing.assert_allclose(h, h_ref, rtol=1e-11, atol=1e-12)
    for k in ("h", "A"):
        np.testing.assert_allclose(state_T[k], s_ref[k], rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("options", FW_LSTM_OPTIONS, ids=_id)
@settings(max_examples=5)
@given(**shapes, lam=st.sampled_from([0.95, 0.5]), eta=st.sampled_from([0.5, 1.0]))
def test_fw_lstm_forward_equals_plain_numpy(options, T, B, X, H, seed, lam, eta):
    cell, x, state = random_case("fw_lstm", T, B, X, H, seed, lam=lam, eta=eta, **options)
    h, state_T, _ = npcell.forward(cell, x, state)
    options = {"fw_write": "prelim", **options}
    h_ref, s_ref = fw_lstm_reference(cell.params, x, state, lam, eta, **options)
    np.testing.assert_allclose(h, h_ref, rtol=1e-11, atol=1e-12)
    for k in ("h", "c", "A"):
        np.testing.assert_allclose(state_T[k], s_ref[k], rtol=1e-11, atol=1e-12)


def test_fast_weights_grown_from_zero_stay_symmetric_and_decay():
    cell, x, _ = random_case("fw_rnn", 6, 2, 3, 4, 5, lam=0.9, eta=0.5)
    _, state, _ = npcell.forward(cell, x)  # A_0 = 0
    A = state["A"]
    np.testing.assert_allclose(A, A.transpose(0, 2, 1), atol=1e-15)
    assert np.linalg.eigvalsh(A).min() > -1e-12  # a decayed sum of w w^T is positive semidefinite
    # one more step with eta = 0 only decays: A_{t+1} = lam * A_t
    quiet, _, _ = random_case("fw_rnn", 1, 2, 3, 4, 5, lam=0.9, eta=0.0)
    _, after, _ = npcell.forward(quiet, x[:1], state)
    np.testing.assert_allclose(after["A"], 0.9 * A, rtol=1e-15)


# ----- eta = 0: the same cell without fast weights ------------------------------------------
@pytest.mark.parametrize("variant", ["A", "B"])
@settings(max_examples=8)
@given(**shapes)
def test_fw_lstm_with_eta_zero_is_exactly_the_cell_without_fast_weights(variant, T, B, X, H,
                                                                         seed):
    """With eta = 0 and A_0 = 0, A stays 0 and the read is 0: outputs, every gradient, dx and
    dh_0, dc_0 equal those of fast_weights=False bit for bit, and both equal a plain forward."""
    fw, x, state = random_case("fw_lstm", T, B, X, H, seed, variant=variant, eta=0.0)
    plain = npcell.make_cell("fw_lstm", X, H, variant=variant, fast_weights=False)
    plain.set_params(fw.params)
    assert plain.state_names == ("h", "c")
    state["A"] = np.zeros_like(state["A"])
    plain_state = {"h": state["h"], "c": state["c"]}
    rng = np.random.default_rng(seed)
    dh = rng.standard_normal((T, B, H))
    dstate = {"h": rng.standard_normal((B, H)), "c": rng.standard_normal((B, H))}

    h_fw, s_fw, cache_fw = npcell.forward(fw, x, state)
    h_pl, s_pl, cache_pl = npcell.forward(plain, x, plain_state)
    np.testing.assert_array_equal(s_fw["A"], 0.0)
    np.testing.assert_array_equal(h_fw, h_pl)
    np.testing.assert_array_equal(s_fw["c"], s_pl["c"])
    g_fw, dx_fw, d0_fw = npcell.backward(fw, dh, cache_fw, dstate)
    g_pl, dx_pl, d0_pl = npcell.backward(plain, dh, cache_pl, dstate)
    np.testing.assert_array_equal(dx_fw, dx_pl)
    for k in ("h", "c"):
        np.testing.assert_array_equal(d0_fw[k], d0_pl[k])
    for k in g_pl:
        np.testing.assert_array_equal(g_fw[k], g_pl[k])

    # and the memoryless cell is the LN-LSTM with ReLU candidate written out plainly
    p = plain.params
    cat = np.concatenate
    W_x, W_h = cat([p[f"W_{k}x"] for k in "ifgo"]), cat([p[f"W_{k}h"] for k in "ifgo"])
    b = cat([p[f"b_{k}"] for k in "ifgo"])
    gain, shift = cat([p[f"ln_gain_{k}"] for k in "ifgo"]), cat([p[f"ln_bias_{k}"] for k in "ifgo"])
    fb = 0.0 if variant == "A" else 1.0
    for n in range(B):
        h, c = state["h"][n], state["c"][n]
        for t in range(T):
            pi, pf, pg, po = np.split(_ln(W_x @ x[t, n] + W_h @ h + b, gain, shift), 4)
            c = _ln(_sigmoid(pf + fb) * c + _sigmoid(pi) * _relu(pg), p["ln_gain_c"],
                    p["ln_bias_c"])
            h = _sigmoid(po) * _relu(c)
            np.testing.assert_allclose(h_pl[t, n], h, rtol=1e-11, atol=1e-12)


@settings(max_examples=8)
@given(**shapes, S=st.integers(1, 3))
def test_fw_rnn_with_eta_zero_and_no_memory_is_a_layer_normalised_relu_rnn(T, B, X, H, seed, S):
    """A_0 = 0 and eta = 0: the inner loop reads nothing, so every S gives h = ReLU(LN(a))."""
    cell, x, state = random_case("fw_rnn", T, B, X, H, seed, eta=0.0, S=S)
    state["A"] = np.zeros_like(state["A"])
    h, state_T, _ = npcell.forward(cell, x, state)
    p = cell.params
    h_prev = state["h"]
    for t in range(T):
        a = h_prev @ p["W_hh"].T + x[t] @ p["W_hx"].T + p["b_h"]
        h_prev = _relu(direct_layer_norm(a, p["ln_gain"], p["ln_bias"], 1e-5))
        np.testing.assert_allclose(h[t], h_prev, rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(state_T["A"], 0.0)


# ----- sequences: chunked BPTT carries A and dA ---------------------------------------------
@pytest.mark.parametrize("kind,options", [("fw_rnn", dict(S=2, fw_write="prelim")),
                                          ("fw_rnn", dict(fw_query="old_A")),
                                          ("fw_lstm", dict(variant="A", fw_write="prev_h")),
                                          ("fw_lstm", dict(variant="B", fw_query="old_A"))])
@settings(max_examples=6)
@given(**shapes, cut=st.integers(1, 4))
def test_chunked_bptt_with_carried_state_and_dstate_equals_whole_sequence(kind, options, T, B,
                                                                          X, H, seed, cut):
    assume(cut < T)
    cell, x, state = random_case(kind, T, B, X, H, seed, **options)
    rng = np.random.default_rng(seed)
    dh = rng.standard_normal((T, B, H))
    dA_final = rng.standard_normal(state["A"].shape)
    h, s_T, cache = npcell.forward(cell, x, state)
    grads, dx, d0 = npcell.backward(cell, dh, cache, {"A": dA_final})
    h1, s1, c1 = npcell.forward(cell, x[:cut], state)
    h2, s2, c2 = npcell.forward(cell, x[cut:], s1)
    g2, dx2, d1 = npcell.backward(cell, dh[cut:], c2, {"A": dA_final})
    g1, dx1, d0_chunk = npcell.backward(cell, dh[:cut], c1, d1)
    np.testing.assert_allclose(np.concatenate([h1, h2]), h, atol=1e-13)
    np.testing.assert_allclose(np.concatenate([dx1, dx2]), dx, rtol=1e-12, atol=1e-12)
    for k in cell.state_names:
        np.testing.assert_allclose(s2[k], s_T[k], atol=1e-13)
        np.testing.assert_allclose(d0_chunk[k], d0[k], rtol=1e-12, atol=1e-12)
    for k in grads:
        np.testing.assert_allclose(g1[k] + g2[k], grads[k], rtol=1e-12, atol=1e-11)


def test_dA_flows_back_by_lambda_per_step_when_nothing_is_written():
    """eta = 0: A_T = lam^T A_0 and nothing is written, so with a loss on A_T only (dh = 0),
    dL/dA_0 = lam^T dL/dA_T exactly and no gradient reaches h, x or the weights."""
    lam, T = 0.8, 3
    cell, x, state = random_case("fw_rnn", T, 2, 3, 4, 9, lam=lam, eta=0.0)
    _, _, cache = npcell.forward(cell, x, state)
    dA_T = np.random.default_rng(0).standard_normal(state["A"].shape)
    grads, dx, d0 = npcell.backward(cell, None, cache, {"A": dA_T})
    np.testing.assert_allclose(d0["A"], lam**T * dA_T, rtol=1e-14)
    np.testing.assert_array_equal(d0["h"], 0.0)
    np.testing.assert_array_equal(dx, 0.0)
    for g in grads.values():
        np.testing.assert_array_equal(g, 0.0)


# ----- shapes, init, counts, options, describe ----------------------------------------------
def test_state_shapes_and_zero_state_include_A():
    rnn = npcell.make_cell("fw_rnn", 3, 5)
    assert rnn.state_shapes(2) == {"h": (2, 5), "A": (2, 5, 5)}
    zero = rnn.zero_state(2)
    assert zero["A"].shape == (2, 5, 5) and not zero["A"].any()
    lstm_a = npcell.make_cell("fw_lstm", 3, 5)
    assert lstm_a.state_shapes(2) == {"h": (2, 5), "c": (2, 5), "A": (2, 5, 5)}
    lstm_b = npcell.make_cell("fw_lstm", 3, 5, variant="B")
    assert lstm_b.zero_state(2)["A"].shape == (2, 20, 20)
    h, state, _ = npcell.forward(lstm_b, np.ones((2, 2, 3)))
    assert state["A"].shape == (2, 20, 20)
    with pytest.raises(ShapeError, match="A"):
        npcell.forward(lstm_b, np.ones((2, 2, 3)),
                       {"h": np.zeros((2, 5)), "c": np.zeros((2, 5)), "A": np.zeros((2, 5, 5))})


def test_fw_rnn_init_follows_ba():
    cell = npcell.make_cell("fw_rnn", 3, 6)
    np.testing.assert_array_equal(cell.params["W_hh"], 0.05 * np.eye(6))
    np.testing.assert_array_equal(cell.params["ln_gain"], 1.0)
    np.testing.assert_array_equal(cell.params["ln_bias"], 0.0)
    assert 0 < np.abs(cell.params["W_hx"]).max() <= 1 / np.sqrt(6)


def test_fw_lstm_layer_norm_gains_start_at_one():
    cell = npcell.make_cell("fw_lstm", 3, 6, variant="B")
    for name, p in cell.params.items():
        if name.startswith("ln_gain"):
            np.testing.assert_array_equal(p, 1.0)
        elif name.startswith("ln_bias"):
            np.testing.assert_array_equal(p, 0.0)


@settings(max_examples=20)
@given(X=st.integers(1, 40), H=st.integers(1, 40))
def test_parameter_counts(X, H):
    assert npcell.make_cell("fw_rnn", X, H).num_params == H * (X + H) + 3 * H
    for variant in ("A", "B"):  # one bias per gate: see the FastWeightLSTMCell docstring
        assert npcell.make_cell("fw_lstm", X, H, variant=variant).num_params == \
            4 * H * (X + H) + 14 * H


@pytest.mark.parametrize("kind,options,match", [
    ("fw_rnn", {"fw_write": "current"}, "fw_write"),
    ("fw_rnn", {"fw_query": "A_t"}, "fw_query"),
    ("fw_rnn", {"lam": 1.5}, "lam"),
    ("fw_rnn", {"lam": -0.1}, "lam"),
    ("fw_rnn", {"eta": -1.0}, "eta"),
    ("fw_rnn", {"eta": "0.5"}, "eta"),
    ("fw_rnn", {"S": 0}, "S"),
    ("fw_rnn", {"S": 1.5}, "S"),
    ("fw_rnn", {"S": True}, "S"),
    ("fw_rnn", {"activation": "sigmoid"}, "activation"),
    ("fw_rnn", {"ln_eps": 0.0}, "ln_eps"),
    ("fw_rnn", {"variant": "A"}, "unknown option"),
    ("fw_lstm", {"variant": "C"}, "variant"),
    ("fw_lstm", {"variant": "B", "fw_write": "prev_h"}, "prev_h"),
    ("fw_lstm", {"fast_weights": "yes"}, "fast_weights"),
    ("fw_lstm", {"fw_query": None}, "fw_query"),
    ("fw_lstm", {"S": 2}, "unknown option"),
])
def test_bad_options_raise_config_error(kind, options, match):
    with pytest.raises(ConfigError, match=match):
        npcell.make_cell(kind, 2, 3, **options)


@pytest.mark.parametrize("kind,options", [("fw_rnn", {}), ("fw_lstm", {}),
                                          ("fw_lstm", {"variant": "B"})])
def test_describe_shows_equations_options_and_count(kind, options):
    cell = npcell.make_cell(kind, 2, 3, **options)
    text = cell.describe()
    assert ("(FW1)" if kind == "fw_rnn" else "(FWL3)") in text
    assert "lam=0.95" in text and "eta=0.5" in text and "fw_query='new_A'" in text
    assert f"total parameters: {cell.num_params:,}" in text
    assert repr(cell).startswith(type(cell).__name__)
