"""The exercises and the planted-bug catalogue.

An :class:`Exercise` names a reference function that carries ``### BEGIN SOLUTION`` /
``### END SOLUTION`` markers (the real code npcell runs, not a copy), the functions a student file
needs beside it (the forward, small helpers) and the cell configurations it is graded on.

A :class:`PlantedBug` is a realistic mistake written as text edits on an exercise's solution file:
the autograder can run it like a student's file, and ``where`` names the report rows in which the
error must show (a test holds the autograder to that).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..cells import gru, lstm, peephole, wmc
from . import finite_difference

LSTM_IMPORTS = (
    "from npcell.backend import array_module",
    "from npcell.cells.ops import dsigmoid, dtanh, sigmoid, tanh",
)


@dataclass(frozen=True)
class Exercise:
    """One exercise: what the student writes and how it is graded."""

    name: str
    title: str
    function: str  # the function the student writes (its name in the student file)
    reference: object  # the reference function (with solution markers)
    context: tuple = ()  # functions copied verbatim into the student file before it
    imports: tuple = LSTM_IMPORTS
    configs: tuple = ()  # (cell kind, options) pairs it is graded on; () for finite_difference
    task: str = ""  # what to do, shown at the top of the student file

    def call_options(self, cell) -> dict:
        """Keyword arguments the exercise function takes for this cell (e.g. squash, diagonal)."""
        if self.name == "gru":
            return {"reset_after": cell.options["reset_after"]}
        return {}


CONNECTED_IMPORTS = LSTM_IMPORTS + (
    "from npcell.cells.ops import cell_read, cell_read_back, cell_read_weight_grad",
)

EXERCISES: dict[str, Exercise] = {}


def _add(ex: Exercise):
    EXERCISES[ex.name] = ex


_add(Exercise(
    name="lstm",
    title="Backward of one LSTM step (eq. 1-6)",
    function="lstm_step_backward",
    reference=lstm.lstm_step_backward,
    context=(lstm.lstm_step_forward, lstm.gate_input_grads),
    configs=(("lstm", {}),),
    task="""Compute dL/da for the four gate pre-activations (da_i, da_f, da_g, da_o) and
dL/dc_{t-1} (dc_prev) from dstate = {'h': dL/dh_t, 'c': dL/dc_t carried from t+1} and the
cache of lstm_step_forward. The weight, input and h_{t-1} gradients are then formed for you by
gate_input_grads. Derivatives take the activation's output: dsigmoid(s) = s (1 - s),
dtanh(t) = 1 - t^2.""",
))
_add(Exercise(
    name="peephole",
    title="Backward of one peephole LSTM step (eq. 16-18), diagonal and full",
    function="peephole_step_backward",
    reference=peephole.peephole_step_backward,
    context=(peephole.peephole_step_forward, lstm.gate_input_grads),
    imports=CONNECTED_IMPORTS,
    configs=(("peephole", {"diagonal": True}), ("peephole", {"diagonal": False})),
    task="""Write the backward of peephole_step_forward (z = W_kc c, no tanh); i and f read c_{t-1}
but the o-gate reads the NEW c_t, so its term joins dL/dc_t before dc_t feeds da_i, da_f, da_g,
and dL/dc_{t-1} gains terms through W_ic and W_fc. For z = W c, cell_read_weight_grad(dz, c, W)
is dL/dW and cell_read_back(dz, W) is dL/dc (diagonal or full W).""",
))
_add(Exercise(
    name="wmc",
    title="Backward of one LSTM step with Working Memory Connections (eq. 7-9, 10-15)",
    function="wmc_step_backward",
    reference=wmc.wmc_step_backward,
    context=(wmc.wmc_step_forward, lstm.gate_input_grads),
    imports=CONNECTED_IMPORTS,
    configs=(("wmc", {}), ("wmc", {"cell_bias": True})),
    task="""Write the backward of wmc_step_forward (u = tanh(W_kc c [+ b_kc])).
The tanh' of the cell read (eq. 15) multiplies every dz; the o-gate reads c_t, so its term joins
dL/dc_t first; dL/dc_{t-1} = dc * f + (terms through W_ic and W_fc). With cell_bias=True also
return b_ic, b_fc, b_oc (the code after the solution block does it from dz_i, dz_f, dz_o).""",
))
_add(Exercise(
    name="gru",
    title="Backward of one GRU step, Cho form and PyTorch form",
    function="gru_step_backward",
    reference=gru.gru_step_backward,
    context=(gru.gru_step_forward,),
    configs=(("gru", {"reset_after": False}), ("gru", {"reset_after": True})),
    task="""Fill grads (every parameter name: W_zx ... b_n, and b_nh when reset_after), dx (B, X)
