"""Fast-weight cells: ``fw_rnn`` (Ba et al. 2016) and ``fw_lstm`` (Keller, Sridhar & Wang 2018).

A fast-weight matrix A is a per-sequence associative memory carried in the state next to h (and
c): every step decays it by lambda and writes an outer product w w^T scaled by eta; the cell then
reads it by a matrix-vector product A v. A is a state, not a parameter: it has no gradient of
its own, but BPTT carries its adjoint dL/dA backward, dL/dA_{t-1} = lambda * dL/dA_t (total).

Shapes: x_t (B, X); h, c (B, H); A (B, N, N) with N = H (fw_rnn, fw_lstm variant A) or 4H
(fw_lstm variant B); A_0 = 0 by default. W is (out, in). Equation labels (FW1)-(FW3) and
(FWL1)-(FWL7) are npcell's; the papers' numbering is not used.

Reading convention: the read is r = A v (column vectors; r_b = A_b v_b). Ba writes row vectors,
v A; the two agree for every A grown from A_0 = 0 (a sum of outer products w w^T is symmetric)
and differ only for a non-symmetric A_0 supplied by the caller.

Write and query switches (docs/derivations/fastweights.md, "Write and query"):

* ``fw_write='prev_h'``: write the previous output, A_t = lam A_{t-1} + eta h_{t-1} h_{t-1}^T
  (Ba's equation). ``'prelim'``: write the vector computed this step before the fast-weight read
  (the FW-RNN preliminary vector; the FW-LSTM candidate g or gate vector), as in the co-authors'
  and the first author's code.
* ``fw_query='new_A'``: read A_t, after this step's write (Ba's equation, both authors' code).
  ``'old_A'``: read A_{t-1}, before it.

The backward, for a write A_t = lam A_{t-1} + eta w w^T and a read r = A_q v (A_q = A_t or
A_{t-1}), with dr = dL/dr and G = dL/dA_t (total: from step t+1 plus dr v^T when A_q = A_t)::

    dL/dA_q  += dr v^T              dL/dv += A_q^T dr
    dL/dw     = eta (G + G^T) w     dL/dA_{t-1} = lam G  (+ dr v^T when A_q = A_{t-1})
"""

from __future__ import annotations

import numpy  # host-side initial values only; the math below goes through the arrays' module

from ..backend import array_module
from ..errors import ConfigError, check_int
from .base import Cell, register, require_option
from .layernorm import layer_norm_backward, layer_norm_forward
from .lnlstm import (
    GATES,
    check_real_option,
    join_gates,
    ln_init,
    project,
    project_backward,
    split_gates,
    stack_gates,
)
from .ops import ACTIVATIONS, drelu, dsigmoid, relu, sigmoid

FW_WRITES = ("prev_h", "prelim")
FW_QUERIES = ("new_A", "old_A")


# ============================================================================================
# The fast-weight memory: write, read and their backward (shared by both cells)
# ============================================================================================
def batched_matvec(A, v):
    """r_b = A_b v_b for every sequence b. A (B, N, N), v (B, N) -> (B, N)."""
    return (A @ v[:, :, None])[:, :, 0]


def batched_outer(u, v):
    """u_b v_b^T for every sequence b. u, v (B, N) -> (B, N, N)."""
    return u[:, :, None] * v[:, None, :]


def transposed(A):
    """A_b^T for every sequence b of a (B, N, N) stack."""
    return A.transpose(0, 2, 1)


def fast_weight_write(A_prev, w, lam, eta):
    """A_t = lam A_{t-1} + eta w w^T (Hebbian write with decay). A_prev (B, N, N), w (B, N)."""
    return lam * A_prev + eta * batched_outer(w, w)


def fast_weight_write_backward(dA_total, w, lam, eta):
    """Backward of :func:`fast_weight_write`: (dL/dA_{t-1} through the decay, dL/dw).

    dA_total : dL/dA_t from every use of A_t. w w^T is symmetric in its two factors, so
    dL/dw = eta (G + G^T) w with G = dA_total.
    """
    dw = eta * (batched_matvec(dA_total, w) + batched_matvec(transposed(dA_total), w))
    return lam * dA_total, dw


