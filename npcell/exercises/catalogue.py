"""The exercises and the planted-bug catalogue.

An :class:`Exercise` says what the student writes and how it is graded. The LSTM-family
exercises (``lstm``, ``peephole``, ``wmc``) are written per :class:`~npcell.exercises.variants.
Variant`: the file holds the variant's forward (given) and its backward to write, parameter
gradients included. ``gru`` and ``finite_difference`` are npcell's own reference functions with
their ``### BEGIN SOLUTION`` blocks removed.

A :class:`PlantedBug` is a realistic mistake written as text edits on an exercise's solution file,
always inside a solution block (code the student writes, never code the file gives); ``variable``
is the student variable the grader must name for it, ``where`` the returned tensors it shows in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..cells import gru
from ..errors import ConfigError
from . import finite_difference, variants
from .generator import BEGIN, END, solution_source

NUMPY_IMPORTS = ("import numpy",)


@dataclass(frozen=True)
class Exercise:
    """One exercise: what the student writes and how it is graded."""

    name: str
    title: str
    function: str  # the function the student writes (its name in the student file)
    task: str = ""  # what to do, shown at the top of the student file
    reference: object = None  # gru, finite_difference: the reference function (with markers)
    context: tuple = ()  # functions copied verbatim into the student file before it
    configs: tuple = ()  # gru: the keyword options it is graded with, one dict per config

    @property
    def has_variants(self) -> bool:
        return self.name in variants.CELL_EXERCISES


EXERCISES: dict[str, Exercise] = {}


def _add(ex: Exercise):
    EXERCISES[ex.name] = ex


_CELL_TASK = """Write step_backward, the backward of step_forward above: (1) dL/da of each gate's
pre-activation (da_i, da_f, da_g, da_o; no da_f when f = 1 - i), dL/dc_t (dc) and
dL/dc_{t-1} (dc_prev), and, for gates that read the cell, dL/dz of the read (dz_i, dz_f,
dz_o); (2) the gradient of every parameter (summed over the batch), dx and dL/dh_{t-1}
(dh_prev). Derivatives take the activation's output: dsigmoid(s) = s (1 - s),
dtanh(t) = 1 - t^2. A gate that reads c_t (the output gate) adds its term to dL/dc_t before dc
feeds the other gates; gates that read c_{t-1} add theirs to dc_prev."""

_add(Exercise("lstm", "Backward of one LSTM step (eq. 1-6)", "step_backward", _CELL_TASK))
_add(Exercise("peephole", "Backward of one peephole LSTM step (eq. 16-18)", "step_backward",
              _CELL_TASK))
_add(Exercise("wmc", "Backward of one LSTM step with Working Memory Connections (eq. 7-9)",
              "step_backward", _CELL_TASK))
_add(Exercise(
    name="gru",
    title="Backward of one GRU step, Cho form and PyTorch form",
    function="gru_step_backward",
    reference=gru.gru_step_backward,
    context=(gru.gru_step_forward,),
    configs=({"reset_after": False}, {"reset_after": True}),
    task="""Fill grads (every parameter name: W_zx ... b_n, and b_nh when reset_after), dx (B, X)
