"""Layer-normalised LSTM (``ln_lstm``): the baseline of the fast-weight LSTM paper, two styles.

Shapes: x_t (B, X); h, c (B, H); W_kx (H, X); W_kh (H, H); b_k, ln_gain_*, ln_bias_* (H,);
gates k in (i, f, g, o). LN is :func:`npcell.cells.layernorm.layer_norm_forward` (one
implementation for every cell). Equation labels (TF1)-(TF6) and (BA1)-(BA6) are npcell's: the
papers' numbering is not used.

``ln_style="tf"`` (default): TensorFlow's ``LayerNormBasicLSTMCell``, which a TF-based 2018 paper
such as Keller et al. most likely used as its LN-LSTM::

    a_k   = W_kx x_t + W_kh h_{t-1}                  one joint linear of [x, h], NO bias    (TF1)
    n_k   = LN(a_k; ln_gain_k, ln_bias_k)            a SEPARATE LayerNorm per gate block     (TF2)
    i, f, o = sigma(n_i), sigma(n_f + forget_bias), sigma(n_o);  g = tanh(n_g)              (TF3)
    c~_t  = f * c_{t-1} + i * g                                                              (TF4)
    c_t   = LN(c~_t; ln_gain_c, ln_bias_c)           the NORMALISED cell is carried          (TF5)
    h_t   = tanh(c_t) * o                                                                    (TF6)

``ln_style="ba2016"``: the LN-LSTM of Ba, Kiros & Hinton 2016 (paper form)::

    a     = LN(W_h h_{t-1}; ln_gain_*h) + LN(W_x x_t; ln_gain_*x) + b    joint LN over 4H   (BA1)
    i, f, o = sigma(a_i), sigma(a_f + forget_bias), sigma(a_o);  g = tanh(a_g)              (BA2)
    c_t   = f * c_{t-1} + i * g                      the UN-normalised cell is carried       (BA3)
    h_t   = o * tanh(LN(c_t; ln_gain_c, ln_bias_c))                                          (BA4)

Parameters and counts (checked by a test):

* tf: W_kx, W_kh; ln_gain_k, ln_bias_k; ln_gain_c, ln_bias_c -> 4H(X+H) + 10H (as TF's cell).
* ba2016: W_kx, W_kh, b_k; ln_gain_kh, ln_gain_kx; ln_gain_c, ln_bias_c -> 4H(X+H) + 14H. The
  paper also gives each of the two LayerNorms in (BA1) a shift beta; both would simply add to b,
  so npcell keeps b only (a redundant parameter teaches nothing and splits its gradient).

Init: W and b U(-1/sqrt(H), 1/sqrt(H)) (PyTorch default); LN gains 1, LN shifts 0 (TF default).
``forget_bias`` (default 1.0, as in TF) is a constant added inside sigma, not a parameter.
The LayerNorm on c sits on the recurrent path in the tf style: dL/dc_{t-1} = (LN backward of
dL/dc_t) * f_t, so long-T gradients pass through one LN Jacobian per step.
"""

from __future__ import annotations

import math

import numpy  # host-side initial values only; the math below goes through array_module

from ..backend import array_module
from ..errors import ConfigError
from .base import Cell, register, require_option
from .layernorm import layer_norm_backward, layer_norm_forward
from .lstm import GATES, stack_gates  # noqa: F401 - fastweights reads both from here
from .ops import dsigmoid, dtanh, sigmoid, tanh

LN_STYLES = ("tf", "ba2016")


# ============================================================================================
# Shared pieces (also used by the fast-weight LSTM)
# ============================================================================================
def project(params, inp, part):
    """All four gate projections of one input in one GEMM: [W_ix; W_fx; W_gx; W_ox] inp.

    part 'x' (inp (B, X)) or 'h' (inp (B, H)). Returns (B, 4H), gate blocks in GATES order.
    """
    return inp @ stack_gates(params, part).T


def project_backward(params, da, inp, part):
    """Backward of :func:`project`: ({W_k<part>: (H, in)}, dL/dinp (B, in)).

    da : (B, 4H) dL/d(projection). dW = da^T inp sums over the batch; rows split per gate.
    """
    W = stack_gates(params, part)
    dW = da.T @ inp  # dL/dW (4H, in): summed over the batch
    H = da.shape[1] // 4
    grads = {f"W_{k}{part}": dW[n * H : (n + 1) * H] for n, k in enumerate(GATES)}
    return grads, da @ W  # dL/dinp: through every gate's W