def fast_weight_read_backward(dr, A_query, v):
    """Backward of r = A_query v: (dL/dA_query (B, N, N), dL/dv (B, N))."""
    return batched_outer(dr, v), batched_matvec(transposed(A_query), dr)


def _check_choice_options(cell):
    require_option(cell, "fw_write", FW_WRITES)
    require_option(cell, "fw_query", FW_QUERIES)
    check_real_option(cell, "lam", low=0.0, high=1.0)
    check_real_option(cell, "eta", low=0.0)
    check_real_option(cell, "ln_eps", low=0.0, low_open=True)


# ============================================================================================
# FW-RNN (Ba, Hinton, Mnih, Leibo & Ionescu 2016)
# ============================================================================================
def fw_rnn_step_forward(params, x_t, state, *, lam, eta, S, write, query, activation, eps):
    """One FW-RNN step. x_t (B, X); state {'h': (B, H), 'A': (B, H, H)}."""
    p = params
    act, _ = ACTIVATIONS[activation]
    h_prev, A_prev = state["h"], state["A"]
    a = x_t @ p["W_hx"].T + h_prev @ p["W_hh"].T + p["b_h"]  # slow part: C x(t) + W h(t) + b
    h_inner = [act(a)]  # eq. (FW2): preliminary vector h_0(t+1)
    w = h_prev if write == "prev_h" else h_inner[0]
    A = fast_weight_write(A_prev, w, lam, eta)  # eq. (FW1)
    A_query = A if query == "new_A" else A_prev
    n, ln = [], []
    for _ in range(S):  # inner loop s = 0 .. S-1
        n_s, ln_s = layer_norm_forward(a + batched_matvec(A_query, h_inner[-1]),
                                       p["ln_gain"], p["ln_bias"], eps)  # eq. (FW3): LN[...]
        h_inner.append(act(n_s))  # eq. (FW3): h_{s+1}(t+1) = f(LN[...])
        n.append(n_s)
        ln.append(ln_s)
    cache = dict(x=x_t, h_prev=h_prev, a=a, w=w, A_query=A_query, h_inner=h_inner, n=n, ln=ln,
                 relu_in=[a, *n] if activation == "relu" else [])
    return {"h": h_inner[-1], "A": A}, cache


def fw_rnn_step_backward(params, dstate, cache, *, lam, eta, write, query, activation):
    """Backward of :func:`fw_rnn_step_forward`: (grads_t, dx_t, {'h', 'A'} at t-1)."""
    p, k = params, cache
    _, dact = ACTIVATIONS[activation]
    h_inner, A_query = k["h_inner"], k["A_query"]
    dA_query = 0.0
    da = 0.0
    dgain, dbias = 0.0, 0.0
    dh_s = dstate["h"]  # dL/dh_S(t+1) = dL/dh_t: the last inner vector is the output
    for s in range(len(k["n"]) - 1, -1, -1):
        dn = dh_s * dact(h_inner[s + 1])  # dL/dn_s: through f of (FW3)
        dz, dgain_s, dbias_s = layer_norm_backward(dn, k["ln"][s])  # dL/dz_s: LN of (FW3)
        dgain, dbias = dgain + dgain_s, dbias + dbias_s  # one LN, shared by every inner step
        da = da + dz  # dL/da: the slow part enters every inner step
        dA_s, dh_s = fast_weight_read_backward(dz, A_query, h_inner[s])  # through A h_s of (FW3)
        dA_query = dA_query + dA_s
    # dh_s is now dL/dh_0(t+1) through the inner loop
    dA = dstate["A"] + dA_query if query == "new_A" else dstate["A"]  # dL/dA_t (total)
    dA_prev, dw = fast_weight_write_backward(dA, k["w"], lam, eta)  # through (FW1)
    if query == "old_A":
        dA_prev = dA_prev + dA_query  # dL/dA_{t-1}: it was read directly
    dh_prev_from_write = 0.0
    if write == "prelim":
        dh_s = dh_s + dw  # dL/dh_0(t+1): also written into A by (FW1)
    else:
        dh_prev_from_write = dw  # dL/dh_{t-1}: written into A by (FW1)
    da = da + dh_s * dact(h_inner[0])  # dL/da: through f of (FW2)
    grads = {
        "W_hx": da.T @ k["x"],  # dL/dC: summed over the batch
        "W_hh": da.T @ k["h_prev"],  # dL/dW
        "b_h": da.sum(axis=0),  # dL/db
        "ln_gain": dgain,
        "ln_bias": dbias,
    }
    dx = da @ p["W_hx"]  # dL/dx_t
    dh_prev = da @ p["W_hh"] + dh_prev_from_write  # dL/dh_{t-1}: slow path + write path
    return grads, dx, {"h": dh_prev, "A": dA_prev}


