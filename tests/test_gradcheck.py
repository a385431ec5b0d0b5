"""gradcheck must catch broken gradients and say where; and pass the correct ones."""

import numpy as np
import pytest

import npcell
from npcell.cells.lstm import LSTMCell
from npcell.cells.wmc import WMCCell


def case(kind="lstm", T=4, B=3, X=2, H=3, seed=0):
    cell = npcell.make_cell(kind, X, H, seed=seed)
    x = np.random.default_rng(seed).standard_normal((T, B, X))
    return cell, x


class Corrupted(LSTMCell):
    """An LSTM whose step_backward damages one gradient (the autograder's situation)."""

    kind = "lstm"
    fused = False  # the sequence driver must run the (broken) step functions

    def __init__(self, *args, corrupt=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.corrupt = corrupt

    def step_backward(self, params, dstate, cache_t):
        grads, dx, dprev = super().step_backward(params, dstate, cache_t)
        return self.corrupt(grads, dx, dprev, cache_t)


@pytest.mark.parametrize("mode", ["fast", "full"])
@pytest.mark.parametrize("target", ["W_ix", "W_fh", "b_o", "W_gx"])
def test_corrupted_parameter_gradient_is_named(mode, target):
    def corrupt(grads, dx, dprev, cache):
        grads[target] = grads[target] * 1.01
        return grads, dx, dprev

    cell = Corrupted(2, 3, seed=1, corrupt=corrupt)
    x = np.random.default_rng(0).standard_normal((4, 3, 2))
    report = npcell.gradcheck(cell, x, mode=mode)
    assert not report.ok
    failing_params = [r.name for r in report.failures if r.group == "param"]
    assert failing_params == [target]
    assert report.worst("param").name == target
    assert not report.row(f"gate {target[2]}").ok  # W_ix, b_o, ... -> gate i, o, ...
    assert "FAIL" in str(report) and target in str(report)


def test_missing_batch_sum_hint_for_bias():
    def corrupt(grads, dx, dprev, cache):
        grads["b_i"] = grads["b_i"] / cache["x"].shape[0]  # mean instead of sum over the batch
        return grads, dx, dprev

    cell = Corrupted(2, 3, seed=1, corrupt=corrupt)
    x = np.random.default_rng(0).standard_normal((3, 4, 2))
    report = npcell.gradcheck(cell, x, mode="full")
    row = report.row("b_i")
    assert not row.ok
    assert "batch" in row.hint


def test_transposed_weight_hint():
    def corrupt(grads, dx, dprev, cache):
        grads["W_oh"] = grads["W_oh"].T.copy()
        return grads, dx, dprev

    cell = Corrupted(2, 4, seed=2, corrupt=corrupt)
    x = np.random.default_rng(0).standard_normal((3, 2, 2))
    row = npcell.gradcheck(cell, x, mode="full").row("W_oh")
    assert not row.ok and "transposed" in row.hint


def test_dropped_carry_shows_in_earlier_time_steps_only():
    def corrupt(grads, dx, dprev, cache):
        dprev["c"] = dprev["c"] * 0.0  # forget the constant error carousel
        return grads, dx, dprev

    cell = Corrupted(2, 3, seed=3, corrupt=corrupt)
    x = np.random.default_rng(1).standard_normal((5, 2, 2))
    report = npcell.gradcheck(cell, x, mode="fast")
    assert report.row("dx[t=4]").ok  # the last step has nothing carried into it
    assert not report.row("dx[t=0]").ok
    assert not report.row("dstate0[c]").ok
    assert "carried" in report.row("dx[t=0]").hint


def test_wmc_o_gate_paired_with_previous_cell_is_named():
    """The classic WMC slip: dW_oc computed with c_{t-1} instead of c_t."""

    class Slip(WMCCell):
        kind = "wmc"
        fused = False

        def step_backward(self, params, dstate, cache_t):
            grads, dx, dprev = super().step_backward(params, dstate, cache_t)
            dz_o = dstate["h"] * cache_t["tanh_c"] * cache_t["o"] * (1 - cache_t["o"])
            dz_o = dz_o * (1 - cache_t["u_o"] ** 2)
            grads["W_oc"] = dz_o.T @ cache_t["c_prev"]
            return grads, dx, dprev

    cell = Slip(2, 3, seed=4)
    x = np.random.default_rng(2).standard_normal((4, 2, 2))
    report = npcell.gradcheck(cell, x)
    assert [r.name for r in report.failures if r.group == "param"] == ["W_oc"]
    assert "c_t" in report.row("W_oc").hint
    assert not report.row("gate c-connections").ok


@pytest.mark.parametrize("kind", ["lstm", "peephole", "wmc"])
def test_correct_cells_pass_both_modes(kind):
    cell, x = case(kind)
    for mode in ("fast", "full"):
        report = npcell.gradcheck(cell, x, mode=mode)
        assert report.ok, str(report)
        assert report.max_rel_error < 1e-6


def test_sampled_full_mode_checks_the_requested_number_of_entries():
    cell, x = case("lstm", H=6)
    report = npcell.gradcheck(cell, x, mode="full", samples=5)
    assert report.row("W_ih").n_checked == 5
    assert report.row("b_g").n_checked == 5
    assert report.ok


def test_float32_warns_and_loosens():
    cell, x = case("lstm")
    cell32 = cell.astype("float32")
    with pytest.warns(UserWarning, match="float32"):
        report = npcell.gradcheck(cell32, x.astype("float32"))
    assert report.tol > 1e-6 and report.dtype == "float32"


def test_report_renders_and_serialises():
    cell, x = case("wmc", T=12)
    report = npcell.gradcheck(cell, x)
    text = str(report)
    assert text.startswith("gradcheck wmc") and "PASS" in text
    assert "more passing dx[t] rows" in text  # long sequences fold the dx rows
    d = report.to_dict()
    assert d["ok"] is True and len(d["rows"]) == len(report.rows)


def test_callers_rng_untouched():
    cell, x = case()
    np.random.seed(123)  # noqa: NPY002 - the legacy global RNG is what callers may rely on
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    npcell.gradcheck(cell, x)
    assert np.array_equal(np.random.get_state()[1], before)  # noqa: NPY002


def test_bad_mode_is_a_clear_error():
    cell, x = case()
    with pytest.raises(npcell.ConfigError, match="fast"):
        npcell.gradcheck(cell, x, mode="slow")


def test_full_table_says_gate_rows_repeat_parameter_rows_and_keeps_its_columns():
    # issue 26: the full table repeated the W_kh rows as "gate" rows without saying so, and
    # "gate c-connections" pushed its numbers out of their column
    cell, x = case("wmc", T=3)
    text = str(npcell.gradcheck(cell, x, mode="full"))
    assert "the worst parameter row of each gate, repeated" in text
    for gate in cell.gate_blocks():
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(f"gate {gate} "))
        assert "worst: " in line
    rows = [ln for ln in text.splitlines()[2:] if not ln.startswith(("  --", "  ("))]
    assert any(ln.strip().startswith("gate c-connections ") for ln in rows)
    header = text.splitlines()[1]
    end = header.index("rel.err") + len("rel.err")  # every row's rel.err ends where it does
    for ln in rows:
        assert ln[end - 1] != " " and ln[end] == " ", ln
    fast = str(npcell.gradcheck(cell, x))
    assert "all parameters of one gate moved together" in fast
