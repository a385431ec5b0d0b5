"""The per-step hooks of the one stepwise loop (npcell.sequence.stepwise_forward/backward)."""

import numpy as np
import pytest

import npcell
from npcell.errors import ConfigError


@pytest.mark.parametrize("kind", ["lstm", "peephole", "wmc", "gru", "fw_lstm"])
def test_hooks_see_every_step_and_their_contributions_sum_to_the_gradients(kind):
    cell = npcell.make_cell(kind, 3, 4, seed=1)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 2, 3))
    dh = rng.standard_normal((6, 2, 4))
    forward_steps, backward_steps = [], {}
    h, state_T, cache = npcell.forward(
        cell, x, on_step=lambda t, state_t, cache_t: forward_steps.append((t, state_t["h"])))
    grads, dx, dstate0 = npcell.backward(
        cell, dh, cache,
        on_step=lambda t, dstate_t, grads_t, dx_t, dstate_prev: backward_steps.__setitem__(
            t, (dstate_t, grads_t, dx_t.copy(), dstate_prev)))
    assert [t for t, _ in forward_steps] == list(range(6))
    for t, h_t in forward_steps:
        np.testing.assert_array_equal(h_t, h[t])
    assert sorted(backward_steps) == list(range(6))
    for name, g in grads.items():  # dL/dW = sum over t of the step contributions
        np.testing.assert_allclose(sum(backward_steps[t][1][name] for t in range(6)), g,
                                   rtol=1e-12, atol=1e-14)
    for t in range(6):
        np.testing.assert_array_equal(backward_steps[t][2], dx[t])
    for name in cell.state_names:  # the carry: what leaves step t enters step t-1
        np.testing.assert_array_equal(backward_steps[0][3][name], dstate0[name])
    # the loss at step t is already in dstate_t["h"]: dstate_t = carried + dh[t]
    np.testing.assert_allclose(backward_steps[5][0]["h"], dh[5])
    # and the hooked run equals the default (fused where registered) run
    h2, _, cache2 = npcell.forward(cell, x)
    grads2, dx2, _ = npcell.backward(cell, dh, cache2)
    np.testing.assert_allclose(h, h2, rtol=1e-12, atol=1e-14)
    for name in grads:
        np.testing.assert_allclose(grads[name], grads2[name], rtol=1e-10, atol=1e-12)


def test_hooks_need_the_stepwise_path():
    cell = npcell.make_cell("lstm", 2, 3, seed=0)
    x = np.zeros((3, 1, 2))
    with pytest.raises(ConfigError, match="stepwise"):
        npcell.forward(cell, x, fused=True, on_step=lambda *a: None)
    _, _, cache = npcell.forward(cell, x, fused=True)
    with pytest.raises(ConfigError, match="stepwise cache"):
        npcell.backward(cell, None, cache, on_step=lambda *a: None)