def split_gates(a):
    """(B, 4H) -> {'i', 'f', 'g', 'o': (B, H)} views."""
    H = a.shape[1] // 4
    return {k: a[:, n * H : (n + 1) * H] for n, k in enumerate(GATES)}


def join_gates(blocks):
    """{'i', 'f', 'g', 'o': (B, H)} -> (B, 4H) in GATES order."""
    arrays = [blocks[k] for k in GATES]
    return array_module(*arrays).concatenate(arrays, axis=1)


def check_real_option(cell, name, *, low=None, high=None, low_open=False):
    """ConfigError unless option ``name`` (a finite number: Cell checked its type) lies in
    [low, high] (or (low, high])."""
    value = cell.options[name]
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        left = "(" if low_open else "["
        raise ConfigError(
            f"option {name} of cell kind {cell.kind!r} must lie in "
            f"{left}{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]; "
            f"got {value!r}"
        )


def ln_init(shapes, rng, hidden_size):
    """W and b U(-1/sqrt(H), 1/sqrt(H)); LayerNorm gains 1 and shifts 0 (by name)."""
    bound = 1.0 / math.sqrt(hidden_size)
    params = {}
    for name, shape in shapes.items():
        if name.startswith("ln_gain"):
            params[name] = numpy.ones(shape)  # LN starts as the plain normalisation
        elif name.startswith("ln_bias"):
            params[name] = numpy.zeros(shape)
        else:
            params[name] = rng.uniform(-bound, bound, size=shape)
    return params


# ============================================================================================
# TF style: LayerNormBasicLSTMCell
# ============================================================================================
def ln_lstm_tf_step_forward(params, x_t, state, *, forget_bias, eps):
    """One step of the TF-style LN-LSTM. x_t (B, X); state {'h', 'c'} (B, H)."""
    p = params
    h_prev, c_prev = state["h"], state["c"]
    a = split_gates(project(p, x_t, "x") + project(p, h_prev, "h"))  # eq. (TF1)
    n, ln = {}, {}
    for k in GATES:
        n[k], ln[k] = layer_norm_forward(a[k], p[f"ln_gain_{k}"], p[f"ln_bias_{k}"], eps)  # (TF2)
    i, o = sigmoid(n["i"]), sigmoid(n["o"])  # eq. (TF3)
    f = sigmoid(n["f"] + forget_bias)  # eq. (TF3)
    g = tanh(n["g"])  # eq. (TF3)
    c_tilde = f * c_prev + i * g  # eq. (TF4)
    c, ln["c"] = layer_norm_forward(c_tilde, p["ln_gain_c"], p["ln_bias_c"], eps)  # eq. (TF5)
    tanh_c = tanh(c)
    h = tanh_c * o  # eq. (TF6)
    cache = dict(x=x_t, h_prev=h_prev, c_prev=c_prev, i=i, f=f, g=g, o=o, c=c, tanh_c=tanh_c,
                 ln=ln)
    return {"h": h, "c": c}, cache


def ln_lstm_tf_step_backward(params, dstate, cache):
    """Backward of :func:`ln_lstm_tf_step_forward`: (grads_t, dx_t, {'h', 'c'} at t-1)."""
    p, k = params, cache
    dh = dstate["h"]
    dn_o = dh * k["tanh_c"] * dsigmoid(k["o"])  # dL/dn_o: through (TF6), sigma' of (TF3)
    dc = dstate["c"] + dh * k["o"] * dtanh(k["tanh_c"])  # dL/dc_t: carried + through (TF6)
    # dL/dc~_t: through the LayerNorm on the carried cell, (TF5)
    dc_tilde, dgain_c, dbias_c = layer_norm_backward(dc, k["ln"]["c"])
    dc_prev = dc_tilde * k["f"]  # dL/dc_{t-1}: through f * c_{t-1} of (TF4), after the LN
    dn = {
        "i": dc_tilde * k["g"] * dsigmoid(k["i"]),  # dL/dn_i: through i*g of (TF4)
        "f": dc_tilde * k["c_prev"] * dsigmoid(k["f"]),  # dL/dn_f: through f*c_{t-1} of (TF4)
        "g": dc_tilde * k["i"] * dtanh(k["g"]),  # dL/dn_g: through i*g of (TF4), tanh'
        "o": dn_o,
    }
    grads, da = {}, {}
    for gate in GATES:  # dL/da_k: back through each gate's own LayerNorm, (TF2)
        da[gate], grads[f"ln_gain_{gate}"], grads[f"ln_bias_{gate}"] = layer_norm_backward(
            dn[gate], k["ln"][gate])
    grads.update(ln_gain_c=dgain_c, ln_bias_c=dbias_c)
    da = join_gates(da)
    grads_x, dx = project_backward(p, da, k["x"], "x")  # dL/dW_kx, dL/dx_t: through (TF1)
    grads_h, dh_prev = project_backward(p, da, k["h_prev"], "h")  # dL/dW_kh, dL/dh_{t-1}
    grads.update(grads_x, **grads_h)
    return {name: grads[name] for name in p}, dx, {"h": dh_prev, "c": dc_prev}


