"""The LSTM with Working Memory Connections (WMC), eq. (7)-(15): the reference step pair.

Equation numbers are those of Landi et al. 2021, "Working Memory Connections for LSTM". The
gates of the LSTM (npcell/cells/lstm.py) read the cell state through W_kc, inside a tanh:

    i_t = sigma(W_ix x_t + W_ih h_{t-1} + tanh(W_ic c_{t-1} [+ b_ic]) + b_i)   (7)
    f_t = sigma(W_fx x_t + W_fh h_{t-1} + tanh(W_fc c_{t-1} [+ b_fc]) + b_f)   (8)
    o_t = sigma(W_ox x_t + W_oh h_{t-1} + tanh(W_oc c_t [+ b_oc]) + b_o)       (9)

with g_t, c_t, h_t as in eq. (1), (4), (6). The input and forget gates read c_{t-1}; the output gate
reads the *new* c_t, so in BPTT its term joins dL/dc_t before dc_t feeds da_i, da_f and da_g
(docs/derivations/connected.md, "Output gate first"). Its local gradients are eq. (10)-(15):
dL/dW_ic is delta-hat i_t (x) c_{t-1} (eq. 14), where delta-hat (eq. 15) carries the factor 1 -
tanh^2(W_ic c_{t-1}) that the peephole (npcell/cells/peephole.py, eq. 21) lacks: the tanh
"protects" the gates when c grows.

Shapes: x_t (B, X); h, c (B, H); W_kx (H, X); W_kh (H, H); b_k (H,); W_kc (H, H) (the default,
``diagonal=False``) or (H,) with ``diagonal=True``; ``cell_bias=True`` adds b_kc (H,) inside
each tanh (zero at init, as torchrecurrent).
"""

from __future__ import annotations

from .base import register
from .lstm import gate_input_grads
from .ops import cell_read, cell_read_back, cell_read_weight_grad, dsigmoid, dtanh, sigmoid, tanh
from .peephole import CellToGateLSTM


def wmc_step_forward(params, x_t, state):
    """One WMC step. x_t (B, X); state {'h': (B, H), 'c': (B, H)} -> (new state, cache)."""
    p = params
    h_prev, c_prev = state["h"], state["c"]
    u_i = tanh(cell_read(p["W_ic"], c_prev, p.get("b_ic")))  # tanh(W_ic c_{t-1} [+ b_ic])
    u_f = tanh(cell_read(p["W_fc"], c_prev, p.get("b_fc")))  # tanh(W_fc c_{t-1} [+ b_fc])
    g = tanh(x_t @ p["W_gx"].T + h_prev @ p["W_gh"].T + p["b_g"])  # eq. (1)
    a_i = x_t @ p["W_ix"].T + h_prev @ p["W_ih"].T + u_i + p["b_i"]  # eq. (10): i-bar_t
    i = sigmoid(a_i)  # eq. (7): the input gate reads tanh(W_ic c_{t-1}) through a_i
    f = sigmoid(x_t @ p["W_fx"].T + h_prev @ p["W_fh"].T + u_f + p["b_f"])  # eq. (8)
    c = f * c_prev + i * g  # eq. (4)
    u_o = tanh(cell_read(p["W_oc"], c, p.get("b_oc")))  # the output gate reads the new c_t
    o = sigmoid(x_t @ p["W_ox"].T + h_prev @ p["W_oh"].T + u_o + p["b_o"])  # eq. (9)
    tanh_c = tanh(c)
    h = o * tanh_c  # eq. (6)
    cache = dict(x=x_t, h_prev=h_prev, c_prev=c_prev, i=i, f=f, g=g, o=o, c=c, tanh_c=tanh_c,
                 u_i=u_i, u_f=u_f, u_o=u_o)
    return {"h": h, "c": c}, cache


