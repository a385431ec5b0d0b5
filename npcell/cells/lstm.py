"""The LSTM (eq. 1-6) and its cell-to-gate variants: peephole (eq. 16-18) and WMC (eq. 7-9).

Equation numbers are those of Landi et al. 2021, "Working Memory Connections for LSTM"
(``shared/seeds/001_...``). Shapes: x_t (B, X); h, c (B, H); W_*x (H, X); W_*h (H, H); b_* (H,).

The three cells differ only in what the gates read from the cell state:

=========  ===============================  ======================================
kind       cell term added to gate *k*      paper
=========  ===============================  ======================================
lstm       none                             eq. (1)-(6)
peephole   W_kc c                           eq. (16)-(18); diagonal w_kc * c default
wmc        tanh(W_kc c [+ b_kc])            eq. (7)-(9); full H x H W_kc default
=========  ===============================  ======================================

and in both variants the input and forget gates read c_{t-1} while the output gate reads the
*new* c_t (eq. 9 / 18), so its term joins dL/dc_t before dc_t feeds di, df and dg.

Each kind has a pure step pair (the readable reference, one line per equation) and a fused
sequence pair (one input GEMM for all T, one packed recurrent GEMM per step, weight gradients
as one GEMM over all T*B rows after the loop) that a test holds equal to the step loop.
"""

from __future__ import annotations

import contextlib

from .. import engine
from ..backend import array_module
from ..engine import workspace
from ..engine.cpu import loops as cpu_kernels
from ..engine.cuda import kernels
from .base import Cell, register
from .ops import dsigmoid, dtanh, sigmoid, tanh

GATES = ("i", "f", "g", "o")
# Packed order inside the fused path (see its layout note): the sigmoid gates o, i, f first and
# the tanh candidate g last, so [0, 3H) is every sigmoid gate and [H, 4H) is what dc_t feeds.
PACKED_ORDER = ("o", "i", "f", "g")


# ============================================================================================
# LSTM, eq. (1)-(6)
# ============================================================================================
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
    ### BEGIN SOLUTION
    da_o = dh * k["tanh_c"] * dsigmoid(k["o"])  # dL/da_o: through eq. (6), then sigma' of eq. (5)
    dc = dstate["c"] + dh * k["o"] * dtanh(k["tanh_c"])  # dL/dc_t: carried + through eq. (6)
    da_i = dc * k["g"] * dsigmoid(k["i"])  # dL/da_i: through i*g of eq. (4), sigma' of eq. (2)
    da_f = dc * k["c_prev"] * dsigmoid(k["f"])  # dL/da_f: through f*c_{t-1} of eq. (4)
    da_g = dc * k["i"] * dtanh(k["g"])  # dL/da_g: through i*g of eq. (4), tanh' of eq. (1)
    dc_prev = dc * k["f"]  # dL/dc_{t-1}: the constant error carousel of eq. (4)
    ### END SOLUTION

    pre = {"i": da_i, "f": da_f, "g": da_g, "o": da_o}
    grads, dx, dh_prev = _gate_input_grads(p, pre, k["x"], k["h_prev"])
    return grads, dx, {"h": dh_prev, "c": dc_prev}


def _gate_input_grads(p, pre, x, h_prev):
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


# ============================================================================================
# Peephole (eq. 16-18) and Working Memory Connections (eq. 7-9)
# ============================================================================================
def cell_term(W, c, *, diagonal, bias=None):
    """The linear read of the cell inside a gate: W c (full, W is (H, H)) or w * c (diagonal)."""
    z = W * c if diagonal else c @ W.T
    return z if bias is None else z + bias


def cell_term_backward(dz, W, c, *, diagonal):
    """Gradients of z = cell_term(W, c): (dL/dW, dL/dc). Diagonal: dw = sum_b dz*c, dc = dz*w."""
    if diagonal:
        return (dz * c).sum(axis=0), dz * W
    return dz.T @ c, dz @ W


