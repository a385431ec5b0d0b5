"""The peephole LSTM, eq. (16)-(21): the reference step pair.

Equation numbers are those of Landi et al. 2021, "Working Memory Connections for LSTM". The
gates of the LSTM (npcell/cells/lstm.py) also read the cell state through W_kc, unsquashed:

    i_t = sigma(W_ix x_t + W_ih h_{t-1} + W_ic c_{t-1} + b_i)       (16)
    f_t = sigma(W_fx x_t + W_fh h_{t-1} + W_fc c_{t-1} + b_f)       (17)
    o_t = sigma(W_ox x_t + W_oh h_{t-1} + W_oc c_t + b_o)           (18)

with g_t, c_t, h_t as in eq. (1), (4), (6). The input and forget gates read c_{t-1}; the output gate
reads the *new* c_t, so in BPTT its term joins dL/dc_t before dc_t feeds da_i, da_f and da_g
(docs/derivations/connected.md, "Output gate first"). Its local gradients are eq. (19)-(21):
dL/dW_ic is the outer product of dL/d(i-bar) and c_{t-1}, with nothing to bound it when c grows.

Shapes: x_t (B, X); h, c (B, H); W_kx (H, X); W_kh (H, H); b_k (H,); W_kc (H,) with
``diagonal=True`` (the default: w_kc * c elementwise) or (H, H) with ``diagonal=False``;
``cell_bias=True`` adds b_kc (H,) to each read. npcell/cells/wmc.py is the same cell with the
reads inside a tanh.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import register
from .lstm import LSTMCell, gate_input_grads
from .ops import cell_read, cell_read_back, cell_read_weight_grad, dsigmoid, dtanh, sigmoid, tanh


def peephole_step_forward(params, x_t, state):
    """One peephole step. x_t (B, X); state {'h': (B, H), 'c': (B, H)} -> (new state, cache)."""
    p = params
    h_prev, c_prev = state["h"], state["c"]
    u_i = cell_read(p["W_ic"], c_prev, p.get("b_ic"))  # the term gate i adds: W_ic c_{t-1}
    u_f = cell_read(p["W_fc"], c_prev, p.get("b_fc"))  # the term gate f adds: W_fc c_{t-1}
    g = tanh(x_t @ p["W_gx"].T + h_prev @ p["W_gh"].T + p["b_g"])  # eq. (1)
    a_i = x_t @ p["W_ix"].T + h_prev @ p["W_ih"].T + u_i + p["b_i"]  # eq. (20): i-bar_t
    i = sigmoid(a_i)  # eq. (16): the input gate reads W_ic c_{t-1} through a_i
    f = sigmoid(x_t @ p["W_fx"].T + h_prev @ p["W_fh"].T + u_f + p["b_f"])  # eq. (17)
    c = f * c_prev + i * g  # eq. (4)
    u_o = cell_read(p["W_oc"], c, p.get("b_oc"))  # W_oc c_t: the output gate reads the new c_t
    o = sigmoid(x_t @ p["W_ox"].T + h_prev @ p["W_oh"].T + u_o + p["b_o"])  # eq. (18)
    tanh_c = tanh(c)
    h = o * tanh_c  # eq. (6)
    cache = dict(x=x_t, h_prev=h_prev, c_prev=c_prev, i=i, f=f, g=g, o=o, c=c, tanh_c=tanh_c,
                 u_i=u_i, u_f=u_f, u_o=u_o)
    return {"h": h, "c": c}, cache


def peephole_step_backward(params, dstate, cache):
    """Backward of one peephole step.

    dstate: {'h': dL/dh_t (loss term + carried from t+1), 'c': dL/dc_t carried from t+1}.
    Returns (grads_t, dx_t, dstate_prev) with grads_t keyed like params.
    """
    p, k = params, cache
    dh = dstate["h"]
    da_o = dh * k["tanh_c"] * dsigmoid(k["o"])  # dL/da_o: through eq. (6), sigma' of eq. (18)
    dW_oc = cell_read_weight_grad(da_o, k["c"], p["W_oc"])  # eq. (21) for o: paired with c_t
    # dL/dc_t: carried + through eq. (6) + through the o-gate's read of c_t (before di/df/dg)
    dc = dstate["c"] + dh * k["o"] * dtanh(k["tanh_c"]) + cell_read_back(da_o, p["W_oc"])
    da_i = dc * k["g"] * dsigmoid(k["i"])  # dL/da_i: eq. (4), then sigma' of eq. (16), (19)
    da_f = dc * k["c_prev"] * dsigmoid(k["f"])  # dL/da_f: eq. (4), then sigma' of eq. (17)
    da_g = dc * k["i"] * dtanh(k["g"])  # dL/da_g: eq. (4), then tanh' of eq. (1)
    dW_ic = cell_read_weight_grad(da_i, k["c_prev"], p["W_ic"])  # eq. (21): da_i (x) c_{t-1}
    dW_fc = cell_read_weight_grad(da_f, k["c_prev"], p["W_fc"])  # eq. (21) for f
    # dL/dc_{t-1}: through f_t (eq. 4) and through the reads of W_ic and W_fc (eq. 16, 17)
    dc_prev = dc * k["f"] + cell_read_back(da_i, p["W_ic"]) + cell_read_back(da_f, p["W_fc"])

    pre = {"i": da_i, "f": da_f, "g": da_g, "o": da_o}
    grads, dx, dh_prev = gate_input_grads(p, pre, k["x"], k["h_prev"])
    grads.update(W_ic=dW_ic, W_fc=dW_fc, W_oc=dW_oc)
    if "b_ic" in p:  # cell_bias=True: z = W_kc c + b_kc, so dL/db_kc = dL/dz summed over b
        grads.update(b_ic=da_i.sum(axis=0), b_fc=da_f.sum(axis=0), b_oc=da_o.sum(axis=0))
    return {name: grads[name] for name in p}, dx, {"h": dh_prev, "c": dc_prev}


@dataclass(frozen=True)
class CellRead:
    """What the gates of a cell-to-gate LSTM read from c: ``squash`` (True for WMC: the read is
    inside a tanh), ``diagonal`` (W_kc is a vector w_kc (H,)) and ``bias`` (b_kc in the read)."""

    squash: bool
    diagonal: bool
    bias: bool


class CellToGateLSTM(LSTMCell):
    """The parameters and options shared by peephole and wmc: W_ic, W_fc, W_oc (and b_*c)."""

    squash = False  # WMC: True

    @property
    def cell_read(self) -> CellRead:
        return CellRead(squash=self.squash, diagonal=self.options["diagonal"],
                        bias=self.options["cell_bias"])

    def param_shapes(self):
        H = self.hidden_size
        shapes = super().param_shapes()
        cshape = (H,) if self.options["diagonal"] else (H, H)
        shapes |= {f"W_{k}c": cshape for k in ("i", "f", "o")}
        if self.options["cell_bias"]:
            shapes |= {f"b_{k}c": (H,) for k in ("i", "f", "o")}
        return shapes

    def gate_blocks(self):
        blocks = super().gate_blocks()
        names = ["W_ic", "W_fc", "W_oc"]
        if self.options["cell_bias"]:
            names += ["b_ic", "b_fc", "b_oc"]
        blocks["c-connections"] = names
        return blocks


@register
class PeepholeCell(CellToGateLSTM):
    """Peephole LSTM, eq. (16)-(18). ``diagonal=True`` (default): w_kc (H,); False: W_kc (H, H)."""

    kind = "peephole"
    equations = """
i_t = sigma(W_ix x_t + W_ih h_{t-1} + W_ic c_{t-1} + b_i)       (16)
f_t = sigma(W_fx x_t + W_fh h_{t-1} + W_fc c_{t-1} + b_f)       (17)
g_t, c_t as in (1), (4)
o_t = sigma(W_ox x_t + W_oh h_{t-1} + W_oc c_t + b_o)           (18)
h_t = o_t * tanh(c_t)                                            (6)
(diagonal=True: W_kc c is the elementwise product w_kc * c)
"""
    default_options = {"forget_bias": 0.0, "diagonal": True, "cell_bias": False}


    def step_forward(self, params, x_t, state):
        return peephole_step_forward(params, x_t, state)

    def step_backward(self, params, dstate, cache_t):
        return peephole_step_backward(params, dstate, cache_t)
