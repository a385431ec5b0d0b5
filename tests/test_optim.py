"""Optimisers and clipping: hand-computed steps, PyTorch's torch.optim as a reference, and exact
resume from a saved state."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npcell.errors import CheckpointError, ConfigError, ShapeError
from npcell.training.optim import SGD, Adam, clip_grad_norm, global_grad_norm, make_optimizer


def test_nesterov_sgd_two_steps_by_hand():
    p = {"w": np.array([1.0, -2.0])}
    opt = SGD(p, lr=0.1, momentum=0.9, nesterov=True)
    g1, g2 = np.array([1.0, 0.5]), np.array([-2.0, 1.0])
    opt.step({"w": g1.copy()})
    buf = g1  # first step: buffer = g
    expected = np.array([1.0, -2.0]) - 0.1 * (g1 + 0.9 * buf)
    np.testing.assert_allclose(p["w"], expected, rtol=0, atol=1e-15)
    opt.step({"w": g2.copy()})
    buf = 0.9 * buf + g2
    expected = expected - 0.1 * (g2 + 0.9 * buf)
    np.testing.assert_allclose(p["w"], expected, rtol=0, atol=1e-15)


def test_plain_momentum_and_plain_sgd():
    p = {"w": np.array([0.0])}
    opt = SGD(p, lr=1.0, momentum=0.5)
    for _ in range(3):
        opt.step({"w": np.array([1.0])})
    # buffers 1, 1.5, 1.75 -> w = -(1 + 1.5 + 1.75)
    assert p["w"][0] == pytest.approx(-4.25)
    q = {"w": np.array([3.0])}
    SGD(q, lr=0.5).step({"w": np.array([2.0])})
    assert q["w"][0] == pytest.approx(2.0)


def _torch_reference(kind, params0, grads_seq, **kw):
    torch = pytest.importorskip("torch")
    tensors = {k: torch.tensor(v.copy(), dtype=torch.float64, requires_grad=True)
               for k, v in params0.items()}
    if kind == "sgd":
        opt = torch.optim.SGD(list(tensors.values()), **kw)
    else:
        opt = torch.optim.Adam(list(tensors.values()), **kw)
    for grads in grads_seq:
        for k, t in tensors.items():
            t.grad = torch.tensor(grads[k], dtype=torch.float64)
        opt.step()
    return {k: t.detach().numpy() for k, t in tensors.items()}


@pytest.mark.parametrize("adam, nesterov", [(False, False), (False, True), (True, False)])
@settings(max_examples=3)
@given(seed=st.integers(0, 1000))
def test_matches_torch_optim(adam, nesterov, seed):
    rng = np.random.default_rng(seed)
    params0 = {"W": rng.standard_normal((3, 2)), "b": rng.standard_normal(3)}
    grads_seq = [{k: rng.standard_normal(v.shape) for k, v in params0.items()} for _ in range(5)]
    params = {k: v.copy() for k, v in params0.items()}
    if adam:
        opt, kw = Adam(params, lr=1e-2), {"lr": 1e-2}
        kind = "adam"
    else:
        opt = SGD(params, lr=1e-2, momentum=0.9, nesterov=nesterov)
        kw, kind = {"lr": 1e-2, "momentum": 0.9, "nesterov": nesterov}, "sgd"
    for grads in grads_seq:
        opt.step({k: g.copy() for k, g in grads.items()})
    ref = _torch_reference(kind, params0, grads_seq, **kw)
    for k in params:
        np.testing.assert_allclose(params[k], ref[k], rtol=1e-12, atol=1e-14)


def test_clip_grad_norm_scales_to_max_norm_and_reports_old_norm():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    norm = clip_grad_norm(grads, 1.0)
    assert norm == pytest.approx(5.0)
    assert global_grad_norm(grads) == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_allclose(grads["a"], [3.0 / (5.0 + 1e-6), 0.0])
    small = {"a": np.array([0.1])}
    assert clip_grad_norm(small, 1.0) == pytest.approx(0.1)
    assert small["a"][0] == 0.1  # below the threshold: untouched
    with pytest.raises(ConfigError, match="max_norm"):
        clip_grad_norm(small, 0.0)


def test_clip_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    grads = {"a": rng.standard_normal((4, 3)) * 5, "b": rng.standard_normal(7)}
    tensors = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True)
               for g in grads.values()]
    for t, g in zip(tensors, grads.values()):
        t.grad = torch.tensor(g)
    torch_norm = torch.nn.utils.clip_grad_norm_(tensors, 1.0)
    norm = clip_grad_norm(grads, 1.0)
    assert norm == pytest.approx(float(torch_norm), rel=1e-12)
    for t, g in zip(tensors, grads.values()):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_state_dict_round_trip_gives_bit_identical_continuation(kind):
    rng = np.random.default_rng(0)
    p0 = {"W": rng.standard_normal((2, 2)), "b": rng.standard_normal(2)}
    grads = [{k: rng.standard_normal(v.shape) for k, v in p0.items()} for _ in range(6)]

    def build(params):
        return make_optimizer(kind, params, lr=1e-2, momentum=0.9 if kind == "sgd" else 0.0,
                              nesterov=kind == "sgd")

    straight = {k: v.copy() for k, v in p0.items()}
    opt = build(straight)
    for g in grads:
        opt.step({k: v.copy() for k, v in g.items()})

    first = {k: v.copy() for k, v in p0.items()}
    opt1 = build(first)
    for g in grads[:3]:
        opt1.step({k: v.copy() for k, v in g.items()})
    saved_state = {k: v.copy() for k, v in opt1.state_dict().items()}
    saved_params = {k: v.copy() for k, v in first.items()}
    resumed = saved_params
    opt2 = build(resumed)
    opt2.load_state_dict(saved_state)
    assert opt2.t == 3
    for g in grads[3:]:
        opt2.step({k: v.copy() for k, v in g.items()})
    for k in straight:
        np.testing.assert_array_equal(resumed[k], straight[k])


def test_bad_arguments_raise_clear_errors():
    p = {"w": np.zeros(2)}
    with pytest.raises(ConfigError, match="learning rate"):
        SGD(p, lr=0)
    with pytest.raises(ConfigError, match="nesterov"):
        SGD(p, lr=0.1, nesterov=True)
    with pytest.raises(ConfigError, match="momentum"):
        SGD(p, lr=0.1, momentum=1.5)
    with pytest.raises(ConfigError, match="unknown optimiser"):
        make_optimizer("rmsprop", p, lr=0.1)
    opt = SGD(p, lr=0.1)
    with pytest.raises(ShapeError, match="missing"):
        opt.step({})
    with pytest.raises(ShapeError, match=r"\(3,\)"):
        opt.step({"w": np.zeros(3)})
    with pytest.raises(CheckpointError, match="step count"):
        opt.load_state_dict({})
    adam = Adam(p, lr=0.1)
    adam.step({"w": np.ones(2)})
    state = adam.state_dict()
    state["m/w"] = np.zeros(5)
    with pytest.raises(CheckpointError, match="shape"):
        Adam({"w": np.zeros(2)}, lr=0.1).load_state_dict(state)
    assert math.isnan(clip_grad_norm({"w": np.array([np.nan])}, 1.0))
