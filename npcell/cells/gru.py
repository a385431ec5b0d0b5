"""The GRU (Cho et al. 2014), in Cho's form and in PyTorch's (docs/derivations/gru.md).

The WMC paper uses a GRU as a captioning baseline. Two forms are in use, and they are different
functions, not two parametrisations of one:

``reset_after=False`` (default; Cho 2014, Keras ``reset_after=False``): the reset gate acts on
h_{t-1} *before* the recurrent matmul::

    z_t = sigma(W_zx x_t + W_zh h_{t-1} + b_z)                        (G1)
    r_t = sigma(W_rx x_t + W_rh h_{t-1} + b_r)                        (G2)
    n_t = tanh(W_nx x_t + W_nh (r_t * h_{t-1}) + b_n)                 (G3)
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}                             (G4)

``reset_after=True`` (PyTorch ``nn.GRU``, cuDNN, Keras ``reset_after=True``): the reset gate
scales the *result* of the matmul, and a second candidate bias b_nh sits inside it::

    n_t = tanh(W_nx x_t + b_n + r_t * (W_nh h_{t-1} + b_nh))          (G3')

(G1), (G2), (G4) are unchanged. The labels G1-G4 are npcell's. The update-gate convention is
PyTorch's (z_t keeps the old state); some texts (Chung et al. 2014) swap z and 1 - z.

Parameters (W is (out, in)):

==================  ========  ==============================================
name                shape     role
==================  ========  ==============================================
W_zx W_rx W_nx      (H, X)    input weights of update gate, reset gate, candidate
W_zh W_rh W_nh      (H, H)    recurrent weights
b_z b_r b_n         (H,)      biases
b_nh                (H,)      only with ``reset_after=True``: bias inside r * (...)
==================  ========  ==============================================

Count: 3H(X+H) + 3H, plus H with ``reset_after=True`` (PyTorch stores 6H biases, but its b_hr,
b_hz only add to b_ir, b_iz; ``npcell.cells.torch_convert`` sums them). State: ``{'h'}`` only.

BPTT traps: Cho form: dL/dh_{t-1} gets (da_n W_nh) * r_t besides the gate paths and z_t * dh_t;
PyTorch form: dL/dr_t = da_n * (W_nh h_{t-1} + b_nh) and dL/dh_{t-1} gets (da_n * r_t) W_nh.

The fused sequence pair over all T is npcell/engine/gru.py; a test holds it equal to the
step loop.
"""

from __future__ import annotations

from ..backend import array_module
from .base import Cell, register
from .ops import dsigmoid, dtanh, sigmoid

GRU_GATES = ("z", "r", "n")  # update, reset, candidate (the packed order of the engine too)


def gru_step_forward(params, x_t, state, *, reset_after=False):
    """One GRU step. x_t (B, X); state {'h': (B, H)} -> (new state, cache)."""
    p = params
    xp = array_module(x_t)
    h_prev = state["h"]
    z = sigmoid(x_t @ p["W_zx"].T + h_prev @ p["W_zh"].T + p["b_z"])  # eq. (G1)
    r = sigmoid(x_t @ p["W_rx"].T + h_prev @ p["W_rh"].T + p["b_r"])  # eq. (G2)
    if reset_after:
        hn = h_prev @ p["W_nh"].T + p["b_nh"]  # the recurrent part of (G3'), before the reset
        n = xp.tanh(x_t @ p["W_nx"].T + p["b_n"] + r * hn)  # eq. (G3')
        recurrent = {"hn": hn}
    else:
        rh = r * h_prev  # the reset acts before the matmul
        n = xp.tanh(x_t @ p["W_nx"].T + rh @ p["W_nh"].T + p["b_n"])  # eq. (G3)
        recurrent = {"rh": rh}
    h = (1.0 - z) * n + z * h_prev  # eq. (G4)
    cache = dict(x=x_t, h_prev=h_prev, z=z, r=r, n=n, **recurrent)
    return {"h": h}, cache