def connected_step_forward(params, x_t, state, *, squash, diagonal, cell_bias=False):
    """One step of an LSTM whose gates read the cell: peephole (squash=False) or WMC (True).

    i, f read c_{t-1}; o reads the new c_t. u_k = tanh(W_kc c [+ b_kc]) for WMC (eq. 7-9), or
    u_k = W_kc c for the peephole (eq. 16-18).
    """
    p = params
    xp = array_module(x_t)
    h_prev, c_prev = state["h"], state["c"]
    act = xp.tanh if squash else _linear

    def read(gate, c):
        return act(cell_term(p[f"W_{gate}c"], c, diagonal=diagonal,
                             bias=p[f"b_{gate}c"] if cell_bias else None))

    u_i, u_f = read("i", c_prev), read("f", c_prev)
    g = tanh(x_t @ p["W_gx"].T + h_prev @ p["W_gh"].T + p["b_g"])  # eq. (1)
    i = sigmoid(x_t @ p["W_ix"].T + h_prev @ p["W_ih"].T + u_i + p["b_i"])  # eq. (7) / (16)
    f = sigmoid(x_t @ p["W_fx"].T + h_prev @ p["W_fh"].T + u_f + p["b_f"])  # eq. (8) / (17)
    c = f * c_prev + i * g  # eq. (4)
    u_o = read("o", c)  # the output gate reads c_t, not c_{t-1}
    o = sigmoid(x_t @ p["W_ox"].T + h_prev @ p["W_oh"].T + u_o + p["b_o"])  # eq. (9) / (18)
    tanh_c = tanh(c)
    h = o * tanh_c  # eq. (6)
    cache = dict(x=x_t, h_prev=h_prev, c_prev=c_prev, i=i, f=f, g=g, o=o, c=c, tanh_c=tanh_c,
                 u_i=u_i, u_f=u_f, u_o=u_o)
    return {"h": h, "c": c}, cache


def connected_step_backward(params, dstate, cache, *, squash, diagonal, cell_bias=False):
    """Backward of :func:`connected_step_forward` (reference/cells.md 2.5)."""
    p, k = params, cache
    dact = dtanh if squash else _dlinear
    dh = dstate["h"]
    ### BEGIN SOLUTION
    da_o = dh * k["tanh_c"] * dsigmoid(k["o"])  # dL/da_o: through eq. (6), sigma' of eq. (9)/(18)
    dz_o = da_o * dact(k["u_o"])  # dL/dz_o: through the tanh of eq. (9) (eq. 15 for gate o)
    dW_oc, dc_from_o = cell_term_backward(dz_o, p["W_oc"], k["c"], diagonal=diagonal)
    # dL/dc_t: carried + through eq. (6) + through the o-gate's read of c_t (before di/df/dg)
    dc = dstate["c"] + dh * k["o"] * dtanh(k["tanh_c"]) + dc_from_o
    da_i = dc * k["g"] * dsigmoid(k["i"])  # dL/da_i: eq. (4) then sigma' of eq. (7)/(16)
    da_f = dc * k["c_prev"] * dsigmoid(k["f"])  # dL/da_f: eq. (4) then sigma' of eq. (8)/(17)
    da_g = dc * k["i"] * dtanh(k["g"])  # dL/da_g: eq. (4) then tanh' of eq. (1)
    dz_i = da_i * dact(k["u_i"])  # delta-hat i_t, eq. (15) (WMC) / eq. (19) (peephole)
    dz_f = da_f * dact(k["u_f"])
    dW_ic, dc_from_i = cell_term_backward(dz_i, p["W_ic"], k["c_prev"], diagonal=diagonal)
    dW_fc, dc_from_f = cell_term_backward(dz_f, p["W_fc"], k["c_prev"], diagonal=diagonal)
    dc_prev = dc * k["f"] + dc_from_i + dc_from_f  # dL/dc_{t-1}: through f_t, W_ic and W_fc
    ### END SOLUTION

    pre = {"i": da_i, "f": da_f, "g": da_g, "o": da_o}
    grads, dx, dh_prev = _gate_input_grads(p, pre, k["x"], k["h_prev"])
    grads.update(W_ic=dW_ic, W_fc=dW_fc, W_oc=dW_oc)  # eq. (14) / (21) and the o-gate twin
    if cell_bias:
        grads.update(b_ic=dz_i.sum(axis=0), b_fc=dz_f.sum(axis=0), b_oc=dz_o.sum(axis=0))
    return _ordered(p, grads), dx, {"h": dh_prev, "c": dc_prev}


# ============================================================================================
# Cell classes
# ============================================================================================
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
    connection = None  # what the gates read from c: None, or (squash, diagonal, cell_bias)

    def param_shapes(self):
        H, X = self.hidden_size, self.input_size
        shapes = {f"W_{k}x": (H, X) for k in GATES}
        shapes |= {f"W_{k}h": (H, H) for k in GATES}
        shapes |= {f"b_{k}": (H,) for k in GATES}
        return shapes

    def gate_blocks(self):
        blocks = {k: [f"W_{k}x", f"W_{k}h", f"b_{k}"] for k in GATES}
        return blocks

    def gate_activations(self):
        return {"i": "sigmoid", "f": "sigmoid", "g": "tanh", "o": "sigmoid"}

    def init_params(self, rng):
        params = super().init_params(rng)
        params["b_f"] = params["b_f"] + float(self.options["forget_bias"])
        return params

    def check_options(self):
        fb = self.options["forget_bias"]
        if isinstance(fb, bool) or not isinstance(fb, (int, float)):
            from ..errors import ConfigError

            raise ConfigError(f"forget_bias must be a number; got {fb!r}")

    def step_forward(self, params, x_t, state):
        return lstm_step_forward(params, x_t, state)

    def step_backward(self, params, dstate, cache_t):
        return lstm_step_backward(params, dstate, cache_t)

    def sequence_forward(self, params, x, state):
        return fused_forward(params, x, state, self.connection)

    def sequence_backward(self, params, dh, cache, dstate):
        return fused_backward(params, dh, cache, dstate, self.connection)


