"""Readouts, embedding and losses: float64 finite differences against the hand-written backward
(npcell.gradcheck's relative-error convention), stability at extreme logits, exact identities."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npcell.errors import ConfigError, DTypeError, ShapeError
from npcell.numdiff import TOLERANCES, derivative, entry_mover, relative_error
from npcell.training.layers import (
    Embedding,
    Linear,
    log_softmax,
    mse_loss,
    one_hot,
    scatter_add,
    softmax_cross_entropy,
)

TOL, FLOOR = TOLERANCES["float64"].rtol, 1e-4


def numeric_grad(loss_fn, array):
    """Central differences (npcell.numdiff) of a scalar loss with respect to every entry of
    ``array`` (moved in place, restored)."""
    grad = np.zeros_like(array)
    for idx in np.ndindex(array.shape):
        grad[idx] = derivative(lambda: [loss_fn()], [1.0], entry_mover(array, idx))
    return grad


def assert_grad_close(analytic, numeric):
    err = float(np.max(relative_error(analytic, numeric, FLOOR)))
    assert err < TOL, f"max relative error {err:.2e} >= {TOL}"


# ----- Linear + MSE at the last step ----------------------------------------------------------
@settings(max_examples=8)
@given(B=st.integers(1, 4), H=st.integers(1, 5), K=st.integers(1, 3), seed=st.integers(0, 99))
def test_linear_mse_gradients_match_finite_differences(B, H, K, seed):
    rng = np.random.default_rng(seed)
    layer = Linear(H, K, seed=seed)
    h = rng.standard_normal((B, H))
    target = rng.standard_normal((B, K))

    def loss():
        y, _ = layer.forward(layer.params, h)
        return mse_loss(y, target)[0]

    y, cache = layer.forward(layer.params, h)
    _, dy = mse_loss(y, target)
    grads, dh = layer.backward(layer.params, dy, cache)
    assert_grad_close(grads["W"], numeric_grad(loss, layer.params["W"]))
    assert_grad_close(grads["b"], numeric_grad(loss, layer.params["b"]))
    assert_grad_close(dh, numeric_grad(loss, h))


def test_mse_value_is_the_mean_square():
    pred = np.array([[1.0], [2.0], [4.0]])
    target = np.array([[0.0], [2.0], [1.0]])
    loss, dpred = mse_loss(pred, target)
    assert loss == pytest.approx((1 + 0 + 9) / 3)
    np.testing.assert_allclose(dpred, 2 * (pred - target) / 3)
    with pytest.raises(ShapeError, match=r"\(3, 1\).*\(3,\)"):
        mse_loss(pred, target[:, 0])


# ----- Linear + softmax cross-entropy, per step and at the last step --------------------------
@settings(max_examples=8)
@given(T=st.integers(1, 4), B=st.integers(1, 3), C=st.integers(2, 5), masked=st.booleans(),
       seed=st.integers(0, 99))
def test_per_step_softmax_ce_gradients_match_finite_differences(T, B, C, masked, seed):
    rng = np.random.default_rng(seed)
    H = 3
    layer = Linear(H, C, seed=seed)
    h = rng.standard_normal((T, B, H))
    labels = rng.integers(0, C, size=(T, B))
    mask = None
    if masked:
        mask = (rng.random((T, B)) < 0.5).astype(float)
        mask[0, 0] = 1.0  # at least one counted position

    def loss():
        y, _ = layer.forward(layer.params, h)
        return softmax_cross_entropy(y, labels, mask)[0]

    y, cache = layer.forward(layer.params, h)
    _, dy, count = softmax_cross_entropy(y, labels, mask)
    assert count == (T * B if mask is None else int(mask.sum()))
    grads, dh = layer.backward(layer.params, dy, cache)
    assert_grad_close(grads["W"], numeric_grad(loss, layer.params["W"]))
    assert_grad_close(grads["b"], numeric_grad(loss, layer.params["b"]))
    assert_grad_close(dh, numeric_grad(loss, h))
    if mask is not None:  # masked positions receive exactly no gradient
        assert np.all(dh[mask == 0] == 0)


def test_last_step_cross_entropy_equals_a_hand_computed_value():
    logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    labels = np.array([0, 2])
    expected = -(math.log(math.exp(2) / (math.exp(2) + 1 + math.exp(-1))) + math.log(1 / 3)) / 2
    loss, dlogits, count = softmax_cross_entropy(logits, labels)
    assert count == 2
    assert loss == pytest.approx(expected, rel=1e-12)
    # each row of the gradient sums to zero (softmax minus one-hot), divided by the count
    np.testing.assert_allclose(dlogits.sum(axis=1), 0.0, atol=1e-15)
    assert dlogits[1, 2] == pytest.approx((1 / 3 - 1) / 2)


@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_cross_entropy_is_finite_and_warning_free_at_extreme_logits(scale):
    logits = np.array([[scale, 0.0, -scale], [0.0, scale, scale]])
    labels = np.array([2, 0])
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        loss, dlogits, _ = softmax_cross_entropy(logits, labels)
        logp = log_softmax(logits)
    assert np.isfinite(loss) and np.all(np.isfinite(dlogits)) and np.all(np.isfinite(logp))
    # scale > 0: the label sits 2e4 below the top logit (row 0) and 1e4 below two tied top
    # logits (row 1: loss 1e4 + ln 2); scale < 0: the label is the single top logit in both rows
    expected = (2e4 + (1e4 + math.log(2))) / 2 if scale > 0 else 0.0
    assert loss == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_cross_entropy_rejects_bad_labels_and_masks():
    logits = np.zeros((2, 3))
    with pytest.raises(ConfigError, match=r"\[0, 3\)"):
        softmax_cross_entropy(logits, np.array([0, 3]))
    with pytest.raises(DTypeError, match="integer"):
        softmax_cross_entropy(logits, np.array([0.0, 1.0]))
    with pytest.raises(ShapeError, match="labels must have shape"):
        softmax_cross_entropy(logits, np.array([0, 1, 2]))
    with pytest.raises(ConfigError, match="selects no position"):
        softmax_cross_entropy(logits, np.array([0, 1]), mask=np.zeros(2))


# ----- Embedding: scatter-add backward --------------------------------------------------------
def test_embedding_gradient_sums_repeated_tokens():
    emb = Embedding(5, 3, seed=1)
    rng = np.random.default_rng(2)
    tokens = np.array([[1, 1], [4, 1], [0, 4]])  # token 1 three times, 4 twice, 2 and 3 never
    weights = rng.standard_normal((3, 2, 3))

    def loss():
        out, _ = emb.forward(emb.params, tokens)
        return float((out * weights).sum())

    out, cache = emb.forward(emb.params, tokens)
    np.testing.assert_array_equal(out[1, 0], emb.params["E"][4])
    grads, dtokens = emb.backward(emb.params, weights, cache)
    assert dtokens is None
    assert_grad_close(grads["E"], numeric_grad(loss, emb.params["E"]))
    np.testing.assert_allclose(grads["E"][1], weights[0, 0] + weights[0, 1] + weights[1, 1])
    assert np.all(grads["E"][[2, 3]] == 0)


def test_scatter_add_accumulates_where_fancy_assignment_would_overwrite():
    target = np.zeros((3, 2))
    scatter_add(target, np.array([0, 0, 2]), np.ones((3, 2)))
    np.testing.assert_array_equal(target, [[2, 2], [0, 0], [1, 1]])


def test_one_hot_and_token_checks():
    x = one_hot(np.array([[0, 2], [1, 1]]), 3)
    assert x.shape == (2, 2, 3)
    np.testing.assert_array_equal(x.argmax(-1), [[0, 2], [1, 1]])
    assert x.sum() == 4
    with pytest.raises(ConfigError, match=r"\[0, 3\)"):
        one_hot(np.array([3]), 3)


def test_linear_checks_shapes_and_dtypes():
    layer = Linear(4, 2)
    with pytest.raises(ShapeError, match="4 features"):
        layer.forward(layer.params, np.zeros((3, 5)))
    with pytest.raises(DTypeError, match="float64"):
        layer.forward(layer.params, np.zeros((3, 4), dtype=np.float32))
    assert "in_features=4" in repr(layer)
