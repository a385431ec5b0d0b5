"""The LSTM reference: gradients vs finite differences, hand-computed equations, chunked BPTT
(the engine's fused == stepwise is tests/test_engine.py)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npcell


def random_case(T, B, X, H, seed, kind="lstm", **options):
    cell = npcell.make_cell(kind, X, H, seed=seed, **options)
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((T, B, X))
    state = {"h": rng.standard_normal((B, H)) * 0.5, "c": rng.standard_normal((B, H))}
    return cell, x, state


@settings(max_examples=40)
@given(T=st.integers(1, 8), B=st.integers(1, 4), X=st.integers(1, 5), H=st.integers(1, 6),
       seed=st.integers(0, 2**20))
def test_lstm_full_gradcheck_every_parameter_dx_and_dstate0(T, B, X, H, seed):
    cell, x, state = random_case(T, B, X, H, seed)
    report = npcell.gradcheck(cell, x, state, mode="full", seed=seed)
    names = {r.name for r in report.rows}
    assert set(cell.params) <= names
    assert {f"dx[t={t}]" for t in range(T)} <= names
    assert {"dstate0[h]", "dstate0[c]"} <= names
    assert report.ok, str(report)
    assert report.max_rel_error < 1e-6


@pytest.mark.parametrize("kind", ["lstm", "peephole", "wmc"])
@pytest.mark.parametrize("fused", [True, False])
def test_two_chunks_with_carried_state_equal_one_sequence(kind, fused):
    T, B, X, H = 12, 3, 2, 5
    cell, x, state = random_case(T, B, X, H, seed=7, kind=kind)
    rng = np.random.default_rng(3)
    dh = rng.standard_normal((T, B, H))
    # One pass over the full sequence.
    h, state_T, cache = npcell.forward(cell, x, state, fused=fused)
    grads, dx, dstate0 = npcell.backward(cell, dh, cache)
    # Two chunks: forward carries the state, backward carries dstate from the later chunk.
    cut = 5
    h1, s1, c1 = npcell.forward(cell, x[:cut], state, fused=fused)
    h2, s2, c2 = npcell.forward(cell, x[cut:], s1, fused=fused)
    g2, dx2, ds1 = npcell.backward(cell, dh[cut:], c2)
    g1, dx1, ds0 = npcell.backward(cell, dh[:cut], c1, dstate=ds1)
    np.testing.assert_allclose(np.concatenate([h1, h2]), h, atol=1e-13)
    for k in ("h", "c"):
        np.testing.assert_allclose(s2[k], state_T[k], atol=1e-13)
        np.testing.assert_allclose(ds0[k], dstate0[k], atol=1e-12)
    np.testing.assert_allclose(np.concatenate([dx1, dx2]), dx, atol=1e-12)
    for k in grads:
        np.testing.assert_allclose(g1[k] + g2[k], grads[k], atol=1e-12)


def test_forward_equations_against_hand_computation():
    """One LSTM step written out from eq. (1)-(6) with an independent sigmoid."""
    cell, x, state = random_case(1, 2, 3, 4, seed=11)
    p = cell.params

    def sig(a):
        return 1.0 / (1.0 + np.exp(-a))

    x0, h0, c0 = x[0], state["h"], state["c"]
    g = np.tanh(x0 @ p["W_gx"].T + h0 @ p["W_gh"].T + p["b_g"])
    i = sig(x0 @ p["W_ix"].T + h0 @ p["W_ih"].T + p["b_i"])
    f = sig(x0 @ p["W_fx"].T + h0 @ p["W_fh"].T + p["b_f"])
    o = sig(x0 @ p["W_ox"].T + h0 @ p["W_oh"].T + p["b_o"])
    c = f * c0 + i * g
    h = o * np.tanh(c)
    h_seq, s, _ = npcell.forward(cell, x, state)
    np.testing.assert_allclose(h_seq[0], h, atol=1e-14)
    np.testing.assert_allclose(s["c"], c, atol=1e-14)


def test_default_init_is_pytorch_style_and_seeded():
    a = npcell.make_cell("lstm", 3, 16, seed=5)
    b = npcell.make_cell("lstm", 3, 16, seed=5)
    c = npcell.make_cell("lstm", 3, 16, seed=6)
    bound = 1 / np.sqrt(16)
    for name in a.params:
        assert np.array_equal(a.params[name], b.params[name])
        assert np.abs(a.params[name]).max() <= bound
    assert not np.array_equal(a.params["W_ix"], c.params["W_ix"])
    shifted = npcell.make_cell("lstm", 3, 16, seed=5, forget_bias=1.0)
    np.testing.assert_allclose(shifted.params["b_f"], a.params["b_f"] + 1.0)


def test_paper_parameter_names_and_shapes():
    cell = npcell.make_cell("lstm", input_size=2, hidden_size=7)
    for k in "gifo":
        assert cell.params[f"W_{k}x"].shape == (7, 2)
        assert cell.params[f"W_{k}h"].shape == (7, 7)
        assert cell.params[f"b_{k}"].shape == (7,)
    assert cell.num_params == 4 * 7 * (2 + 7) + 4 * 7
    assert "(6)" in cell.describe() and f"{cell.num_params:,}" in cell.describe()
