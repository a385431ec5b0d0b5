"""The Untied LSTM (ULSTM) of Gao & Oates, ECML-PKDD 2018 (docs/derivations/ulstm.md).

In an LSTM the output gate o_{t-1} has two jobs: it emits h_{t-1} = o_{t-1} * tanh(c_{t-1}),
and, because the candidate reads h_{t-1}, it also decides which part of the cell flows back into
the candidate. ULSTM *unties* the two: a new gate z_t decides what the candidate reads from the
cell, and the candidate no longer sees h_{t-1} at all.

Equations (the authors' code, HangGao/ULSTM; the numbers are npcell's labels, not the paper's)::

    i_t = sigma(W_ix x_t + b_ix + W_ih h_{t-1} + b_ih)              (U1)
    o_t = sigma(W_ox x_t + b_ox + W_oh h_{t-1} + b_oh)              (U2)
    z_t = sigma(W_zx x_t + b_zx + W_zh h_{t-1} + b_zh)              (U3)
    f_t = sigma(W_fx x_t + b_fx + W_fh h_{t-1} + b_fh)              (U4)
    m_t = z_t * tanh(c_{t-1})                                       (U5)
    u_t = tanh(W_ux x_t + b_ux + U_m m_t + b_m)                     (U6)  no h_{t-1} here
    c_t = i_t * u_t + f_t * c_{t-1}                                 (U7)
    h_t = o_t * tanh(c_t)       (use_o=True)                        (U8)
    h_t = tanh(c_t)             (use_o=False)

Sanity identity: with z_t := o_{t-1}, m_t = h_{t-1} and U_m plays W_gh, so the LSTM comes back
(tests/test_identities.py checks it).

Parameters (W is (out, in) as everywhere in npcell; H hidden, X input):

========================  ========  ===========================================
name                      shape     in the authors' code
========================  ========  ===========================================
W_ix W_ox W_zx W_fx W_ux  (H, X)    ``iozfux.weight`` rows (order i, o, z, f, u)
W_ih W_oh W_zh W_fh       (H, H)    ``iozfh.weight`` rows (order i, o, z, f)
U_m                       (H, H)    ``um.weight``
b_ix b_ox b_zx b_fx b_ux  (H,)      ``iozfux.bias`` (x-side biases)
b_ih b_oh b_zh b_fh       (H,)      ``iozfh.bias`` (h-side biases)
b_m                       (H,)      ``um.bias``
========================  ========  ===========================================

The biases are doubled exactly as in the code (each gate has an x-side and an h-side bias, the
candidate b_ux and b_m), so the count is 5H(X+H) + 10H (a test checks it). The doubled
biases are redundant (only their sum matters) but keep the count and weight loading faithful.

Options: ``use_o`` (default True). The code's ``use_o=False`` keeps the o rows allocated but never
reads them; npcell drops W_ox, W_oh, b_ox, b_oh instead, so every parameter has a gradient
(count 4H(X+H) + 8H). ``forget_bias`` is added to b_fx at init (the code's ``reset()`` puts 1.5
in both b_fx and b_fh).

BPTT trap (docs/derivations/ulstm.md): tanh(c_{t-1}) feeds both h_{t-1} (through o_{t-1}) and m_t
(through z_t). The authors' code carries the adjoint ds_{t-1} = dm_t * z_t back one step; a pure
step function has c_{t-1} in hand, so :func:`ulstm_step_backward` folds that path into dL/dc_{t-1}
directly: dc_{t-1} += dm_t * z_t * (1 - tanh(c_{t-1})^2). Both give the same numbers.

The fused sequence pair over all T is npcell/engine/ulstm.py; a test holds it equal to the
step loop.
"""

from __future__ import annotations

from ..backend import array_module
from .base import Cell, register
from .ops import dsigmoid, dtanh, sigmoid

CODE_GATE_ORDER = ("i", "o", "z", "f")  # the sigmoid gates, in the order of the authors' code