@register
class FastWeightRNNCell(Cell):
    """FW-RNN of Ba et al. 2016 ("Using fast weights to attend to the recent past").

    Parameters (paper names in brackets): W_hx (H, X) [C], W_hh (H, H) [W], b_h (H,) [b],
    ln_gain, ln_bias (H,) [LN gain and bias] -> H(X+H) + 3H. lambda and eta are fixed options.

    Init: W_hh = 0.05 I (the value Ba et al.'s reproductions use; a near-zero slow recurrence
    leaves memory to A), W_hx and b_h U(-1/sqrt(H), 1/sqrt(H)), ln_gain 1, ln_bias 0.

    Options: ``lam`` (0.95), ``eta`` (0.5), ``S`` inner steps (1), ``activation`` f ('relu';
    'tanh' gives a kink-free cell for smooth checks), ``fw_write`` ('prev_h', Ba's equation, or
    'prelim', the authors' code), ``fw_query`` ('new_A' or 'old_A'), ``ln_eps`` (1e-5).
    Memory: the cache keeps one (B, H, H) A per step (B*T*H^2 floats).
    """

    kind = "fw_rnn"
    state_names = ("h", "A")
    default_options = {"lam": 0.95, "eta": 0.5, "S": 1, "activation": "relu",
                       "fw_write": "prev_h", "fw_query": "new_A", "ln_eps": 1e-5}
    equations = """
a_t        = W_hx x_t + W_hh h_{t-1} + b_h        (Ba: C x(t) + W h(t) + b)
A_t        = lam A_{t-1} + eta w w^T,  w = h_{t-1} (fw_write='prev_h') or h^0 ('prelim')   (FW1)
h^0        = f(a_t)                               preliminary vector                          (FW2)
h^{s+1}    = f(LN(a_t + A_q h^s; ln_gain, ln_bias)),  s = 0..S-1,
             A_q = A_t (fw_query='new_A') or A_{t-1} ('old_A')                               (FW3)
h_t        = h^S;  state (h_t, A_t);  A_0 = 0;  f = ReLU by default
"""

    def check_options(self):
        _check_choice_options(self)
        require_option(self, "activation", ("relu", "tanh"))
        check_int("option S (inner loop steps) of cell kind 'fw_rnn'", self.options["S"])

    def param_shapes(self):
        H, X = self.hidden_size, self.input_size
        return {"W_hx": (H, X), "W_hh": (H, H), "b_h": (H,), "ln_gain": (H,), "ln_bias": (H,)}

    def gate_blocks(self):
        return {"slow weights": ["W_hx", "W_hh", "b_h"], "layer norm": ["ln_gain", "ln_bias"]}

    def init_params(self, rng):
        params = ln_init(self.param_shapes(), rng, self.hidden_size)
        params["W_hh"] = 0.05 * numpy.eye(self.hidden_size)  # Ba et al.: W starts at 0.05 I
        return params

    def state_shapes(self, batch):
        H = self.hidden_size
        return {"h": (batch, H), "A": (batch, H, H)}

    def _kwargs(self):
        o = self.options
        return dict(lam=float(o["lam"]), eta=float(o["eta"]), write=o["fw_write"],
                    query=o["fw_query"], activation=o["activation"])


    def step_forward(self, params, x_t, state):
        return fw_rnn_step_forward(params, x_t, state, S=int(self.options["S"]),
                                   eps=float(self.options["ln_eps"]), **self._kwargs())

    def step_backward(self, params, dstate, cache_t):
        return fw_rnn_step_backward(params, dstate, cache_t, **self._kwargs())


