"""The LSTM, eq. (1)-(6): the reference step pair.

Equation numbers are those of Landi, Baraldi, Cornia & Cucchiara, "Working Memory Connections for
LSTM", Neural Networks 2021. Shapes: x_t (B, X); h, c (B, H); W_*x (H, X); W_*h (H, H); b_* (H,).
Its cell-to-gate variants are npcell/cells/peephole.py (eq. 16-21) and npcell/cells/wmc.py
(eq. 7-15). The fast path over whole sequences is npcell/engine/lstm_family.py; a test holds
it equal to looping these functions.
"""

from __future__ import annotations

from ..backend import array_module
from .base import Cell, register
from .ops import dsigmoid, dtanh, sigmoid, tanh

GATES = ("i", "f", "g", "o")


def lstm_step_forward(params, x_t, state):
    """One LSTM step. x_t (B, X); state {'h': (B, H), 'c': (B, H)} -> (new state, cache)."""
    p = params
    h_prev, c_prev = state["h"], state["c"]
    g = tanh(x_t @ p["W_gx"].T + h_prev @ p["W_gh"].T + p["b_g"])  # eq. (1)
    i = sigmoid(x_t @ p["W_ix"].T + h_prev @ p["W_ih"].T + p["b_i"])  # eq. (2)
    f = sigmoid(x_t @ p["W_fx"].T + h_prev @ p["W_fh"].T + p["b_f"])  # eq. (3)
    c = f * c_prev + i * g  # eq. (4)
    o = sigmoid(x_t @ p["W_ox"].T + h_prev @ p["W_oh"].T + p["b_o"])  # eq. (5)
    tanh_c = tanh(c)
    h = o * tanh_c  # eq. (6)
    cache = dict(x=x_t, h_prev=h_prev, c_prev=c_prev, i=i, f=f, g=g, o=o, c=c, tanh_c=tanh_c)
    return {"h": h, "c": c}, cache


def lstm_step_backward(params, dstate, cache):
    """Backward of one LSTM step.

    dstate: {'h': dL/dh_t (loss term + carried from t+1), 'c': dL/dc_t carried from t+1}.
    Returns (grads_t, dx_t, dstate_prev) with grads_t keyed like params.
    """
    p, k = params, cache
    dh = dstate["h"]
    da_o = dh * k["tanh_c"] * dsigmoid(k["o"])  # dL/da_o: through eq. (6), then sigma' of eq. (5)
    dc = dstate["c"] + dh * k["o"] * dtanh(k["tanh_c"])  # dL/dc_t: carried + through eq. (6)
    da_i = dc * k["g"] * dsigmoid(k["i"])  # dL/da_i: through i*g of eq. (4), sigma' of eq. (2)
    da_f = dc * k["c_prev"] * dsigmoid(k["f"])  # dL/da_f: through f*c_{t-1} of eq. (4)
    da_g = dc * k["i"] * dtanh(k["g"])  # dL/da_g: through i*g of eq. (4), tanh' of eq. (1)
    dc_prev = dc * k["f"]  # dL/dc_{t-1}: the constant error carousel of eq. (4)

    pre = {"i": da_i, "f": da_f, "g": da_g, "o": da_o}
    grads, dx, dh_prev = gate_input_grads(p, pre, k["x"], k["h_prev"])
    return grads, dx, {"h": dh_prev, "c": dc_prev}


def gate_input_grads(p, pre, x, h_prev):
    """Weight, input and hidden gradients of a = W_kx x + W_kh h_{t-1} + b_k for each gate k.

    eq. (12)-(13) in batch form: dW_kx = da_k^T x (sum over the batch), dW_kh = da_k^T h_{t-1}.
    """
    grads = {}
    dx = 0.0
    dh_prev = 0.0
    for gate, da in pre.items():
        grads[f"W_{gate}x"] = da.T @ x  # dL/dW_kx, eq. (12)
        grads[f"W_{gate}h"] = da.T @ h_prev  # dL/dW_kh, eq. (13)
        grads[f"b_{gate}"] = da.sum(axis=0)  # dL/db_k: summed over the batch
        dx = dx + da @ p[f"W_{gate}x"]  # dL/dx_t
        dh_prev = dh_prev + da @ p[f"W_{gate}h"]  # dL/dh_{t-1}
    return grads, dx, dh_prev


def stack_gates(params, part, gates=GATES):
    """One part of every gate stacked into one array: part 'x' -> [W_kx for k in gates]
    ((4H, X) for four gates), 'h' -> the W_kh (4H, H), 'b' -> the b_k (4H,)."""
    pattern = {"x": "W_{}x", "h": "W_{}h", "b": "b_{}"}[part]
    arrays = [params[pattern.format(k)] for k in gates]
    return array_module(*arrays).concatenate(arrays, axis=0)


@register
class LSTMCell(Cell):
    """The LSTM of eq. (1)-(6). Options: ``forget_bias`` (added to b_f at init)."""

    kind = "lstm"
    equations = """
g_t = tanh(W_gx x_t + W_gh h_{t-1} + b_g)                 (1)
i_t = sigma(W_ix x_t + W_ih h_{t-1} + b_i)                (2)
f_t = sigma(W_fx x_t + W_fh h_{t-1} + b_f)                (3)
c_t = f_t * c_{t-1} + i_t * g_t                           (4)
o_t = sigma(W_ox x_t + W_oh h_{t-1} + b_o)                (5)
h_t = o_t * tanh(c_t)                                     (6)
"""
    default_options = {"forget_bias": 0.0}
    cell_read = None  # what the gates read from c: nothing (peephole and wmc: a CellRead)

    def param_shapes(self):
        H, X = self.hidden_size, self.input_size
        shapes = {f"W_{k}x": (H, X) for k in GATES}
        shapes |= {f"W_{k}h": (H, H) for k in GATES}
        shapes |= {f"b_{k}": (H,) for k in GATES}
        return shapes

    def gate_blocks(self):
        return {k: [f"W_{k}x", f"W_{k}h", f"b_{k}"] for k in GATES}

    def gate_activations(self):
        return {"i": "sigmoid", "f": "sigmoid", "g": "tanh", "o": "sigmoid"}

    def init_params(self, rng):
        params = super().init_params(rng)
        params["b_f"] = params["b_f"] + float(self.options["forget_bias"])
        return params


    def step_forward(self, params, x_t, state):
        return lstm_step_forward(params, x_t, state)

    def step_backward(self, params, dstate, cache_t):
        return lstm_step_backward(params, dstate, cache_t)
