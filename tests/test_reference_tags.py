"""The reference step pairs carry each paper equation on the line that computes it (issue 15):
``# eq. (N)`` sits on a line that does the math of equation N, not on a dict update."""

import inspect

import pytest

from npcell.cells import lstm, peephole, wmc

# (function, equation, what the tagged line must compute)
TAGS = [
    (lstm.lstm_step_forward, "(1)", "g = tanh("),
    (lstm.lstm_step_forward, "(2)", "i = sigmoid("),
    (lstm.lstm_step_forward, "(3)", "f = sigmoid("),
    (lstm.lstm_step_forward, "(4)", "c = f * c_prev"),
    (lstm.lstm_step_forward, "(5)", "o = sigmoid("),
    (lstm.lstm_step_forward, "(6)", "h = o * tanh_c"),
    (wmc.wmc_step_forward, "(10)", "a_i = x_t @ p[\"W_ix\"].T + h_prev @ p[\"W_ih\"].T + u_i + "),
    (wmc.wmc_step_forward, "(7)", "i = sigmoid(a_i)"), (wmc.wmc_step_forward, "(8)", "+ u_f + "),
    (wmc.wmc_step_forward, "(9)", "+ u_o + "),
    (wmc.wmc_step_backward, "(14)", "dW_ic = cell_read_weight_grad(dz_i, k[\"c_prev\"]"),
    (wmc.wmc_step_backward, "(15)", "dz_i = da_i * dtanh(k[\"u_i\"])"),
    (peephole.peephole_step_forward, "(20)",
     "a_i = x_t @ p[\"W_ix\"].T + h_prev @ p[\"W_ih\"].T + u_i + "),
    (peephole.peephole_step_forward, "(16)", "i = sigmoid(a_i)"),
    (peephole.peephole_step_forward, "(17)", "+ u_f + "),
    (peephole.peephole_step_forward, "(18)", "+ u_o + "),
    (peephole.peephole_step_backward, "(21)", "dW_ic = cell_read_weight_grad(da_i, k[\"c_prev\"]"),
]


@pytest.mark.parametrize("function,equation,computes", TAGS,
                         ids=[f"{f.__name__}-{e}" for f, e, _ in TAGS])
def test_the_equation_tag_is_on_the_computing_line(function, equation, computes):
    lines = [line for line in inspect.getsource(function).splitlines()
             if f"eq. {equation}" in line.split("#", 1)[-1] and "#" in line]
    assert lines, f"no '# eq. {equation}' in {function.__name__}"
    code = [line.split("#", 1)[0] for line in lines]
    assert any(computes in c for c in code), (function.__name__, equation, lines)
    assert not any(c.strip().startswith(("grads.update", "cache")) for c in code)


def test_the_reference_cells_share_no_flags():
    """wmc and peephole are literal step pairs: no squash/diagonal keyword to resolve."""
    for function in (wmc.wmc_step_forward, wmc.wmc_step_backward,
                     peephole.peephole_step_forward, peephole.peephole_step_backward):
        assert list(inspect.signature(function).parameters) in (
            ["params", "x_t", "state"], ["params", "dstate", "cache"])


def test_solution_markers_live_only_where_a_tool_reads_them():
    """The exercise generator reads ``### BEGIN SOLUTION`` blocks from the references it quotes
    (gru.gru_step_backward; the LSTM family's files are written by exercises/variants.py): a
    marker anywhere else in cells/ is read by nothing."""
    from npcell.cells import gru
    from npcell.exercises.catalogue import EXERCISES

    quoted = {ex.reference for ex in EXERCISES.values() if ex.reference is not None}
    assert gru.gru_step_backward in quoted
    for module in (lstm, peephole, wmc):
        assert "### BEGIN SOLUTION" not in inspect.getsource(module), module.__name__
    assert "### BEGIN SOLUTION" in inspect.getsource(gru.gru_step_backward)