# ============================================================================================
# FW-LSTM (Keller, Sridhar & Wang 2018), variants A and B
# ============================================================================================
FORGET_BIAS = {"A": 0.0, "B": 1.0}  # variant B (first author's TF code) adds 1.0 inside sigma_f


def _read_slice(variant, H):
    """Columns of the normalised gate vector that the fast weights read and write:
    the candidate block g (variant A) or all 4H (variant B)."""
    return slice(2 * H, 3 * H) if variant == "A" else slice(0, 4 * H)


def _concat(arrays):
    """Join (H,) parameter vectors into one (4H,) vector (the joint LayerNorm's gain/shift)."""
    return array_module(*arrays).concatenate(arrays)


def fw_lstm_step_forward(params, x_t, state, *, variant, lam, eta, write, query, eps,
                         fast_weights=True):
    """One FW-LSTM step. x_t (B, X); state {'h', 'c': (B, H), 'A': (B, N, N)} (no 'A' when
    ``fast_weights`` is False: the same cell without its memory)."""
    p = params
    h_prev, c_prev = state["h"], state["c"]
    H = h_prev.shape[1]
    a = project(p, x_t, "x") + project(p, h_prev, "h") + stack_gates(p, "b")  # eq. (FWL1)
    p_norm, ln_gates = layer_norm_forward(a, _concat([p[f"ln_gain_{k}"] for k in GATES]),
                                          _concat([p[f"ln_bias_{k}"] for k in GATES]),
                                          eps)  # eq. (FWL1): one LN over all 4H jointly
    cache = dict(x=x_t, h_prev=h_prev, c_prev=c_prev, ln_gates=ln_gates)
    new_state = {}
    if fast_weights:
        read = _read_slice(variant, H)
        v = relu(p_norm[:, read])  # eq. (FWL2): g = ReLU(g^) (A) or ReLU(p) over 4H (B)
        w = h_prev if write == "prev_h" else v
        A = fast_weight_write(state["A"], w, lam, eta)  # eq. (FWL3)
        A_query = A if query == "new_A" else state["A"]
        z = p_norm.copy()
        z[:, read] += batched_matvec(A_query, v)  # eq. (FWL4): + r = A_q v on the read block
        cache.update(v=v, w=w, A_query=A_query)
        new_state["A"] = A
    else:
        z = p_norm
    zk = split_gates(z)
    i, o = sigmoid(zk["i"]), sigmoid(zk["o"])  # eq. (FWL5)
    f = sigmoid(zk["f"] + FORGET_BIAS[variant])  # eq. (FWL5)
    u = relu(zk["g"])  # eq. (FWL5): candidate ReLU(g^ + r)
    c_tilde = f * c_prev + i * u  # eq. (FWL6)
    c, ln_c = layer_norm_forward(c_tilde, p["ln_gain_c"], p["ln_bias_c"], eps)  # eq. (FWL6)
    relu_c = relu(c)
    h = o * relu_c  # eq. (FWL7)
    cache.update(i=i, f=f, o=o, u=u, relu_c=relu_c, ln_c=ln_c,
                 relu_in=[zk["g"], c] + ([p_norm[:, read]] if fast_weights else []))
    return {"h": h, "c": c, **new_state}, cache