def wmc_step_backward(params, dstate, cache):
    """Backward of one WMC step.

    dstate: {'h': dL/dh_t (loss term + carried from t+1), 'c': dL/dc_t carried from t+1}.
    Returns (grads_t, dx_t, dstate_prev) with grads_t keyed like params.
    """
    p, k = params, cache
    dh = dstate["h"]
    da_o = dh * k["tanh_c"] * dsigmoid(k["o"])  # dL/da_o: through eq. (6), sigma' of eq. (9)
    dz_o = da_o * dtanh(k["u_o"])  # dL/dz_o = dL/da_o times the tanh' of eq. (15) for gate o
    dW_oc = cell_read_weight_grad(dz_o, k["c"], p["W_oc"])  # eq. (14) for o: paired with c_t
    # dL/dc_t: carried + through eq. (6) + through the o-gate's read of c_t (before di/df/dg)
    dc = dstate["c"] + dh * k["o"] * dtanh(k["tanh_c"]) + cell_read_back(dz_o, p["W_oc"])
    da_i = dc * k["g"] * dsigmoid(k["i"])  # dL/da_i: eq. (4), then sigma' of eq. (7), (11)
    da_f = dc * k["c_prev"] * dsigmoid(k["f"])  # dL/da_f: eq. (4), then sigma' of eq. (8)
    da_g = dc * k["i"] * dtanh(k["g"])  # dL/da_g: eq. (4), then tanh' of eq. (1)
    dz_i = da_i * dtanh(k["u_i"])  # dL/dz_i: dL/di_t times delta-hat i_t of eq. (15)
    dz_f = da_f * dtanh(k["u_f"])  # dL/dz_f: the same for f
    dW_ic = cell_read_weight_grad(dz_i, k["c_prev"], p["W_ic"])  # eq. (14): dz_i (x) c_{t-1}
    dW_fc = cell_read_weight_grad(dz_f, k["c_prev"], p["W_fc"])  # eq. (14) for f
    # dL/dc_{t-1}: through f_t (eq. 4) and through the reads of W_ic and W_fc (eq. 7, 8)
    dc_prev = dc * k["f"] + cell_read_back(dz_i, p["W_ic"]) + cell_read_back(dz_f, p["W_fc"])

    pre = {"i": da_i, "f": da_f, "g": da_g, "o": da_o}
    grads, dx, dh_prev = gate_input_grads(p, pre, k["x"], k["h_prev"])
    grads.update(W_ic=dW_ic, W_fc=dW_fc, W_oc=dW_oc)
    if "b_ic" in p:  # cell_bias=True: z = W_kc c + b_kc, so dL/db_kc = dL/dz summed over b
        grads.update(b_ic=dz_i.sum(axis=0), b_fc=dz_f.sum(axis=0), b_oc=dz_o.sum(axis=0))
    return {name: grads[name] for name in p}, dx, {"h": dh_prev, "c": dc_prev}


@register
class WMCCell(CellToGateLSTM):
    """LSTM with Working Memory Connections, eq. (7)-(9): full W_kc (H, H) inside a tanh."""

    kind = "wmc"
    squash = True
    equations = """
i_t = sigma(W_ix x_t + W_ih h_{t-1} + tanh(W_ic c_{t-1} [+ b_ic]) + b_i)   (7)
f_t = sigma(W_fx x_t + W_fh h_{t-1} + tanh(W_fc c_{t-1} [+ b_fc]) + b_f)   (8)
g_t, c_t as in (1), (4)
o_t = sigma(W_ox x_t + W_oh h_{t-1} + tanh(W_oc c_t [+ b_oc]) + b_o)       (9)
h_t = o_t * tanh(c_t)                                                       (6)
"""
    default_options = {"forget_bias": 0.0, "diagonal": False, "cell_bias": False}

    def init_params(self, rng):
        params = super().init_params(rng)
        for k in ("i", "f", "o"):  # the bias inside the tanh starts at zero (torchrecurrent)
            if f"b_{k}c" in params:
                params[f"b_{k}c"] = params[f"b_{k}c"] * 0.0
        return params


    def step_forward(self, params, x_t, state):
        return wmc_step_forward(params, x_t, state)

    def step_backward(self, params, dstate, cache_t):
        return wmc_step_backward(params, dstate, cache_t)