def sigmoid_gates(use_o):
    """The sigmoid gates of the cell in CODE_GATE_ORDER: without o when ``use_o=False``."""
    return tuple(k for k in CODE_GATE_ORDER if use_o or k != "o")


def ulstm_step_forward(params, x_t, state, *, use_o=True):
    """One ULSTM step. x_t (B, X); state {'h': (B, H), 'c': (B, H)} -> (new state, cache)."""
    p = params
    xp = array_module(x_t)
    h_prev, c_prev = state["h"], state["c"]

    def gate(k):  # sigma(W_kx x_t + b_kx + W_kh h_{t-1} + b_kh)
        return sigmoid(x_t @ p[f"W_{k}x"].T + p[f"b_{k}x"] + h_prev @ p[f"W_{k}h"].T + p[f"b_{k}h"])

    i = gate("i")  # eq. (U1)
    o = gate("o") if use_o else None  # eq. (U2)
    z = gate("z")  # eq. (U3)
    f = gate("f")  # eq. (U4)
    tanh_c_prev = xp.tanh(c_prev)  # the cell read-out shared by h_{t-1} and m_t
    m = z * tanh_c_prev  # eq. (U5)
    u = xp.tanh(x_t @ p["W_ux"].T + p["b_ux"] + m @ p["U_m"].T + p["b_m"])  # eq. (U6)
    c = i * u + f * c_prev  # eq. (U7)
    tanh_c = xp.tanh(c)
    h = o * tanh_c if use_o else tanh_c  # eq. (U8)
    cache = dict(x=x_t, h_prev=h_prev, c_prev=c_prev, tanh_c_prev=tanh_c_prev, i=i, z=z, f=f,
                 m=m, u=u, c=c, tanh_c=tanh_c)
    if use_o:
        cache["o"] = o
    return {"h": h, "c": c}, cache


def ulstm_step_backward(params, dstate, cache, *, use_o=True):
    """Backward of one ULSTM step.

    dstate: {'h': dL/dh_t (loss term + carried from t+1), 'c': dL/dc_t carried from t+1}, (B, H).
    Returns (grads_t, dx_t (B, X), {'h': dL/dh_{t-1}, 'c': dL/dc_{t-1}}).
    """
    p, k = params, cache
    dh = dstate["h"]
    if use_o:
        da_o = dh * k["tanh_c"] * dsigmoid(k["o"])  # dL/da_o: through eq. (U8), sigma' of (U2)
        dc = dstate["c"] + dh * k["o"] * dtanh(k["tanh_c"])  # dL/dc_t: carried + through (U8)
    else:
        dc = dstate["c"] + dh * dtanh(k["tanh_c"])  # dL/dc_t: carried + through h_t = tanh(c_t)
    da_i = dc * k["u"] * dsigmoid(k["i"])  # dL/da_i: through i*u of eq. (U7), sigma' of (U1)
    da_f = dc * k["c_prev"] * dsigmoid(k["f"])  # dL/da_f: through f*c_{t-1} of (U7), sigma' (U4)
    da_u = dc * k["i"] * dtanh(k["u"])  # dL/da_u: through i*u of (U7), tanh' of (U6)
    dm = da_u @ p["U_m"]  # dL/dm_t: back through U_m of eq. (U6)
    da_z = dm * k["tanh_c_prev"] * dsigmoid(k["z"])  # dL/da_z: through eq. (U5), sigma' of (U3)
    ds_prev = dm * k["z"]  # dL/d tanh(c_{t-1}) through m_t: the "ds carry" of the authors' code
    # dL/dc_{t-1}: through f_t (the carousel) and through tanh(c_{t-1}) inside m_t
    dc_prev = dc * k["f"] + ds_prev * dtanh(k["tanh_c_prev"])

    grads = {}
    dx = da_u @ p["W_ux"]  # dL/dx_t: through the candidate
    dh_prev = 0.0  # the candidate has no h_{t-1}: only the four sigmoid gates reach it
    pre = {"i": da_i, "z": da_z, "f": da_f}
    if use_o:
        pre["o"] = da_o
    for gate in sigmoid_gates(use_o):
        da = pre[gate]
        grads[f"W_{gate}x"] = da.T @ k["x"]  # dL/dW_kx, summed over the batch
        grads[f"W_{gate}h"] = da.T @ k["h_prev"]  # dL/dW_kh
        grads[f"b_{gate}x"] = da.sum(axis=0)  # the doubled biases get the same gradient
        grads[f"b_{gate}h"] = grads[f"b_{gate}x"].copy()
        dx = dx + da @ p[f"W_{gate}x"]  # dL/dx_t through gate k
        dh_prev = dh_prev + da @ p[f"W_{gate}h"]  # dL/dh_{t-1} through gate k
    grads["W_ux"] = da_u.T @ k["x"]  # dL/dW_ux
    grads["U_m"] = da_u.T @ k["m"]  # dL/dU_m: pairs with m_t = z_t * tanh(c_{t-1})
    grads["b_ux"] = da_u.sum(axis=0)
    grads["b_m"] = grads["b_ux"].copy()
    grads = {name: grads[name] for name in params}
    return grads, dx, {"h": dh_prev, "c": dc_prev}