class _ConnectedCell(LSTMCell):
    squash = False
    default_diagonal = True

    def check_options(self):
        super().check_options()
        from ..errors import ConfigError

        for name in ("diagonal", "cell_bias"):
            if not isinstance(self.options[name], bool):
                raise ConfigError(
                    f"option {name} of {self.kind!r} must be True or False; "
                    f"got {self.options[name]!r}"
                )

    @property
    def connection(self):
        return (self.squash, self.options["diagonal"], self.options["cell_bias"])

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

    def step_forward(self, params, x_t, state):
        squash, diagonal, cell_bias = self.connection
        return connected_step_forward(params, x_t, state, squash=squash, diagonal=diagonal,
                                      cell_bias=cell_bias)

    def step_backward(self, params, dstate, cache_t):
        squash, diagonal, cell_bias = self.connection
        return connected_step_backward(params, dstate, cache_t, squash=squash,
                                       diagonal=diagonal, cell_bias=cell_bias)


@register
class PeepholeCell(_ConnectedCell):
    """Peephole LSTM, eq. (16)-(18). ``diagonal=True`` (default): w_kc (H,); False: W_kc (H, H)."""

    kind = "peephole"
    squash = False
    equations = """
i_t = sigma(W_ix x_t + W_ih h_{t-1} + W_ic c_{t-1} + b_i)       (16)
f_t = sigma(W_fx x_t + W_fh h_{t-1} + W_fc c_{t-1} + b_f)       (17)
g_t, c_t as in (1), (4)
o_t = sigma(W_ox x_t + W_oh h_{t-1} + W_oc c_t + b_o)           (18)
h_t = o_t * tanh(c_t)                                            (6)
(diagonal=True: W_kc c is the elementwise product w_kc * c)
"""
    default_options = {"forget_bias": 0.0, "diagonal": True, "cell_bias": False}


@register
class WMCCell(_ConnectedCell):
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


# ============================================================================================
# Fused sequence path (shared by lstm, peephole, wmc)
# ============================================================================================
# Layout. The four gates of step t live side by side in one row block of a (T, B, 4H) buffer,
# in PACKED_ORDER = (o, i, f, g):
#
#     [ o | i | f | g ]      o, i, f: sigmoid gates [0, 3H);  i, f, g: what dL/dc_t feeds [H, 4H)
#
# so every group the loop touches at once is one contiguous slice.
#
# Activations without temporaries. The rows of the packed weights and biases are multiplied
# once per call by a power of two (exact), so that each gate needs only in-place passes:
#
#   tanh form (CuPy, and NumPy below B*H = 256): sigmoid rows x 1/2, g rows x 1;
#       o, i, f = 0.5 * tanh(a/2) + 0.5 = sigma(a);  g = tanh(a)
#   exp form (NumPy with B*H >= 256: NumPy's float64 tanh is scalar libm code, ~3x slower than
#   its exp; in float32 its exp is ~1.5x faster than its tanh, fwd+bwd 7-15% faster overall;
#   below 256 units the extra calls of this form cost more):
#       sigmoid rows x -1, g rows x -2;
#       o, i, f = 1 / (1 + exp(-a)) = sigma(a);     g = 2 / (1 + exp(-2a)) - 1 = tanh(a)
#   exp(-a) may overflow to inf (a < -709 in float64, a < -88 in float32); 1 / (1 + inf) = 0
#   is the right limit, so the overflow warning is silenced for the loop. Both forms are exact
#   identities.
#
# Per step the forward does the one recurrent GEMM plus ~9 in-place ufunc calls on preallocated
# (B, H) or (B, 4H) buffers; the backward computes every local derivative that does not depend
# on the recurrence for a block of CHUNK steps at once (vectorised, and small enough to still be
# in cache when the loop reads it: over all T at once it was ~35% slower, memory-bound), so the
# loop body is the recurrent GEMM plus ~6 in-place multiplies. The step loops allocate nothing;
# the backward allocates one small block of local derivatives every CHUNK steps.
# With Numba installed (default on), compiled CPU kernels replace the gate block of lstm,
# peephole and wmc (npcell/cpu_kernels.py; they take the pre-activations unscaled). On CuPy,
# `npcell.engine.use_fused_kernels(True)` replaces the LSTM gate block of each step by one
# ElementwiseKernel launch (forward) and one (backward). The plain path below stays the
# reference, and tests compare each fast path with it.
_O, _I, _F, _G = 0, 1, 2, 3  # block index of each gate in PACKED_ORDER
CHUNK = 8  # time steps whose local derivatives the backward computes at once (cache-sized)


