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

from ..backend import array_module
from ..ops import dsigmoid, dtanh, sigmoid
from .base import Cell, register

GATES = ("i", "f", "g", "o")
# Packed order inside the fused path: the three sigmoid gates first, then the tanh candidate,
# so one in-place sigmoid covers [0, 3H) and one tanh covers [3H, 4H).
PACKED_ORDER = ("i", "f", "o", "g")


# ============================================================================================
# LSTM, eq. (1)-(6)
# ============================================================================================
def lstm_step_forward(params, x_t, state):
    """One LSTM step. x_t (B, X); state {'h': (B, H), 'c': (B, H)} -> (new state, cache)."""
    p = params
    h_prev, c_prev = state["h"], state["c"]
    g = _tanh(x_t @ p["W_gx"].T + h_prev @ p["W_gh"].T + p["b_g"])  # eq. (1)
    i = sigmoid(x_t @ p["W_ix"].T + h_prev @ p["W_ih"].T + p["b_i"])  # eq. (2)
    f = sigmoid(x_t @ p["W_fx"].T + h_prev @ p["W_fh"].T + p["b_f"])  # eq. (3)
    c = f * c_prev + i * g  # eq. (4)
    o = sigmoid(x_t @ p["W_ox"].T + h_prev @ p["W_oh"].T + p["b_o"])  # eq. (5)
    tanh_c = _tanh(c)
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
    g = _tanh(x_t @ p["W_gx"].T + h_prev @ p["W_gh"].T + p["b_g"])  # eq. (1)
    i = sigmoid(x_t @ p["W_ix"].T + h_prev @ p["W_ih"].T + u_i + p["b_i"])  # eq. (7) / (16)
    f = sigmoid(x_t @ p["W_fx"].T + h_prev @ p["W_fh"].T + u_f + p["b_f"])  # eq. (8) / (17)
    c = f * c_prev + i * g  # eq. (4)
    u_o = read("o", c)  # the output gate reads c_t, not c_{t-1}
    o = sigmoid(x_t @ p["W_ox"].T + h_prev @ p["W_oh"].T + u_o + p["b_o"])  # eq. (9) / (18)
    tanh_c = _tanh(c)
    h = o * tanh_c  # eq. (6)
    cache = dict(x=x_t, h_prev=h_prev, c_prev=c_prev, i=i, f=f, g=g, o=o, c=c, tanh_c=tanh_c,
                 u_i=u_i, u_f=u_f, u_o=u_o)
    return {"h": h, "c": c}, cache


def connected_step_backward(params, dstate, cache, *, squash, diagonal, cell_bias=False):
    """Backward of :func:`connected_step_forward` (reference/cells.md 2.5)."""
    p, k = params, cache
    dact = dtanh if squash else _dlinear
    dh = dstate["h"]
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
def pack(params, part, gates=PACKED_ORDER):
    """Stack one part of every gate into one array: part 'x' -> [W_ix; W_fx; W_ox; W_gx]
    (4H, X), 'h' -> the W_kh (4H, H), 'b' -> the b_k (4H,)."""
    pattern = {"x": "W_{}x", "h": "W_{}h", "b": "b_{}"}[part]
    arrays = [params[pattern.format(k)] for k in gates]
    return array_module(*arrays).concatenate(arrays, axis=0)


def fused_forward(params, x, state, connection):
    """Forward over all T steps. x (T, B, X) -> h (T, B, H), final state, cache dict."""
    xp = array_module(x)
    T, B, _ = x.shape
    H = state["h"].shape[1]
    W_x, W_h, b = pack(params, "x"), pack(params, "h"), pack(params, "b")
    # One GEMM for the input projection of all T steps; the buffer then holds the gates.
    gates = (x.reshape(T * B, -1) @ W_x.T + b).reshape(T, B, 4 * H)
    hs = xp.empty((T + 1, B, H), dtype=x.dtype)
    cs = xp.empty((T + 1, B, H), dtype=x.dtype)
    tanh_cs = xp.empty((T, B, H), dtype=x.dtype)
    hs[0], cs[0] = state["h"], state["c"]
    recurrent = xp.empty((B, 4 * H), dtype=x.dtype)
    if connection is not None:
        squash, diagonal, cell_bias = connection
        u_if = xp.empty((T, B, 2 * H), dtype=x.dtype)
        u_o = xp.empty((T, B, H), dtype=x.dtype)
        W_ifc = xp.concatenate([params["W_ic"], params["W_fc"]], axis=0)
        b_ifc = xp.concatenate([params["b_ic"], params["b_fc"]]) if cell_bias else None
        b_oc = params["b_oc"] if cell_bias else None
    for t in range(T):
        a = gates[t]
        xp.matmul(hs[t], W_h.T, out=recurrent)  # the one recurrent GEMM of the LSTM
        a += recurrent
        if connection is not None:  # i, f read c_{t-1}: eq. (7)-(8) / (16)-(17)
            if diagonal:
                u = xp.concatenate([params["W_ic"] * cs[t], params["W_fc"] * cs[t]], axis=1)
            else:
                u = cs[t] @ W_ifc.T
            if b_ifc is not None:
                u += b_ifc
            u_if[t] = xp.tanh(u) if squash else u
            a[:, : 2 * H] += u_if[t]
        _sigmoid_(a[:, : 2 * H])  # i, f
        xp.tanh(a[:, 3 * H :], out=a[:, 3 * H :])  # g, eq. (1)
        i, f, g = a[:, :H], a[:, H : 2 * H], a[:, 3 * H :]
        c = cs[t + 1]
        xp.multiply(f, cs[t], out=c)
        c += i * g  # eq. (4)
        if connection is not None:  # o reads c_t: eq. (9) / (18)
            u = params["W_oc"] * c if diagonal else c @ params["W_oc"].T
            if b_oc is not None:
                u += b_oc
            u_o[t] = xp.tanh(u) if squash else u
            a[:, 2 * H : 3 * H] += u_o[t]
        _sigmoid_(a[:, 2 * H : 3 * H])  # o
        xp.tanh(c, out=tanh_cs[t])
        xp.multiply(a[:, 2 * H : 3 * H], tanh_cs[t], out=hs[t + 1])  # eq. (6)
    cache = dict(x=x, gates=gates, hs=hs, cs=cs, tanh_cs=tanh_cs)
    if connection is not None:
        cache.update(u_if=u_if, u_o=u_o)
    return hs[1:], {"h": hs[T].copy(), "c": cs[T].copy()}, cache


