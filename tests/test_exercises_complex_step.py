"""The complex-step mode of npcell.gradcheck (DESIGN section 4): Im L(p + i h v) / h."""

import numpy as np
import pytest

from npcell import make_cell
from npcell.cells.base import CELLS
from npcell.cli import main
from npcell.errors import ConfigError
from npcell.gradcheck import COMPLEX_SAFE, gradcheck


def _problem(kind, seed=0):
    cell = make_cell(kind, 3, 4, seed=seed)
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((3, 2, 3))
    state = {k: 0.5 * rng.standard_normal(s) for k, s in cell.state_shapes(2).items()}
    return cell, x, state


@pytest.mark.parametrize("kind", COMPLEX_SAFE)
def test_complex_step_agrees_with_central_differences_to_round_off(kind):
    cell, x, state = _problem(kind)
    complex_report = gradcheck(cell, x, state, mode="full", method="complex", fused=False)
    central = gradcheck(cell, x, state, mode="full", fused=False)
    assert complex_report.ok and central.ok
    assert complex_report.max_rel_error < 1e-12, str(complex_report)
    # same rows; each complex-step error is far below the central one's
    assert [r.name for r in complex_report.rows] == [r.name for r in central.rows]
    assert complex_report.max_rel_error < central.max_rel_error / 1e3


def test_complex_step_entries_equal_central_entries():
    # entry by entry, one tensor: the two numerical gradients agree to central's accuracy
    cell, x, state = _problem("wmc")
    fast_c = gradcheck(cell, x, state, mode="fast", method="complex", seed=3, fused=False)
    fast_r = gradcheck(cell, x, state, mode="fast", seed=3, fused=False)
    for rc, rr in zip(fast_c.rows, fast_r.rows):
        assert rc.numeric == pytest.approx(rr.numeric, rel=1e-6, abs=1e-8), rc.name


def test_complex_step_catches_a_wrong_backward():
    cell, x, state = _problem("lstm")
    right = cell.step_backward

    def scaled(params, dstate, cache_t):
        grads, dx, dprev = right(params, dstate, cache_t)
        grads["W_fh"] = 1.001 * grads["W_fh"]
        return grads, dx, dprev

    cell.step_backward = scaled
    cell.fused = False
    report = gradcheck(cell, x, state, mode="full", method="complex")
    assert not report.ok
    assert [r.name for r in report.failures if r.group == "param"] == ["W_fh"]
    assert "constant factor 1.001" in report.row("W_fh").hint


def test_complex_step_refuses_float32_and_unknown_methods():
    cell, x, state = _problem("lstm")
    with pytest.raises(ConfigError, match="float64"):
        gradcheck(cell.astype("float32"), x.astype("float32"), method="complex")
    with pytest.raises(ConfigError, match="method"):
        gradcheck(cell, x, method="forward")
    assert set(COMPLEX_SAFE) <= set(CELLS)


def test_cli_gradcheck_method_complex(capsys):
    assert main(["gradcheck", "--cell", "gru", "--method", "complex"]) == 0
    assert "method=complex" in capsys.readouterr().out
    assert main(["gradcheck", "--cell", "lstm", "--method", "complex", "--dtype",
                 "float32"]) == 2