def fw_lstm_step_backward(params, dstate, cache, *, variant, lam, eta, write, query,
                          fast_weights=True):
    """Backward of :func:`fw_lstm_step_forward`: (grads_t, dx_t, state gradients at t-1)."""
    p, k = params, cache
    dh = dstate["h"]
    H = dh.shape[1]
    dz_o = dh * k["relu_c"] * dsigmoid(k["o"])  # dL/dz_o: through (FWL7), sigma' of (FWL5)
    dc = dstate["c"] + dh * k["o"] * drelu(k["relu_c"])  # dL/dc_t: carried + through (FWL7)
    dc_tilde, dgain_c, dbias_c = layer_norm_backward(dc, k["ln_c"])  # dL/dc~_t: LN of (FWL6)
    dc_prev = dc_tilde * k["f"]  # dL/dc_{t-1}: through f * c_{t-1}, after the LN on c
    dz = join_gates({
        "i": dc_tilde * k["u"] * dsigmoid(k["i"]),  # dL/dz_i: through i*u of (FWL6)
        "f": dc_tilde * k["c_prev"] * dsigmoid(k["f"]),  # dL/dz_f: through f*c_{t-1}
        "g": dc_tilde * k["i"] * drelu(k["u"]),  # dL/dz_g: through i*ReLU(g^ + r)
        "o": dz_o,
    })
    dp_norm = dz  # dL/dp: z = p (+ r on the read block), so the direct path is the identity
    dstate_prev = {}
    dh_prev_from_write = 0.0
    if fast_weights:
        read = _read_slice(variant, H)
        dr = dz[:, read]  # dL/dr: r was added to the read block of z, (FWL4)
        dA_query, dv = fast_weight_read_backward(dr, k["A_query"], k["v"])  # through A_q v
        dA = dstate["A"] + dA_query if query == "new_A" else dstate["A"]  # dL/dA_t (total)
        dA_prev, dw = fast_weight_write_backward(dA, k["w"], lam, eta)  # through (FWL3)
        if query == "old_A":
            dA_prev = dA_prev + dA_query  # dL/dA_{t-1}: read directly
        if write == "prelim":
            dv = dv + dw  # dL/dv: v was also written into A, (FWL3)
        else:
            dh_prev_from_write = dw  # dL/dh_{t-1}: written into A, (FWL3)
        dp_norm = dz.copy()
        dp_norm[:, read] += dv * drelu(k["v"])  # dL/dp: through v = ReLU(p_read), (FWL2)
        dstate_prev["A"] = dA_prev
    da, dgain, dbias = layer_norm_backward(dp_norm, k["ln_gates"])  # dL/da: joint LN of (FWL1)
    grads = {}
    for n, g in enumerate(GATES):
        rows = slice(n * H, (n + 1) * H)
        grads[f"b_{g}"] = da[:, rows].sum(axis=0)  # dL/db_k: batch sum
        grads[f"ln_gain_{g}"], grads[f"ln_bias_{g}"] = dgain[rows], dbias[rows]
    grads.update(ln_gain_c=dgain_c, ln_bias_c=dbias_c)
    grads_x, dx = project_backward(p, da, k["x"], "x")  # dL/dW_kx, dL/dx_t: (FWL1)
    grads_h, dh_prev = project_backward(p, da, k["h_prev"], "h")  # dL/dW_kh, dL/dh_{t-1}
    grads.update(grads_x, **grads_h)
    dh_prev = dh_prev + dh_prev_from_write
    return {name: grads[name] for name in p}, dx, {"h": dh_prev, "c": dc_prev, **dstate_prev}


_FW_LSTM_EQUATIONS = """
a      = W_kx x_t + W_kh h_{t-1} + b_k  (k = i, f, g, o);  p = LN_4H(a) joint      (FWL1)
v      = ReLU(p_g)  [variant A]   or   ReLU(p) over all 4H  [variant B]            (FWL2)
A_t    = lam A_{t-1} + eta w w^T,  w = v ('prelim') or h_{t-1} ('prev_h', A only)  (FWL3)
z      = p + (A_q v on the read block: g in A, all 4H in B); A_q = A_t or A_{t-1}  (FWL4)
i, o   = sigma(z_i), sigma(z_o);  f = sigma(z_f + fb);  u = ReLU(z_g)
         fb = 0 (A), 1 (B)                                                         (FWL5)
c_t    = LN_H(f * c_{t-1} + i * u)    the normalised c is carried                  (FWL6)
h_t    = o * ReLU(c_t)                                                              (FWL7)
"""


