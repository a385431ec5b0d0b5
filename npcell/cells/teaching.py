"""The LSTM in the teaching notation: remember, save, focus, long- and working memory.

An introductory LSTM text (its naming matches Edwin Chen's blog post "Exploring LSTMs", 2017)
tells the LSTM story with words instead of letters. Its equations, with the candidate fixed::

    rem_t   = sigma(W_r x_t + U_r wm_{t-1} + b_r)          (1)  what to keep of the old ltm
    ltm'_t  = tanh (W_l x_t + U_l wm_{t-1} + b_l)          (2)  candidate memory
    save_t  = sigma(W_s x_t + U_s wm_{t-1} + b_s)          (3)  how much of the candidate to store
    ltm_t   = rem_t * ltm_{t-1} + save_t * ltm'_t          (4)  long-term memory
    focus_t = sigma(W_f x_t + U_f wm_{t-1} + b_f)          (5)  what part of ltm to show
    wm_t    = focus_t * tanh(ltm_t)                        (6)  working memory (the output)

The text's eq. (2) prints sigma for the candidate, but its own text says "a single-layer neural
network with a tanh activation function", and every LSTM (Gers 2000, PyTorch, TF, cuDNN) uses
tanh: it is a typo. With a sigmoid candidate save * ltm' >= 0, so the cell can only *add* to its
memory and never write negative evidence. ``candidate_act="sigmoid"`` keeps that version as a
"see what breaks" switch for exercises; the default is ``"tanh"``.

The text writes W_r in R^{p x d} but multiplies W_r . x_t with x_t in R^p; npcell stores every W
as (out, in) = (d, p) = (H, X) so the products read exactly as written.

Name mapping to the ``lstm`` cell (same maths, see :func:`teaching_to_lstm_params`):

=====================  =====================  ====================
teaching               lstm                   shape
=====================  =====================  ====================
rem   (W_r U_r b_r)    f (W_fx W_fh b_f)      (H, X), (H, H), (H,)
save  (W_s U_s b_s)    i (W_ix W_ih b_i)      (H, X), (H, H), (H,)
ltm'  (W_l U_l b_l)    g (W_gx W_gh b_g)      (H, X), (H, H), (H,)
focus (W_f U_f b_f)    o (W_ox W_oh b_o)      (H, X), (H, H), (H,)
ltm                    c (state key ``"c"``)  (B, H)
wm                     h (state key ``"h"``)  (B, H)
=====================  =====================  ====================

Careful: the teaching ``W_f`` / ``b_f`` belong to *focus* (the output gate), while the lstm's
``W_fx`` / ``b_f`` belong to the *forget* gate (teaching ``rem``). State keys stay ``"h"`` and
``"c"`` (the DESIGN contract for every cell), i.e. ``state["h"]`` is wm and ``state["c"]`` is ltm.
"""

from __future__ import annotations

from ..errors import ConfigError
from .base import Cell, register
from .ops import ACTIVATIONS, dsigmoid, dtanh, sigmoid, tanh

# teaching gate -> (its prefix letter, the lstm gate it is)
TEACHING_GATES = {
    "rem": ("r", "f"), "ltm_cand": ("l", "g"), "save": ("s", "i"), "focus": ("f", "o"),
}

TEACHING_TO_LSTM = {
    "W_r": "W_fx", "U_r": "W_fh", "b_r": "b_f",  # remember = forget gate f
    "W_l": "W_gx", "U_l": "W_gh", "b_l": "b_g",  # ltm' = candidate g
    "W_s": "W_ix", "U_s": "W_ih", "b_s": "b_i",  # save = input gate i
    "W_f": "W_ox", "U_f": "W_oh", "b_f": "b_o",  # focus = output gate o (not forget!)
}
LSTM_TO_TEACHING = {lstm: teaching for teaching, lstm in TEACHING_TO_LSTM.items()}


def teaching_to_lstm_params(params: dict) -> dict:
    """Rename a teaching cell's parameters (or gradients) to the ``lstm`` cell's names.

    ``{'W_r': ..., 'U_r': ..., 'b_r': ..., 'W_f': ...}`` -> ``{'W_fx': ..., 'W_fh': ..., 'b_f':
    ..., 'W_ox': ...}``. The arrays are not copied. Unknown names raise ConfigError.
    """
    return _rename(params, TEACHING_TO_LSTM, "teaching", "lstm")


def lstm_to_teaching_params(params: dict) -> dict:
    """Inverse of :func:`teaching_to_lstm_params`: ``lstm`` names -> teaching names."""
    return _rename(params, LSTM_TO_TEACHING, "lstm", "teaching")


def _rename(params, mapping, source, target):
    unknown = sorted(set(params) - set(mapping))
    if unknown:
        raise ConfigError(
            f"cannot map {unknown} from {source} to {target} names; "
            f"expected names among {sorted(mapping)}"
        )
    return {mapping[name]: value for name, value in params.items()}