class _GateMath:
    """Which form (see the note above) and the row scales it folds into the packed weights."""

    EXP_FORM_MIN_UNITS = 256  # B * H from which the exp form wins (measured, float64)

    def __init__(self, xp, dtype, units, exp_form=None):
        if exp_form is None:
            exp_form = xp.__name__ == "numpy" and units >= self.EXP_FORM_MIN_UNITS
        self.exp_form = exp_form
        self.sig_scale, self.g_scale = (-1.0, -2.0) if self.exp_form else (0.5, 1.0)
        self.xp = xp

    def sigmoid_(self, z):
        """z holds sig_scale * a; make it sigma(a), in place."""
        if self.exp_form:
            self.xp.exp(z, out=z)
            z += 1.0
            self.xp.reciprocal(z, out=z)
        else:
            self.xp.tanh(z, out=z)
            z *= 0.5
            z += 0.5

    def tanh_(self, z):
        """z holds g_scale * a; make it tanh(a), in place."""
        if self.exp_form:
            self.sigmoid_(z)  # sigma(2a)
            z *= 2.0
            z -= 1.0  # tanh(a) = 2 sigma(2a) - 1
        else:
            self.xp.tanh(z, out=z)

    def tanh_into(self, a, out):
        """out <- tanh(a)."""
        if self.exp_form:
            self.xp.multiply(a, self.g_scale, out=out)
            self.tanh_(out)
        else:
            self.xp.tanh(a, out=out)

    def quiet(self):
        """A context that silences exp's harmless overflow (NumPy exp form only)."""
        return self.xp.errstate(over="ignore") if self.exp_form else contextlib.nullcontext()


def _kernel_path(x, connection):
    """Which fused gate kernels run on ``x``: 'numba' (NumPy: lstm, peephole, wmc), 'cupy'
    (the plain LSTM only), or None (plain path). ``npcell.engine.active`` holds the switch."""
    if not engine.active(x):
        return None
    if array_module(x).__name__ == "numpy":
        return "numba"
    return "cupy" if connection is None else None


def _doubling_overflows(params, xp, dtype):
    """True when a gate weight or bias is so large (> max/2, e.g. 1e308) that the exp form's
    row scale of -2 would overflow it to inf; the forward then takes the tanh form (scales 1/2
    and 1), which computes the same function without that overflow."""
    limit = float(xp.finfo(dtype).max) / 2
    return any(float(xp.abs(params[f"{prefix}_{k}{suffix}"]).max()) > limit
               for k in GATES for prefix, suffix in (("W", "x"), ("W", "h"), ("b", "")))


def pack(params, part, gates=PACKED_ORDER, sigmoid_scale=1.0, g_scale=1.0):
    """Stack one part of every gate into one array, in PACKED_ORDER (o, i, f, g).

    part 'x' -> [W_ox; W_ix; W_fx; W_gx] (4H, X); 'h' -> the W_kh (4H, H); 'b' -> the b_k (4H,).
    ``sigmoid_scale`` multiplies the rows of the sigmoid gates (o, i, f) and ``g_scale`` those of
    g; the forward passes its gate-math scales (see the note above), the backward none.
    """
    pattern = {"x": "W_{}x", "h": "W_{}h", "b": "b_{}"}[part]
    arrays = [params[pattern.format(k)] for k in gates]
    packed = array_module(*arrays).concatenate(arrays, axis=0)
    H = arrays[0].shape[0]
    for n, k in enumerate(gates):
        scale = g_scale if k == "g" else sigmoid_scale
        if scale != 1.0:
            packed[n * H : (n + 1) * H] *= scale
    return packed


def _cell_reads(params, connection, xp, *, sig_scale):
    """The packed cell-to-gate weights of peephole/WMC for the fused path (None for lstm).

    Returns a dict: ``W_if`` (2H, H) full or (2, H) diagonal for i, f (which read c_{t-1}),
    ``W_o`` (H, H) or (H,) for o (which reads c_t), the biases inside the read (or None), and
    The forward adds the peephole's read to the scaled pre-activation, so its weights get the
    sigmoid rows' scale ``sig_scale`` too (exact); the WMC's read is squashed first, so the
    forward scales it after its tanh instead. The backward asks for the true weights (1.0).
    """
    if connection is None:
        return None
    squash, diagonal, cell_bias = connection
    scale = 1.0 if squash else sig_scale
    stack = xp.stack if diagonal else xp.concatenate
    reads = dict(
        squash=squash, diagonal=diagonal,
        W_if=stack([params["W_ic"], params["W_fc"]], axis=0) * scale,
        W_o=params["W_oc"] * scale,
        b_if=xp.concatenate([params["b_ic"], params["b_fc"]]) * scale if cell_bias else None,
        b_o=params["b_oc"] * scale if cell_bias else None,
    )
    return reads