@register
class ULSTMCell(Cell):
    """Untied LSTM (Gao & Oates 2018). See the module docstring for equations and names.

    Code gate order (the authors' packed rows): i, o, z, f, then the candidate u in the
    x-projection. Options: ``use_o`` (True: h = o * tanh(c)), ``forget_bias`` (added to b_fx).
    """

    kind = "ulstm"
    equations = """
i_t = sigma(W_ix x_t + b_ix + W_ih h_{t-1} + b_ih)              (U1)
o_t = sigma(W_ox x_t + b_ox + W_oh h_{t-1} + b_oh)              (U2)
z_t = sigma(W_zx x_t + b_zx + W_zh h_{t-1} + b_zh)              (U3)
f_t = sigma(W_fx x_t + b_fx + W_fh h_{t-1} + b_fh)              (U4)
m_t = z_t * tanh(c_{t-1})                                       (U5)
u_t = tanh(W_ux x_t + b_ux + U_m m_t + b_m)                     (U6)
c_t = i_t * u_t + f_t * c_{t-1}                                 (U7)
h_t = o_t * tanh(c_t)   (use_o=False: h_t = tanh(c_t))          (U8)
(Gao & Oates 2018, code HangGao/ULSTM; code gate order i, o, z, f; z_t := o_{t-1} gives the LSTM)
"""
    default_options = {"use_o": True, "forget_bias": 0.0}

    def param_shapes(self):
        H, X = self.hidden_size, self.input_size
        gates = sigmoid_gates(self.options["use_o"])
        shapes = {f"W_{k}x": (H, X) for k in gates}
        shapes["W_ux"] = (H, X)
        shapes |= {f"W_{k}h": (H, H) for k in gates}
        shapes["U_m"] = (H, H)
        shapes |= {f"b_{k}x": (H,) for k in gates}
        shapes["b_ux"] = (H,)
        shapes |= {f"b_{k}h": (H,) for k in gates}
        shapes["b_m"] = (H,)
        return shapes

    def gate_activations(self):
        return {"i": "sigmoid", "o": "sigmoid", "z": "sigmoid", "f": "sigmoid", "u": "tanh"}

    def gate_blocks(self):
        blocks = {k: [f"W_{k}x", f"W_{k}h", f"b_{k}x", f"b_{k}h"]
                  for k in sigmoid_gates(self.options["use_o"])}
        blocks["u"] = ["W_ux", "U_m", "b_ux", "b_m"]  # the candidate
        return blocks

    def init_params(self, rng):
        params = super().init_params(rng)
        params["b_fx"] = params["b_fx"] + float(self.options["forget_bias"])
        return params


    def step_forward(self, params, x_t, state):
        return ulstm_step_forward(params, x_t, state, use_o=self.options["use_o"])

    def step_backward(self, params, dstate, cache_t):
        return ulstm_step_backward(params, dstate, cache_t, use_o=self.options["use_o"])