def gru_step_backward(params, dstate, cache, *, reset_after=False):
    """Backward of one GRU step.

    dstate: {'h': dL/dh_t (loss term + carried from t+1)}, (B, H).
    Returns (grads_t, dx_t (B, X), {'h': dL/dh_{t-1}}).
    """
    p, k = params, cache
    dh = dstate["h"]
    h_prev, z, r, n = k["h_prev"], k["z"], k["r"], k["n"]
    ### BEGIN SOLUTION
    da_n = dh * (1.0 - z) * dtanh(n)  # dL/da_n: through (1 - z) * n of (G4), tanh' of (G3)
    da_z = dh * (h_prev - n) * dsigmoid(z)  # dL/da_z: (G4) is linear in z, slope h_{t-1} - n_t
    dh_prev = dh * z  # dL/dh_{t-1}: the direct path z * h_{t-1} of (G4)
    grads = {}
    if reset_after:
        dhn = da_n * r  # dL/d(W_nh h_{t-1} + b_nh): through r * (...) of (G3')
        da_r = da_n * k["hn"] * dsigmoid(r)  # dL/da_r: r multiplies W_nh h + b_nh, sigma' (G2)
        grads["W_nh"] = dhn.T @ h_prev  # dL/dW_nh: pairs with h_{t-1}
        grads["b_nh"] = dhn.sum(axis=0)
        dh_prev = dh_prev + dhn @ p["W_nh"]  # dL/dh_{t-1}: through W_nh, after the reset
    else:
        drh = da_n @ p["W_nh"]  # dL/d(r * h_{t-1}): back through W_nh of (G3)
        da_r = drh * h_prev * dsigmoid(r)  # dL/da_r: through r * h_{t-1}, sigma' of (G2)
        grads["W_nh"] = da_n.T @ k["rh"]  # dL/dW_nh: pairs with r * h_{t-1}, not h_{t-1}
        dh_prev = dh_prev + drh * r  # dL/dh_{t-1}: through the reset-scaled read of (G3)
    grads["W_zh"] = da_z.T @ h_prev  # dL/dW_zh
    grads["W_rh"] = da_r.T @ h_prev  # dL/dW_rh
    dh_prev = dh_prev + da_z @ p["W_zh"] + da_r @ p["W_rh"]  # dL/dh_{t-1}: through both gates
    dx = 0.0
    for gate, da in (("z", da_z), ("r", da_r), ("n", da_n)):
        grads[f"W_{gate}x"] = da.T @ k["x"]  # dL/dW_kx, summed over the batch
        grads[f"b_{gate}"] = da.sum(axis=0)  # dL/db_k
        dx = dx + da @ p[f"W_{gate}x"]  # dL/dx_t
    ### END SOLUTION
    grads = {name: grads[name] for name in params}
    return grads, dx, {"h": dh_prev}


# ============================================================================================
# Cell class
# ============================================================================================
@register
class GRUCell(Cell):
    """GRU: Cho 2014 form (``reset_after=False``, default) or PyTorch's (``reset_after=True``)."""

    kind = "gru"
    state_names = ("h",)
    equations = """
z_t = sigma(W_zx x_t + W_zh h_{t-1} + b_z)                        (G1)
r_t = sigma(W_rx x_t + W_rh h_{t-1} + b_r)                        (G2)
n_t = tanh(W_nx x_t + W_nh (r_t * h_{t-1}) + b_n)                 (G3)   reset_after=False (Cho)
n_t = tanh(W_nx x_t + b_n + r_t * (W_nh h_{t-1} + b_nh))          (G3')  reset_after=True (PyTorch)
h_t = (1 - z_t) * n_t + z_t * h_{t-1}                             (G4)
"""
    default_options = {"reset_after": False}

    def param_shapes(self):
        H, X = self.hidden_size, self.input_size
        shapes = {f"W_{k}x": (H, X) for k in GRU_GATES}
        shapes |= {f"W_{k}h": (H, H) for k in GRU_GATES}
        shapes |= {f"b_{k}": (H,) for k in GRU_GATES}
        if self.options["reset_after"]:
            shapes["b_nh"] = (H,)
        return shapes

    def gate_activations(self):
        return {"z": "sigmoid", "r": "sigmoid", "n": "tanh"}

    def gate_blocks(self):
        blocks = {k: [f"W_{k}x", f"W_{k}h", f"b_{k}"] for k in GRU_GATES}
        if self.options["reset_after"]:
            blocks["n"].append("b_nh")
        return blocks


    def step_forward(self, params, x_t, state):
        return gru_step_forward(params, x_t, state, reset_after=self.options["reset_after"])

    def step_backward(self, params, dstate, cache_t):
        return gru_step_backward(params, dstate, cache_t, reset_after=self.options["reset_after"])