def _read_cell(c, W, bias, diagonal, out):
    """out <- W c [+ bias]: diagonal W (k, H) multiplies c (B, H) into out (B, k, H) viewed as
    (B, k*H); a full W (k*H, H) is a GEMM into out (B, k*H)."""
    if diagonal:
        B, H = c.shape
        array_module(c).multiply(c[:, None, :], W, out=out.reshape(B, -1, H))
    else:
        array_module(c).matmul(c, W.T, out=out)
    if bias is not None:
        out += bias


def fused_forward(params, x, state, connection):
    """Forward over all T steps. x (T, B, X) -> h (T, B, H), final state, cache dict.

    Cache (the stored activations, per step t): ``gates`` (T, B, 4H) the four gate activations
    in PACKED_ORDER, ``hs``/``cs`` (T+1, B, H) h_t and c_t with the initial state at index 0,
    ``tanh_cs`` (T, B, H) tanh(c_t), ``x`` (a reference to the input); WMC adds ``u_if``
    (T, B, 2H) and ``u_o`` (T, B, H), the squashed cell reads tanh(W_kc c) that tanh' needs.
    """
    xp = array_module(x)
    T, B, X = x.shape
    H = state["h"].shape[1]
    dtype = x.dtype
    path = _kernel_path(x, connection)
    if path == "numba":  # the CPU kernels take the pre-activations as they are
        sig_scale, g_scale = 1.0, 1.0
    else:
        act = _GateMath(xp, dtype, units=B * H)
        if act.exp_form and _doubling_overflows(params, xp, dtype):  # g rows x -2 would be inf
            act = _GateMath(xp, dtype, units=B * H, exp_form=False)
        sig_scale, g_scale = act.sig_scale, act.g_scale
    scales = dict(sigmoid_scale=sig_scale, g_scale=g_scale)
    W_x = pack(params, "x", **scales)
    # W_h^T made contiguous once per call: BLAS multiplies h (B, H) by it up to ~15% faster
    # than by the transposed view (measured at B=32, H=512 and B=1, H=32; equal at H=128).
    W_hT = xp.ascontiguousarray(pack(params, "h", **scales).T)
    b = pack(params, "b", **scales)
    # One GEMM for the input projection of all T steps; the buffer then holds the gates.
    # The big buffers come from the workspace: reused across calls once nothing holds them.
    gates = workspace.empty(xp, (T, B, 4 * H), dtype)
    inputs = _small_input(path, x, W_x)
    if inputs is None:  # else the CPU kernels' loop projects x_t step by step
        xp.matmul(x.reshape(T * B, X), W_x.T, out=gates.reshape(T * B, 4 * H))
    if path != "numba":  # the CPU kernels add b as they go
        gates += b
    hs = workspace.empty(xp, (T + 1, B, H), dtype)
    cs = workspace.empty(xp, (T + 1, B, H), dtype)
    tanh_cs = workspace.empty(xp, (T, B, H), dtype)
    hs[0], cs[0] = state["h"], state["c"]
    recurrent = xp.empty((B, 4 * H), dtype=dtype)  # per-step temporaries, allocated once
    i_times_g = xp.empty((B, H), dtype=dtype)
    reads = _cell_reads(params, connection, xp, sig_scale=sig_scale)
    cache = dict(x=x, gates=gates, hs=hs, cs=cs, tanh_cs=tanh_cs)
    if reads is not None:
        if reads["squash"]:
            cache["u_if"] = workspace.empty(xp, (T, B, 2 * H), dtype)
            cache["u_o"] = workspace.empty(xp, (T, B, H), dtype)
    if path == "numba" and reads is None:  # the gate block below as one compiled pass
        cpu_kernels.forward_loop(gates, hs, cs, tanh_cs, W_hT, b, recurrent, inputs)
    elif path == "numba":  # two passes, around the o gate's read of c_t
        cpu_kernels.connected_forward_loop(gates, hs, cs, tanh_cs, W_hT, b, recurrent, reads,
                                           _read_cell, cache.get("u_if"), cache.get("u_o"),
                                           inputs)
    elif path == "cupy":
        step = kernels.lstm_forward_step  # the gate block below as one CuPy kernel launch
        for t in range(T):
            xp.matmul(hs[t], W_hT, out=recurrent)
            step(gates[t], recurrent, cs[t], cs[t + 1], tanh_cs[t], hs[t + 1])
    else:
        with act.quiet():
            _forward_loop(gates, hs, cs, tanh_cs, W_hT, reads, cache, act, recurrent, i_times_g)
    return hs[1:], {"h": hs[T].copy(), "c": cs[T].copy()}, cache