# ============================================================================================
# Ba, Kiros & Hinton 2016 style
# ============================================================================================
def _joint_gain(params, part):
    """The (4H,) gain of the joint LayerNorm over W_<part> inp: [ln_gain_i<part>, ...]."""
    arrays = [params[f"ln_gain_{k}{part}"] for k in GATES]
    return array_module(*arrays).concatenate(arrays)


def ln_lstm_ba_step_forward(params, x_t, state, *, forget_bias, eps):
    """One step of the Ba et al. 2016 LN-LSTM. x_t (B, X); state {'h', 'c'} (B, H)."""
    p = params
    h_prev, c_prev = state["h"], state["c"]
    n_h, ln_h = layer_norm_forward(project(p, h_prev, "h"), _joint_gain(p, "h"), 0.0, eps)
    n_x, ln_x = layer_norm_forward(project(p, x_t, "x"), _joint_gain(p, "x"), 0.0, eps)
    a = split_gates(n_h + n_x + stack_gates(p, "b"))  # eq. (BA1)
    i, o = sigmoid(a["i"]), sigmoid(a["o"])  # eq. (BA2)
    f = sigmoid(a["f"] + forget_bias)  # eq. (BA2)
    g = tanh(a["g"])  # eq. (BA2)
    c = f * c_prev + i * g  # eq. (BA3): this un-normalised c is what is carried
    n_c, ln_c = layer_norm_forward(c, p["ln_gain_c"], p["ln_bias_c"], eps)
    tanh_nc = tanh(n_c)
    h = o * tanh_nc  # eq. (BA4)
    cache = dict(x=x_t, h_prev=h_prev, c_prev=c_prev, i=i, f=f, g=g, o=o, tanh_nc=tanh_nc,
                 ln=dict(h=ln_h, x=ln_x, c=ln_c))
    return {"h": h, "c": c}, cache


def ln_lstm_ba_step_backward(params, dstate, cache):
    """Backward of :func:`ln_lstm_ba_step_forward`: (grads_t, dx_t, {'h', 'c'} at t-1)."""
    p, k = params, cache
    dh = dstate["h"]
    da_o = dh * k["tanh_nc"] * dsigmoid(k["o"])  # dL/da_o: through (BA4), sigma' of (BA2)
    dn_c = dh * k["o"] * dtanh(k["tanh_nc"])  # dL/dLN(c_t): through tanh of (BA4)
    dc_from_h, dgain_c, dbias_c = layer_norm_backward(dn_c, k["ln"]["c"])  # through LN of (BA4)
    dc = dstate["c"] + dc_from_h  # dL/dc_t: carried (un-normalised c) + through h_t
    dc_prev = dc * k["f"]  # dL/dc_{t-1}: the plain carousel of (BA3), no LN on this path
    da = join_gates({
        "i": dc * k["g"] * dsigmoid(k["i"]),  # dL/da_i: through i*g of (BA3)
        "f": dc * k["c_prev"] * dsigmoid(k["f"]),  # dL/da_f: through f*c_{t-1} of (BA3)
        "g": dc * k["i"] * dtanh(k["g"]),  # dL/da_g: through i*g of (BA3), tanh'
        "o": da_o,
    })
    H = dh.shape[1]
    grads = {f"b_{g}": da[:, n * H : (n + 1) * H].sum(axis=0)  # dL/db_k: batch sum, (BA1)
             for n, g in enumerate(GATES)}
    # (BA1) is a sum of two LayerNorms: each receives the same dL/da
    dproj_h, dgain_h, _ = layer_norm_backward(da, k["ln"]["h"])  # dL/d(W_h h_{t-1})
    dproj_x, dgain_x, _ = layer_norm_backward(da, k["ln"]["x"])  # dL/d(W_x x_t)
    for n, g in enumerate(GATES):
        grads[f"ln_gain_{g}h"] = dgain_h[n * H : (n + 1) * H]
        grads[f"ln_gain_{g}x"] = dgain_x[n * H : (n + 1) * H]
    grads.update(ln_gain_c=dgain_c, ln_bias_c=dbias_c)
    grads_x, dx = project_backward(p, dproj_x, k["x"], "x")  # dL/dW_kx, dL/dx_t
    grads_h, dh_prev = project_backward(p, dproj_h, k["h_prev"], "h")  # dL/dW_kh, dL/dh_{t-1}
    grads.update(grads_x, **grads_h)
    return {name: grads[name] for name in p}, dx, {"h": dh_prev, "c": dc_prev}