@register
class FastWeightLSTMCell(Cell):
    """FW-LSTM (Keller, Sridhar & Wang 2018): an LN-LSTM with ReLU candidate and fast weights.

    ``variant='A'`` (default): the co-author's PyTorch form. The fast weights act on the
    candidate: g = ReLU(g^), A_t = lam A + eta g g^T (H x H), r = A_t g, and the cell is
    LN_H(f c + i ReLU(g^ + r)). ``variant='B'``: the first author's TF form. The whole
    normalised gate vector p (4H) is rectified, written and read (A is 4H x 4H) and the read
    is added to every gate; the forget gate gets +1.0 inside its sigmoid.

    Parameters, both variants: W_kx (H, X), W_kh (H, H), b_k (H,), and the joint LayerNorm's
    ln_gain_k, ln_bias_k (H,) for k in i, f, g, o; ln_gain_c, ln_bias_c (H,) for the cell LN ->
    4H(X+H) + 14H. The usual count 4H(X+H) + 18H for variant A counts PyTorch's two
    Linear biases b_ih + b_hh; only their sum enters, so npcell keeps one b_k (it matches the
    TF variant's 4H(X+H) + 4H + 10H).

    Init: W and b U(-1/sqrt(H), 1/sqrt(H)); LN gains 1 and shifts 0. (The co-author's code draws
    every parameter, LN gains included, from U(-1/sqrt(H), 1/sqrt(H)), so its gains start near
    0; npcell does not copy that.)

    Options: ``variant`` ('A'|'B'), ``lam`` (0.95), ``eta`` (0.5), ``fw_write`` ('prelim' = the
    vector v, as both authors' code; 'prev_h' = h_{t-1}, variant A only, since B's memory is
    4H wide), ``fw_query`` ('new_A' as both authors' code, or 'old_A'; both variants),
    ``fast_weights`` (True; False drops A from the state and the read from z: the same cell
    without memory, which eta=0 must equal exactly), ``ln_eps`` (1e-5). There is no inner loop:
    the TF code's loop over S recomputes the same values.
    """

    kind = "fw_lstm"
    default_options = {"variant": "A", "lam": 0.95, "eta": 0.5, "fw_write": "prelim",
                       "fw_query": "new_A", "fast_weights": True, "ln_eps": 1e-5}
    equations = _FW_LSTM_EQUATIONS

    @property
    def state_names(self):
        return ("h", "c", "A") if self.options["fast_weights"] else ("h", "c")

    def check_options(self):
        require_option(self, "variant", ("A", "B"))
        _check_choice_options(self)
        if self.options["variant"] == "B" and self.options["fw_write"] != "prelim":
            raise ConfigError(
                "option fw_write='prev_h' is only valid for fw_lstm variant 'A': variant 'B' "
                "writes the 4H gate vector into a 4H x 4H memory, and h_{t-1} is only H wide; "
                "use fw_write='prelim'"
            )

    def param_shapes(self):
        H, X = self.hidden_size, self.input_size
        shapes = {f"W_{k}x": (H, X) for k in GATES}
        shapes |= {f"W_{k}h": (H, H) for k in GATES}
        shapes |= {f"b_{k}": (H,) for k in GATES}
        shapes |= {f"ln_gain_{k}": (H,) for k in GATES}
        shapes |= {f"ln_bias_{k}": (H,) for k in GATES}
        shapes |= {"ln_gain_c": (H,), "ln_bias_c": (H,)}
        return shapes

    def gate_blocks(self):
        blocks = {k: [f"W_{k}x", f"W_{k}h", f"b_{k}", f"ln_gain_{k}", f"ln_bias_{k}"]
                  for k in GATES}
        blocks["c-norm"] = ["ln_gain_c", "ln_bias_c"]
        return blocks

    def init_params(self, rng):
        return ln_init(self.param_shapes(), rng, self.hidden_size)

    @property
    def memory_size(self) -> int:
        """N, the side of the fast-weight matrix: H (variant A) or 4H (variant B)."""
        return self.hidden_size * (1 if self.options["variant"] == "A" else 4)

    def state_shapes(self, batch):
        H, N = self.hidden_size, self.memory_size
        shapes = {"h": (batch, H), "c": (batch, H)}
        if self.options["fast_weights"]:
            shapes["A"] = (batch, N, N)
        return shapes

    def _kwargs(self):
        o = self.options
        return dict(variant=o["variant"], lam=float(o["lam"]), eta=float(o["eta"]),
                    write=o["fw_write"], query=o["fw_query"], fast_weights=o["fast_weights"])


    def step_forward(self, params, x_t, state):
        return fw_lstm_step_forward(params, x_t, state, eps=float(self.options["ln_eps"]),
                                    **self._kwargs())

    def step_backward(self, params, dstate, cache_t):
        return fw_lstm_step_backward(params, dstate, cache_t, **self._kwargs())