def _small_input(path, x, W_x):
    """A cpu_kernels.SmallInput when the CPU kernels run and X is small enough for the loops
    to take the input term step by step (see there why); else None (the hoisted GEMMs)."""
    T, B, X = x.shape
    if path == "numba" and cpu_kernels.loops_take_input(B, X, W_x.shape[0] // 4):
        return cpu_kernels.SmallInput(x, W_x)
    return None


def _forward_loop(gates, hs, cs, tanh_cs, W_hT, reads, cache, act, recurrent, i_times_g):
    """The time loop of :func:`fused_forward` (plain path): fills gates, hs, cs, tanh_cs."""
    xp = act.xp
    T, B, H4 = gates.shape
    H = H4 // 4
    gates4 = gates.reshape(T, B, 4, H)  # the same memory, one gate per index of axis 2
    if reads is not None:
        read_if = xp.empty((B, 2 * H), dtype=gates.dtype)
        read_o = xp.empty((B, H), dtype=gates.dtype)
        u_if, u_o = cache.get("u_if"), cache.get("u_o")
    for t in range(T):
        a, a4 = gates[t], gates4[t]  # (B, 4H) and its (B, 4, H) view
        o, i, f, g = a4[:, _O], a4[:, _I], a4[:, _F], a4[:, _G]
        c_prev, c = cs[t], cs[t + 1]
        xp.matmul(hs[t], W_hT, out=recurrent)  # the one recurrent GEMM of the LSTM
        a += recurrent  # pre-activations of eq. (1), (2), (3), (5), rows scaled
        if reads is None:
            act.sigmoid_(a4[:, :_G])  # o, i, f = sigma(a), eq. (5), (2), (3)
            act.tanh_(g)  # g = tanh(a_g), eq. (1)
        else:  # i, f read c_{t-1}: eq. (7)-(8) / (16)-(17)
            _read_cell(c_prev, reads["W_if"], reads["b_if"], reads["diagonal"], read_if)
            if reads["squash"]:
                act.tanh_into(read_if, u_if[t])  # tanh(W_kc c_{t-1} [+ b_kc]), eq. (7)-(8)
                xp.multiply(u_if[t], act.sig_scale, out=read_if)
            a[:, H : 3 * H] += read_if
            act.sigmoid_(a4[:, _I:_G])  # i, f: eq. (7)-(8) / (16)-(17)
            act.tanh_(g)  # g, eq. (1)
        xp.multiply(f, c_prev, out=c)
        xp.multiply(i, g, out=i_times_g)
        c += i_times_g  # c_t = f c_{t-1} + i g, eq. (4)
        if reads is not None:  # o reads the new c_t: eq. (9) / (18)
            _read_cell(c, reads["W_o"], reads["b_o"], reads["diagonal"], read_o)
            if reads["squash"]:
                act.tanh_into(read_o, u_o[t])
                xp.multiply(u_o[t], act.sig_scale, out=read_o)
            o += read_o
            act.sigmoid_(o)  # o_t, eq. (9) / (18)
        act.tanh_into(c, tanh_cs[t])
        xp.multiply(o, tanh_cs[t], out=hs[t + 1])  # h_t = o_t tanh(c_t), eq. (6)


def local_derivatives(cache, connection, steps=slice(None), D_out=None):
    """Everything backward multiplies by that does not depend on the recurrence, for the time
    steps ``steps`` (a slice; default all T). The backward asks for a few steps at a time, just
    before its loop reaches them, so the arrays are still in cache when the loop reads them.

    Returns ``D`` (T', B, 4H) (written into ``D_out`` when given), PACKED_ORDER blocks, which
    the backward loop turns into dL/da in place: D_o = tanh(c_t) sigma'(o) (times dL/dh_t gives
    dL/da_o), D_i = g sigma'(i), D_f = c_{t-1} sigma'(f), D_g = i tanh'(g) (times dL/dc_t give
    dL/da_i, da_f, da_g);
    ``dc_dh`` (T, B, H) = o tanh'(c_t), the path dL/dh_t -> dL/dc_t of eq. (6); and for WMC
    ``du_if`` (T, B, 2H), ``du_o`` (T, B, H) = tanh' of the squashed cell reads.
    """
    start = steps.start or 0
    gates, tanh_cs = cache["gates"][steps], cache["tanh_cs"][steps]
    c_prev = cache["cs"][:-1][steps]
    xp = array_module(gates)
    T, B, H4 = gates.shape
    H = H4 // 4
    A = gates.reshape(T, B, 4, H)
    D_flat = xp.empty_like(gates) if D_out is None else D_out
    D = D_flat.reshape(T, B, 4, H)
    sig, sig_d = A[:, :, :_G], D[:, :, :_G]
    xp.subtract(1.0, sig, out=sig_d)
    sig_d *= sig  # sigma' = s (1 - s) for o, i, f
    D[:, :, _O] *= tanh_cs  # D_o: eq. (6) then sigma' of eq. (5)
    D[:, :, _I] *= A[:, :, _G]  # D_i: i g of eq. (4) then sigma' of eq. (2)
    D[:, :, _F] *= c_prev  # D_f: f c_{t-1} of eq. (4) then sigma' of eq. (3)
    g, D_g = A[:, :, _G], D[:, :, _G]
    xp.multiply(g, g, out=D_g)
    xp.subtract(1.0, D_g, out=D_g)
    D_g *= A[:, :, _I]  # D_g: i g of eq. (4) then tanh' of eq. (1)
    dc_dh = tanh_cs * tanh_cs
    xp.subtract(1.0, dc_dh, out=dc_dh)
    dc_dh *= A[:, :, _O]  # dc_t/dh_t: o_t tanh'(c_t), eq. (6)
    out = dict(D=D_flat, dc_dh=dc_dh)
    if connection is not None and connection[0]:  # WMC: tanh' of the cell reads
        for name in ("u_if", "u_o"):
            u = cache[name][steps]
            du = u * u
            xp.subtract(1.0, du, out=du)
            out["d" + name] = du
    out["start"] = start
    return out


def fused_backward(params, dh, cache, dstate, connection):
    """Backward over all T steps; returns (grads, dx (T, B, X), dstate0).

    dh (T, B, H) is dL/dh_t from the loss at each step; dstate the gradient of the final state.
    The cache is read, never modified, so backward may run twice on one forward.
    """
    x, gates, hs, cs = (cache[k] for k in ("x", "gates", "hs", "cs"))
    xp = array_module(x)
    T, B, X = x.shape
    H = hs.shape[2]
    dtype = x.dtype
    W_x, W_h = pack(params, "x"), pack(params, "h")  # the true weights: dL/da, not dL/d(a/2)
    reads = _cell_reads(params, connection, xp, sig_scale=1.0)
    dh_next = xp.empty((B, H), dtype=dtype)  # dL/dh_{t-1} from step t: the recurrent GEMM
    dh_next[...] = dstate["h"]
    dc = dstate["c"].copy()  # dL/dc_t, carried backwards and updated in place
    dh_t = xp.empty((B, H), dtype=dtype)
    scratch = xp.empty((B, 2 * H), dtype=dtype)

    path = _kernel_path(x, connection)
    diagonal_grads = None  # (dw_if, dw_o) when the kernels summed them on the way
    inputs = _small_input(path, x, W_x)  # then dx, dW_x, db come from the loop too
    if inputs is not None:
        inputs.start_backward()
    dgates = workspace.empty(xp, gates.shape, dtype)  # dL/da (the plain path: D first)
    if reads is not None:
        squash, diagonal = reads["squash"], reads["diagonal"]
        W_if, W_o = reads["W_if"], reads["W_o"]
        if squash:  # WMC: dL/dz of the squashed reads, delta-hat of eq. (15)
            dz_if = workspace.empty(xp, (T, B, 2 * H), dtype)
            dz_o = workspace.empty(xp, (T, B, H), dtype)
        else:  # peephole: dz = da, read straight from dgates
            dz_if, dz_o = dgates[:, :, H : 3 * H], dgates[:, :, :H]
    if path == "numba" and reads is None:
        cpu_kernels.backward_loop(gates, cs, cache["tanh_cs"], dh, W_h, dgates, dh_next, dc,
                                  inputs)
    elif path == "numba":
        diagonal_grads = cpu_kernels.connected_backward_loop(
            gates, cs, cache["tanh_cs"], dh, W_h, dgates, dh_next, dc, reads, _read_back,
            scratch, cache.get("u_if"), cache.get("u_o"), dz_if, dz_o, inputs)
    elif path == "cupy":
        dc_prev = xp.empty_like(dc)
        step = kernels.lstm_backward_step  # the gate block below as one CuPy kernel launch
        for t in range(T - 1, -1, -1):
            step(gates[t], cs[t], cache["tanh_cs"][t], dh[t], dh_next, dc, dgates[t], dc_prev)
            dc, dc_prev = dc_prev, dc
            xp.matmul(dgates[t], W_h, out=dh_next)  # dL/dh_{t-1}: the one recurrent GEMM back
    else:
        D4 = dgates.reshape(T, B, 4, H)  # local derivatives, then dL/da in place
        A4 = gates.reshape(T, B, 4, H)
        local = None
        for t in range(T - 1, -1, -1):
            if local is None or t < local["start"]:  # the next block of CHUNK steps back
                first = max(0, t + 1 - CHUNK)
                block = slice(first, t + 1)
                local = local_derivatives(cache, connection, block, dgates[block])
            k = t - local["start"]  # this step's row in the block's arrays
            d, d4 = dgates[t], D4[t]
            xp.add(dh[t], dh_next, out=dh_t)  # dL/dh_t: this step's loss + carried from t+1
            d4[:, _O] *= dh_t  # dL/da_o: through eq. (6), sigma' of eq. (5)/(9)/(18)
            xp.multiply(dh_t, local["dc_dh"][k], out=scratch[:, :H])
            dc += scratch[:, :H]  # dL/dc_t: carried + through eq. (6)
            if reads is not None:  # the o-gate read c_t: its term joins dL/dc_t before di/df/dg
                if squash:
                    xp.multiply(d4[:, _O], local["du_o"][k], out=dz_o[t])  # through tanh of (9)
                _read_back(dz_o[t], W_o, diagonal, dc, scratch)  # dL/dc_t += W_oc^T dz_o
            d4[:, _I:] *= dc[:, None, :]  # dL/da_i, da_f, da_g: through eq. (4)
            dc *= A4[t, :, _F]  # dL/dc_{t-1}: the constant error carousel f_t of eq. (4) ...
            if reads is not None:  # ... plus the reads of c_{t-1} by i and f (W_ic, W_fc)
                if squash:  # delta-hat i_t, f_t: eq. (15)
                    xp.multiply(d[:, H : 3 * H], local["du_if"][k], out=dz_if[t])
                _read_back(dz_if[t], W_if, diagonal, dc, scratch)
            xp.matmul(d, W_h, out=dh_next)  # dL/dh_{t-1}: the one recurrent GEMM back

    # Weight gradients: one GEMM over all T*B rows each (eq. (12)-(13) summed over t and b).
    flat = dgates.reshape(T * B, 4 * H)
    dW_h = flat.T @ hs[:-1].reshape(T * B, H)
    if inputs is None:
        dW_x = flat.T @ x.reshape(T * B, X)
        db = flat.sum(axis=0)
        dx = (flat @ W_x).reshape(T, B, X)  # dL/dx_t for every t at once
    else:  # summed by the loop, step by step
        (dW_x, db), dx = inputs.grads(), inputs.dx
    grads = {}
    for n, k in enumerate(PACKED_ORDER):
        rows = slice(n * H, (n + 1) * H)
        grads[f"W_{k}x"], grads[f"W_{k}h"], grads[f"b_{k}"] = dW_x[rows], dW_h[rows], db[rows]
    if reads is not None:
        c_prev = cs[:-1].reshape(T * B, H)
        c_now = cs[1:].reshape(T * B, H)
        dzf = dz_if.reshape(T * B, 2 * H)
        dzo = dz_o.reshape(T * B, H)
        if diagonal_grads is not None:  # eq. (21) / (14) diagonal, summed by the kernels
            dw_if, grads["W_oc"] = diagonal_grads
            grads["W_ic"], grads["W_fc"] = dw_if[:H], dw_if[H:]
        elif diagonal:
            grads["W_ic"] = xp.einsum("nh,nh->h", dzf[:, :H], c_prev)  # sum over t and b
            grads["W_fc"] = xp.einsum("nh,nh->h", dzf[:, H:], c_prev)
            grads["W_oc"] = xp.einsum("nh,nh->h", dzo, c_now)  # pairs with c_t
        else:
            dW_ifc = dzf.T @ c_prev  # eq. (14) / (21), summed over t and the batch
            grads["W_ic"], grads["W_fc"] = dW_ifc[:H], dW_ifc[H:]
            grads["W_oc"] = dzo.T @ c_now  # pairs with c_t
        if reads["b_if"] is not None:
            dbc = dzf.sum(axis=0)
            grads.update(b_ic=dbc[:H], b_fc=dbc[H:], b_oc=dzo.sum(axis=0))
    return _ordered(params, grads), dx, {"h": dh_next, "c": dc}


def _read_back(dz, W, diagonal, dc, scratch):
    """dc += dL/dc through a cell read z = W c: dz (B, k*H) -> W^T dz (full W (k*H, H)) or
    sum_k w_k * dz_k (diagonal W (k, H)); ``scratch`` (B, >= k*H) avoids allocation."""
    xp = array_module(dz)
    B, H = dc.shape
    if diagonal:
        k = W.shape[0] if W.ndim == 2 else 1
        prod = scratch[:, : k * H]
        xp.multiply(dz.reshape(B, k, H), W.reshape(k, H), out=prod.reshape(B, k, H))
        for n in range(k):
            dc += prod[:, n * H : (n + 1) * H]
    else:
        prod = scratch[:, :H]
        xp.matmul(dz, W, out=prod)
        dc += prod


# ----- small helpers ------------------------------------------------------------------------
def _linear(a):
    return a


def _dlinear(u):
    return 1.0


def _ordered(params, grads):
    return {name: grads[name] for name in params}