and dh_prev (B, H). h_t = (1 - z) n + z h_{t-1}; in Cho's form the reset multiplies h_{t-1}
before W_nh (cache 'rh'), in PyTorch's it multiplies W_nh h_{t-1} + b_nh (cache 'hn').""",
))
_add(Exercise(
    name="finite_difference",
    title="Write the central-difference gradient that every gradient check rests on",
    function="numerical_gradient",
    reference=finite_difference.numerical_gradient,
    context=(),
    imports=("import numpy",),
    task="""Write numerical_gradient(f, x, eps): perturb one entry of x at a time by +eps and -eps,
take (f(x + eps) - f(x - eps)) / (2 eps), restore the entry. It is graded on functions whose
gradient is known in closed form, on an exact identity for x^3 and on an LSTM loss.""",
))


# ============================================================================================
# Planted bugs
# ============================================================================================
@dataclass(frozen=True)
class PlantedBug:
    """A realistic mistake: ``edits`` are (old, new) text replacements on the solution file of
    ``exercise`` (each ``old`` occurs exactly once); ``where`` lists the report rows (parameter
    names, ``gate <block>``, ``dstate0[...]``, or finite-difference test names) that must show
    it."""

    name: str
    exercise: str
    description: str
    where: tuple
    edits: tuple = field(default=())

    def source(self) -> str:
        """The solution file of the exercise with the bug planted."""
        from .generator import solution_source

        text = solution_source(EXERCISES[self.exercise])
        for old, new in self.edits:
            count = text.count(old)
            if count != 1:
                raise ValueError(
                    f"planted bug {self.name!r}: expected the text {old!r} exactly once in the "
                    f"{self.exercise} solution, found it {count} times (did the reference change?)"
                )
            text = text.replace(old, new)
        return text

    def function(self):
        """The buggy variant of the exercise function, compiled from :meth:`source`."""
        from .generator import load_source

        module = load_source(self.source(), f"npcell_bug_{self.name}")
        return getattr(module, EXERCISES[self.exercise].function)


W_H = ("W_ih", "W_fh", "W_gh", "W_oh")

BUGS: dict[str, PlantedBug] = {}


def _bug(name, exercise, description, where, *edits):
    BUGS[name] = PlantedBug(name, exercise, description, tuple(where), tuple(edits))


_bug("wmc_o_gate_reads_c_prev", "wmc",
     "dW_oc paired with c_{t-1}: the o-gate reads the new c_t (eq. 9)",
     ["W_oc"],
     ('dW_oc = cell_read_weight_grad(dz_o, k["c"], p["W_oc"])',
      'dW_oc = cell_read_weight_grad(dz_o, k["c_prev"], p["W_oc"])'))
_bug("peephole_o_gate_reads_c_prev", "peephole",
     "dW_oc paired with c_{t-1}: the peephole o-gate reads c_t (eq. 18)",
     ["W_oc"],
     ('dW_oc = cell_read_weight_grad(da_o, k["c"], p["W_oc"])',
      'dW_oc = cell_read_weight_grad(da_o, k["c_prev"], p["W_oc"])'))
_bug("peephole_o_term_into_dc_prev", "peephole",
     "the o-gate's cell term added to dL/dc_{t-1} instead of dL/dc_t",
     ["gate i", "gate f", "gate g", "W_ix", "W_ih", "b_i", "W_fx", "W_fh", "b_f", "W_gx", "W_gh",
      "b_g"],
     ('dc = dstate["c"] + dh * k["o"] * dtanh(k["tanh_c"]) + cell_read_back(da_o, p["W_oc"])',
      'dc = dstate["c"] + dh * k["o"] * dtanh(k["tanh_c"])'),
     ('cell_read_back(da_f, p["W_fc"])',
      'cell_read_back(da_f, p["W_fc"]) + cell_read_back(da_o, p["W_oc"])'))
_bug("wmc_missing_dc_through_W_fc", "wmc",
     "dL/dc_{t-1} without its term through W_fc (the CEC is not a pure f-product in WMC)",
     ["dstate0[c]"],
     (' + cell_read_back(dz_f, p["W_fc"])', ''))
_bug("wmc_missing_tanh_prime", "wmc",
     "eq. (15) without tanh': dz_i = da_i, forgetting the tanh around W_ic c_{t-1}",
     ["W_ic", "b_ic", "gate c-connections"],
     ('dz_i = da_i * dtanh(k["u_i"])', 'dz_i = da_i'))