def fused_backward(params, dh, cache, dstate, connection):
    """Backward over all T steps; returns (grads, dx (T, B, X), dstate0)."""
    x, gates, hs, cs, tanh_cs = (cache[k] for k in ("x", "gates", "hs", "cs", "tanh_cs"))
    xp = array_module(x)
    T, B, X = x.shape
    H = hs.shape[2]
    W_x, W_h = pack(params, "x"), pack(params, "h")
    dgates = xp.empty((T, B, 4 * H), dtype=x.dtype)
    dh_next, dc_next = dstate["h"].copy(), dstate["c"].copy()
    if connection is not None:
        squash, diagonal, cell_bias = connection
        dz_if = xp.empty((T, B, 2 * H), dtype=x.dtype)
        dz_o = xp.empty((T, B, H), dtype=x.dtype)
        W_ifc = xp.concatenate([params["W_ic"], params["W_fc"]], axis=0)
    for t in range(T - 1, -1, -1):
        a, da = gates[t], dgates[t]
        i, f, o, g = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
        tanh_c = tanh_cs[t]
        dh_t = dh[t] + dh_next
        da[:, 2 * H : 3 * H] = dh_t * tanh_c * dsigmoid(o)  # dL/da_o: through eq. (6)
        dc = dc_next + dh_t * o * dtanh(tanh_c)  # dL/dc_t: carried + through eq. (6)
        if connection is not None:  # the o-gate read c_t: its term joins dc_t first
            dz = da[:, 2 * H : 3 * H] * dtanh(cache["u_o"][t]) if squash else da[:, 2 * H : 3 * H]
            dz_o[t] = dz
            dc += dz * params["W_oc"] if diagonal else dz @ params["W_oc"]
        da[:, :H] = dc * g * dsigmoid(i)  # dL/da_i: through eq. (4)
        da[:, H : 2 * H] = dc * cs[t] * dsigmoid(f)  # dL/da_f: through eq. (4)
        da[:, 3 * H :] = dc * i * dtanh(g)  # dL/da_g: through eq. (4)
        dc_next = dc * f  # dL/dc_{t-1}: through f_t ...
        if connection is not None:  # ... and through W_ic, W_fc
            dz = da[:, : 2 * H] * dtanh(cache["u_if"][t]) if squash else da[:, : 2 * H]
            dz_if[t] = dz
            if diagonal:
                dc_next += dz[:, :H] * params["W_ic"] + dz[:, H:] * params["W_fc"]
            else:
                dc_next += dz @ W_ifc
        dh_next = da @ W_h  # dL/dh_{t-1}: the one recurrent GEMM back
    # Weight gradients: one GEMM over all T*B rows each.
    flat = dgates.reshape(T * B, 4 * H)
    dW_x = flat.T @ x.reshape(T * B, X)
    dW_h = flat.T @ hs[:-1].reshape(T * B, H)
    db = flat.sum(axis=0)
    dx = (flat @ W_x).reshape(T, B, X)
    grads = {}
    for n, k in enumerate(PACKED_ORDER):
        rows = slice(n * H, (n + 1) * H)
        grads[f"W_{k}x"], grads[f"W_{k}h"], grads[f"b_{k}"] = dW_x[rows], dW_h[rows], db[rows]
    if connection is not None:
        c_prev = cs[:-1].reshape(T * B, H)
        c_now = cs[1:].reshape(T * B, H)
        dzf = dz_if.reshape(T * B, 2 * H)
        dzo = dz_o.reshape(T * B, H)
        if diagonal:
            grads["W_ic"] = (dzf[:, :H] * c_prev).sum(axis=0)
            grads["W_fc"] = (dzf[:, H:] * c_prev).sum(axis=0)
            grads["W_oc"] = (dzo * c_now).sum(axis=0)
        else:
            dW_ifc = dzf.T @ c_prev  # eq. (14) / (21), summed over t and the batch
            grads["W_ic"], grads["W_fc"] = dW_ifc[:H], dW_ifc[H:]
            grads["W_oc"] = dzo.T @ c_now  # pairs with c_t
        if cell_bias:
            dbc = dzf.sum(axis=0)
            grads.update(b_ic=dbc[:H], b_fc=dbc[H:], b_oc=dzo.sum(axis=0))
    return _ordered(params, grads), dx, {"h": dh_next, "c": dc_next}


# ----- small helpers ------------------------------------------------------------------------
def _tanh(a):
    return array_module(a).tanh(a)


def _linear(a):
    return a


def _dlinear(u):
    return 1.0


def _sigmoid_(a):
    """In-place sigmoid of a view, via tanh (finite for any input, no temporaries)."""
    xp = array_module(a)
    a *= 0.5
    xp.tanh(a, out=a)
    a += 1.0
    a *= 0.5


def _ordered(params, grads):
    return {name: grads[name] for name in params}