# ============================================================================================
# Cell class
# ============================================================================================
_EQUATIONS = {
    "tf": """
a_k   = W_kx x_t + W_kh h_{t-1}   (k = i, f, g, o; no bias)          (TF1)
n_k   = LN(a_k; ln_gain_k, ln_bias_k)   separate LN per gate block      (TF2)
i, f, o = sigma(n_i), sigma(n_f + forget_bias), sigma(n_o); g = tanh(n_g)   (TF3)
c~_t  = f * c_{t-1} + i * g                                             (TF4)
c_t   = LN(c~_t; ln_gain_c, ln_bias_c)   normalised c is carried        (TF5)
h_t   = tanh(c_t) * o                                                   (TF6)
(TensorFlow LayerNormBasicLSTMCell; LN gains init 1, shifts 0)
""",
    "ba2016": """
a     = LN(W_h h_{t-1}; ln_gain_*h) + LN(W_x x_t; ln_gain_*x) + b   joint LN over 4H   (BA1)
i, f, o = sigma(a_i), sigma(a_f + forget_bias), sigma(a_o); g = tanh(a_g)             (BA2)
c_t   = f * c_{t-1} + i * g    un-normalised c is carried                             (BA3)
h_t   = o * tanh(LN(c_t; ln_gain_c, ln_bias_c))                                       (BA4)
(Ba, Kiros & Hinton 2016; the two LN shifts of (BA1) are folded into b)
""",
}


@register
class LNLSTMCell(Cell):
    """Layer-normalised LSTM; ``ln_style`` 'tf' (default) or 'ba2016' (see the module docstring).

    Options: ``ln_style``, ``forget_bias`` (constant inside the forget sigmoid, default 1.0),
    ``ln_eps`` (variance epsilon of every LayerNorm, default 1e-5).
    """

    kind = "ln_lstm"
    default_options = {"ln_style": "tf", "forget_bias": 1.0, "ln_eps": 1e-5}

    @property
    def equations(self):
        return _EQUATIONS[self.options["ln_style"]]

    def check_options(self):
        require_option(self, "ln_style", LN_STYLES)
        check_real_option(self, "ln_eps", low=0.0, low_open=True)

    def param_shapes(self):
        H, X = self.hidden_size, self.input_size
        shapes = {f"W_{k}x": (H, X) for k in GATES}
        shapes |= {f"W_{k}h": (H, H) for k in GATES}
        if self.options["ln_style"] == "tf":
            shapes |= {f"ln_gain_{k}": (H,) for k in GATES}
            shapes |= {f"ln_bias_{k}": (H,) for k in GATES}
        else:
            shapes |= {f"b_{k}": (H,) for k in GATES}
            shapes |= {f"ln_gain_{k}h": (H,) for k in GATES}
            shapes |= {f"ln_gain_{k}x": (H,) for k in GATES}
        shapes |= {"ln_gain_c": (H,), "ln_bias_c": (H,)}
        return shapes

    def gate_activations(self):
        return {"i": "sigmoid", "f": "sigmoid", "g": "tanh", "o": "sigmoid"}

    def gate_blocks(self):
        if self.options["ln_style"] == "tf":
            blocks = {k: [f"W_{k}x", f"W_{k}h", f"ln_gain_{k}", f"ln_bias_{k}"] for k in GATES}
        else:
            blocks = {k: [f"W_{k}x", f"W_{k}h", f"b_{k}", f"ln_gain_{k}h", f"ln_gain_{k}x"]
                      for k in GATES}
        blocks["c-norm"] = ["ln_gain_c", "ln_bias_c"]
        return blocks

    def init_params(self, rng):
        return ln_init(self.param_shapes(), rng, self.hidden_size)


    def step_forward(self, params, x_t, state):
        step = ln_lstm_tf_step_forward if self.options["ln_style"] == "tf" else \
            ln_lstm_ba_step_forward
        return step(params, x_t, state, forget_bias=float(self.options["forget_bias"]),
                    eps=float(self.options["ln_eps"]))

    def step_backward(self, params, dstate, cache_t):
        if self.options["ln_style"] == "tf":
            return ln_lstm_tf_step_backward(params, dstate, cache_t)
        return ln_lstm_ba_step_backward(params, dstate, cache_t)