_bug("lstm_db_not_summed", "lstm",
     "db = da (B, H) instead of summing over the batch",
     ["b_i", "b_f", "b_g", "b_o"],
     ('grads[f"b_{gate}"] = da.sum(axis=0)', 'grads[f"b_{gate}"] = da'))
_bug("lstm_transposed_W_h", "lstm",
     "dW_kh = h_{t-1}^T da: the transpose of npcell's (out, in) layout",
     W_H,
     ('grads[f"W_{gate}h"] = da.T @ h_prev', 'grads[f"W_{gate}h"] = h_prev.T @ da'))
_bug("lstm_sigma_prime_of_preactivation", "lstm",
     "sigma' of the forget gate evaluated as if f were the pre-activation: dsigmoid(sigmoid(f))",
     ["gate f", "W_fx", "W_fh", "b_f"],
     ('da_f = dc * k["c_prev"] * dsigmoid(k["f"])',
      'da_f = dc * k["c_prev"] * dsigmoid(sigmoid(k["f"]))'))
_bug("lstm_W_h_paired_with_h_t", "lstm",
     "off by one in time: dW_kh paired with h_t instead of h_{t-1}",
     W_H,
     ('gate_input_grads(p, pre, k["x"], k["h_prev"])',
      'gate_input_grads(p, pre, k["x"], k["o"] * k["tanh_c"])'))
_bug("lstm_forget_paired_with_c_t", "lstm",
     "off by one in time: da_f uses c_t instead of c_{t-1}",
     ["gate f", "W_fx", "W_fh", "b_f"],
     ('da_f = dc * k["c_prev"] * dsigmoid(k["f"])', 'da_f = dc * k["c"] * dsigmoid(k["f"])'))
_bug("lstm_dh_prev_not_accumulated", "lstm",
     "dh_prev = da @ W_kh overwritten per gate instead of summed over the four gates",
     ["dstate0[h]"],
     ('dh_prev = dh_prev + da @ p[f"W_{gate}h"]', 'dh_prev = da @ p[f"W_{gate}h"]'))
_bug("lstm_sigmoid_candidate", "lstm",
     "the candidate g differentiated as a sigmoid (it is tanh, eq. 1)",
     ["gate g", "W_gx", "W_gh", "b_g"],
     ('da_g = dc * k["i"] * dtanh(k["g"])', 'da_g = dc * k["i"] * dsigmoid(k["g"])'))
_bug("lstm_dc_without_dh_term", "lstm",
     "dL/dc_t = carried dc only, missing dh * o * tanh'(c_t) through eq. (6)",
     ["gate i", "gate f", "gate g", "W_ix", "W_fx", "W_gx", "W_ih", "W_fh", "W_gh",
      "b_i", "b_f", "b_g"],
     ('dc = dstate["c"] + dh * k["o"] * dtanh(k["tanh_c"])', 'dc = dstate["c"]'))
_bug("lstm_dc_prev_without_f", "lstm",
     "dL/dc_{t-1} = dc, forgetting the product with f_t",
     ["dstate0[c]"],
     ('dc_prev = dc * k["f"]', 'dc_prev = dc'))
_bug("lstm_input_gate_sign", "lstm",
     "wrong sign on the input gate's gradient",
     ["gate i", "W_ix", "W_ih", "b_i"],
     ('da_i = dc * k["g"] * dsigmoid(k["i"])', 'da_i = -dc * k["g"] * dsigmoid(k["i"])'))
_bug("gru_update_gate_sign", "gru",
     "dL/da_z with slope n_t - h_{t-1}: z keeps the old state, the slope is h_{t-1} - n_t",
     ["gate z", "W_zx", "W_zh", "b_z"],
     ('da_z = dh * (h_prev - n) * dsigmoid(z)', 'da_z = dh * (n - h_prev) * dsigmoid(z)'))
_bug("gru_W_nh_paired_with_h_prev", "gru",
     "Cho form: dW_nh paired with h_{t-1}, but W_nh reads r * h_{t-1}",
     ["W_nh"],
     ('grads["W_nh"] = da_n.T @ k["rh"]', 'grads["W_nh"] = da_n.T @ h_prev'))
_bug("fd_one_sided", "finite_difference",
     "a one-sided difference (f(x+eps) - f(x)) / eps",
     ["central-difference identity on sum(x^3) with eps=1e-3"],
     ("grad[index] = (f_plus - f_minus) / (2 * eps)",
      "grad[index] = (f_plus - f(x)) / eps"))
_bug("fd_x_not_restored", "finite_difference",
     "each entry left at x - eps instead of being restored",
     ["x unchanged after the call"],
     ("x[index] = original  # restore before the next entry", "pass"))