and dh_prev (B, H). h_t = (1 - z) n + z h_{t-1}; in Cho's form the reset multiplies h_{t-1}
before W_nh (cache 'rh'), in PyTorch's it multiplies W_nh h_{t-1} + b_nh (cache 'hn').""",
))
_add(Exercise(
    name="finite_difference",
    title="Write the central-difference gradient that every gradient check rests on",
    function="numerical_gradient",
    reference=finite_difference.numerical_gradient,
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
    ``exercise`` (each ``old`` occurs exactly once, inside a solution block); ``variable`` is
    the student variable the grader must name, ``where`` the returned tensors (parameter names,
    ``dx``, ``dh_prev``, ``dc_prev``) or finite-difference tests that must fail."""

    name: str
    exercise: str
    description: str
    variable: str  # the student variable (or test) the grader must name
    where: tuple  # returned tensors that must fail
    edits: tuple = field(default=())

    def source(self) -> str:
        """The solution file of the exercise (its paper variant) with the bug planted."""
        text = solution_source(EXERCISES[self.exercise])
        for old, new in self.edits:
            count = text.count(old)
            if count != 1:
                raise ConfigError(
                    f"planted bug {self.name!r}: expected the text {old!r} exactly once in the "
                    f"{self.exercise} solution, found it {count} times (did the reference change?)"
                )
            at = text.index(old)
            text = text.replace(old, new)
            if text.rfind(BEGIN, 0, at) <= text.rfind(END, 0, at):
                raise ConfigError(f"planted bug {self.name!r} edits code the exercise gives the "
                                 "student; bugs belong inside a solution block")
        return text

    def write(self, directory) -> Path:
        """Write :meth:`source` as ``<directory>/<exercise>.py`` (like a student's file)."""
        path = Path(directory) / f"{self.exercise}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.source())
        return path



W_H = ("W_ih", "W_fh", "W_gh", "W_oh")
GATE = {g: (f"W_{g}x", f"W_{g}h", f"b_{g}") for g in "ifgozrn"}

BUGS: dict[str, PlantedBug] = {}


def _bug(name, exercise, description, variable, where, *edits):
    BUGS[name] = PlantedBug(name, exercise, description, variable, tuple(where), tuple(edits))


_bug("wmc_o_gate_reads_c_prev", "wmc",
     "dW_oc paired with c_{t-1}: the o-gate reads the new c_t (eq. 9)", "dW_oc", ["W_oc"],
     ('grads["W_oc"] = dz_o.T @ k["c"]', 'grads["W_oc"] = dz_o.T @ k["c_prev"]'))
_bug("peephole_o_gate_reads_c_prev", "peephole",
     "dw_oc paired with c_{t-1}: the peephole o-gate reads c_t (eq. 18)", "dW_oc", ["W_oc"],
     ('grads["W_oc"] = (dz_o * k["c"]).sum(axis=0)',
      'grads["W_oc"] = (dz_o * k["c_prev"]).sum(axis=0)'))
_bug("peephole_o_term_into_dc_prev", "peephole",
     "the o-gate's cell term added to dL/dc_{t-1} instead of dL/dc_t", "dc",
     [*GATE["i"], *GATE["f"], *GATE["g"], "dc_prev"],
     (' + dz_o * p["W_oc"]\n', "\n"),
     ('dc_prev = dc * k["f"] + dz_i * p["W_ic"] + dz_f * p["W_fc"]',
      'dc_prev = dc * k["f"] + dz_i * p["W_ic"] + dz_f * p["W_fc"] + dz_o * p["W_oc"]'))
_bug("wmc_missing_dc_through_W_fc", "wmc",
     "dL/dc_{t-1} without its term through W_fc (the CEC is not a pure f-product in WMC)",
     "dc_prev", ["dc_prev"],
     ('dc_prev = dc * k["f"] + dz_i @ p["W_ic"] + dz_f @ p["W_fc"]',
      'dc_prev = dc * k["f"] + dz_i @ p["W_ic"]'))
_bug("wmc_missing_tanh_prime", "wmc",
     "eq. (15) without tanh': dz_i = da_i, forgetting the tanh around W_ic c_{t-1}", "dz_i",
     ["W_ic", "dc_prev"],
     ('dz_i = da_i * dtanh(k["u_i"])', 'dz_i = da_i'))
_bug("lstm_db_not_summed", "lstm",
     "db = da (B, H) instead of summing over the batch", "db_k", ["b_i", "b_f", "b_g", "b_o"],
     ('grads[f"b_{gate}"] = da.sum(axis=0)', 'grads[f"b_{gate}"] = da'))
_bug("lstm_transposed_W_h", "lstm",
     "dW_kh = h_{t-1}^T da: the transpose of npcell's (out, in) layout", "dW_kh", W_H,
     ('grads[f"W_{gate}h"] = da.T @ k["h_prev"]', 'grads[f"W_{gate}h"] = k["h_prev"].T @ da'))
_bug("lstm_sigma_prime_of_preactivation", "lstm",
     "sigma' of the forget gate evaluated as if f were the pre-activation: dsigmoid(sigmoid(f))",
     "da_f", GATE["f"],
     ('da_f = dc * k["c_prev"] * dsigmoid(k["f"])',
      'da_f = dc * k["c_prev"] * dsigmoid(sigmoid(k["f"]))'))
_bug("lstm_W_h_paired_with_h_t", "lstm",
     "off by one in time: dW_kh paired with h_t instead of h_{t-1}", "dW_kh", W_H,
     ('grads[f"W_{gate}h"] = da.T @ k["h_prev"]',
      'grads[f"W_{gate}h"] = da.T @ (k["o"] * k["tanh_c"])'))
_bug("lstm_forget_paired_with_c_t", "lstm",
     "off by one in time: da_f uses c_t instead of c_{t-1}", "da_f", GATE["f"],
     ('da_f = dc * k["c_prev"] * dsigmoid(k["f"])', 'da_f = dc * k["c"] * dsigmoid(k["f"])'))
_bug("lstm_dh_prev_not_accumulated", "lstm",
     "dh_prev = da @ W_kh overwritten per gate instead of summed over the four gates",
     "dh_prev", ["dh_prev"],
     ('dh_prev = dh_prev + da @ p[f"W_{gate}h"]', 'dh_prev = da @ p[f"W_{gate}h"]'))
_bug("lstm_sigmoid_candidate", "lstm",
     "the candidate g differentiated as a sigmoid (it is tanh, eq. 1)", "da_g", GATE["g"],
     ('da_g = dc * k["i"] * dtanh(k["g"])', 'da_g = dc * k["i"] * dsigmoid(k["g"])'))
_bug("lstm_dc_without_dh_term", "lstm",
     "dL/dc_t = carried dc only, missing dh * o * tanh'(c_t) through eq. (6)", "dc",
     [*GATE["i"], *GATE["f"], *GATE["g"], "dc_prev"],
     ('dc = dstate["c"] + dh * k["o"] * dtanh(k["tanh_c"])', 'dc = dstate["c"]'))
_bug("lstm_dc_prev_without_f", "lstm",
     "dL/dc_{t-1} = dc, forgetting the product with f_t", "dc_prev", ["dc_prev"],
     ('dc_prev = dc * k["f"]', 'dc_prev = dc'))
_bug("lstm_input_gate_sign", "lstm",
     "wrong sign on the input gate's gradient", "da_i", GATE["i"],
     ('da_i = dc * k["g"] * dsigmoid(k["i"])', 'da_i = -dc * k["g"] * dsigmoid(k["i"])'))
_bug("lstm_output_gate_uses_c", "lstm",
     "da_o through o * c instead of o * tanh(c)", "da_o", GATE["o"],
     ('da_o = dh * k["tanh_c"] * dsigmoid(k["o"])', 'da_o = dh * k["c"] * dsigmoid(k["o"])'))
_bug("gru_update_gate_sign", "gru",
     "dL/da_z with slope n_t - h_{t-1}: z keeps the old state, the slope is h_{t-1} - n_t",
     "da_z", GATE["z"],
     ('da_z = dh * (h_prev - n) * dsigmoid(z)', 'da_z = dh * (n - h_prev) * dsigmoid(z)'))
_bug("gru_W_nh_paired_with_h_prev", "gru",
     "Cho form: dW_nh paired with h_{t-1}, but W_nh reads r * h_{t-1}", "dW_nh", ["W_nh"],
     ('grads["W_nh"] = da_n.T @ k["rh"]', 'grads["W_nh"] = da_n.T @ h_prev'))
_bug("fd_one_sided", "finite_difference",
     "a one-sided difference (f(x+eps) - f(x)) / eps",
     "central-difference identity on sum(x^3) with eps=1e-3",
     ["central-difference identity on sum(x^3) with eps=1e-3"],
     ("grad[index] = (f_plus - f_minus) / (2 * eps)",
      "grad[index] = (f_plus - f(x)) / eps"))
_bug("fd_x_not_restored", "finite_difference",
     "each entry left at x - eps instead of being restored", "x unchanged after the call",
     ["x unchanged after the call"],
     ("x[index] = original  # restore before the next entry", "pass"))