def teaching_step_forward(params, x_t, state, *, candidate_act="tanh"):
    """One step in the text's words. x_t (B, X); state {'h': wm (B, H), 'c': ltm (B, H)}."""
    p = params
    wm_prev, ltm_prev = state["h"], state["c"]
    act = ACTIVATIONS[candidate_act][0]
    rem = sigmoid(x_t @ p["W_r"].T + wm_prev @ p["U_r"].T + p["b_r"])  # eq. (1)
    ltm_cand = act(x_t @ p["W_l"].T + wm_prev @ p["U_l"].T + p["b_l"])  # eq. (2), tanh (typo fixed)
    save = sigmoid(x_t @ p["W_s"].T + wm_prev @ p["U_s"].T + p["b_s"])  # eq. (3)
    ltm = rem * ltm_prev + save * ltm_cand  # eq. (4)
    focus = sigmoid(x_t @ p["W_f"].T + wm_prev @ p["U_f"].T + p["b_f"])  # eq. (5)
    tanh_ltm = tanh(ltm)
    wm = focus * tanh_ltm  # eq. (6)
    cache = dict(x=x_t, wm_prev=wm_prev, ltm_prev=ltm_prev, rem=rem, ltm_cand=ltm_cand,
                 save=save, focus=focus, ltm=ltm, tanh_ltm=tanh_ltm)
    return {"h": wm, "c": ltm}, cache


def teaching_step_backward(params, dstate, cache, *, candidate_act="tanh"):
    """Backward of one step. dstate {'h': dL/dwm_t, 'c': dL/dltm_t} -> (grads, dx, dstate_prev)."""
    p, k = params, cache
    dact = ACTIVATIONS[candidate_act][1]
    dwm = dstate["h"]
    da_focus = dwm * k["tanh_ltm"] * dsigmoid(k["focus"])  # dL/da_focus: eq. (6), sigma' of (5)
    dltm = dstate["c"] + dwm * k["focus"] * dtanh(k["tanh_ltm"])  # dL/dltm_t: carried + eq. (6)
    da_save = dltm * k["ltm_cand"] * dsigmoid(k["save"])  # dL/da_save: eq. (4), sigma' of (3)
    da_rem = dltm * k["ltm_prev"] * dsigmoid(k["rem"])  # dL/da_rem: eq. (4), sigma' of (1)
    da_cand = dltm * k["save"] * dact(k["ltm_cand"])  # dL/da_ltm': eq. (4), act' of (2)
    dltm_prev = dltm * k["rem"]  # dL/dltm_{t-1}: the carousel through rem_t in eq. (4)

    grads, dx, dwm_prev = {}, 0.0, 0.0
    for letter, da in (("r", da_rem), ("l", da_cand), ("s", da_save), ("f", da_focus)):
        grads[f"W_{letter}"] = da.T @ k["x"]  # dL/dW: summed over the batch
        grads[f"U_{letter}"] = da.T @ k["wm_prev"]  # dL/dU: pairs with wm_{t-1}
        grads[f"b_{letter}"] = da.sum(axis=0)
        dx = dx + da @ p[f"W_{letter}"]  # dL/dx_t
        dwm_prev = dwm_prev + da @ p[f"U_{letter}"]  # dL/dwm_{t-1}
    grads = {name: grads[name] for name in params}
    return grads, dx, {"h": dwm_prev, "c": dltm_prev}


@register
class TeachingLSTMCell(Cell):
    """The LSTM with the teaching names (remember/save/focus, ltm/wm). See the module docstring.

    Option ``candidate_act``: ``"tanh"`` (default, the real LSTM) or ``"sigmoid"`` (the text's
    eq. (2) typo, kept as a "see what breaks" switch: the memory can then only grow).
    """

    kind = "teaching"
    equations = """
rem_t   = sigma(W_r x_t + U_r wm_{t-1} + b_r)          (1)   = forget gate f_t
ltm'_t  = tanh (W_l x_t + U_l wm_{t-1} + b_l)          (2)   = candidate g_t (text's sigma: typo)
save_t  = sigma(W_s x_t + U_s wm_{t-1} + b_s)          (3)   = input gate i_t
ltm_t   = rem_t * ltm_{t-1} + save_t * ltm'_t          (4)   = cell c_t      (state key "c")
focus_t = sigma(W_f x_t + U_f wm_{t-1} + b_f)          (5)   = output gate o_t
wm_t    = focus_t * tanh(ltm_t)                        (6)   = hidden h_t    (state key "h")
"""
    default_options = {"candidate_act": "tanh"}

    def check_options(self):
        value = self.options["candidate_act"]
        if value not in ("tanh", "sigmoid"):
            raise ConfigError(
                f"option candidate_act of 'teaching' must be 'tanh' (the LSTM) or 'sigmoid' "
                f"(the text's eq. 2 typo, for experiments); got {value!r}"
            )

    def param_shapes(self):
        H, X = self.hidden_size, self.input_size
        shapes = {}
        for letter, _ in TEACHING_GATES.values():  # in the text's equation order
            shapes |= {f"W_{letter}": (H, X), f"U_{letter}": (H, H), f"b_{letter}": (H,)}
        return shapes

    def gate_activations(self):
        return {"rem": "sigmoid", "save": "sigmoid", "focus": "sigmoid",
                "ltm_cand": self.options["candidate_act"]}  # the "see what breaks" switch

    def gate_blocks(self):
        return {gate: [f"W_{t}", f"U_{t}", f"b_{t}"] for gate, (t, _) in TEACHING_GATES.items()}


    def step_forward(self, params, x_t, state):
        return teaching_step_forward(params, x_t, state,
                                     candidate_act=self.options["candidate_act"])

    def step_backward(self, params, dstate, cache_t):
        return teaching_step_backward(params, dstate, cache_t,
                                      candidate_act=self.options["candidate_act"])
