"""Fused CPU kernels for the LSTM gate block (Numba), beside the plain NumPy path.

Why. On the CPU the plain fused path (npcell/cells/lstm.py) spends more time in its ~15 NumPy
calls per step than in the one recurrent GEMM at H = 128: each call is one pass over (B, H) or
(B, 4H) memory, the per-gate slices of the packed buffer are strided (a pass over one is ~4x
slower than a contiguous one), and NumPy cannot fuse. The kernels below do the gate arithmetic
of a step in one pass each, the way Chainer's ``lstm_fwd`` / ``lstm_bwd`` kernels do on a GPU.

What stays in NumPy. The exponentials: NumPy's ``exp`` is vectorised, a scalar ``exp`` inside
a compiled loop is not (measured: ~20 ns an element, 8x slower than ``numpy.exp`` in float32).
So a forward step is

    recurrent GEMM;  a += h W^T;  numpy.exp over the whole (B, 4H) row block;
    kernel: sigma, tanh from the exponentials, c_t (eq. 4), -2 c_t;
    numpy.exp over (B, H);  kernel: tanh(c_t), h_t (eq. 6)

with the exp form of the activations (the packed sigmoid rows pre-scaled by -1 and the g rows
by -2, see the layout note in cells/lstm.py): sigma(a) = 1 / (1 + exp(-a)) and
tanh(a) = 2 / (1 + exp(-2a)) - 1. The backward has no transcendental: one kernel per step turns
dL/dh_t and dL/dc_t into dL/da of the four gates and dL/dc_{t-1}.

Numba is optional (``pip install npcell[fast]``). Without it :func:`available` is False and the
plain path runs; ``npcell.kernels.use_fused_kernels(False)`` forces the plain path with it.
tests/test_kernels_cpu.py holds the two paths equal. Constants are passed in as arguments of
the array's dtype so that float32 arithmetic stays float32 (a literal ``1.0`` would promote it).
"""

from __future__ import annotations

import functools


@functools.cache
def available() -> bool:
    """True when Numba imports (the kernels compile on first use, then come from its cache)."""
    try:
        import numba  # noqa: F401
    except Exception:  # noqa: BLE001 - any failure to import means: plain path
        return False
    return True


@functools.cache
def _compiled():
    from numba import njit

    jit = njit(cache=True, nogil=True, error_model="numpy")

    @jit
    def forward_cell(act, c_prev, c, minus_two_c, one, two):
        """act (B, 4H) in: exp(-a) for o, i, f and exp(-2 a_g) for g; out: o, i, f, g.
        c_prev (B, H) in; c (B, H) out, eq. (4); minus_two_c (B, H) out, -2 c_t for the exp."""
        B, H = c.shape
        for b in range(B):
            for j in range(H):
                gate_o = one / (one + act[b, j])  # sigma(a_o), eq. (5)
                gate_i = one / (one + act[b, H + j])  # sigma(a_i), eq. (2)
                gate_f = one / (one + act[b, 2 * H + j])  # sigma(a_f), eq. (3)
                gate_g = two * (one / (one + act[b, 3 * H + j])) - one  # tanh(a_g), eq. (1)
                act[b, j] = gate_o
                act[b, H + j] = gate_i
                act[b, 2 * H + j] = gate_f
                act[b, 3 * H + j] = gate_g
                c_t = gate_f * c_prev[b, j] + gate_i * gate_g  # eq. (4)
                c[b, j] = c_t
                minus_two_c[b, j] = -two * c_t

    @jit
    def forward_out(act, tanh_c, h, one, two):
        """tanh_c (B, H) in: exp(-2 c_t); out: tanh(c_t). h (B, H) out: o_t tanh(c_t), eq. (6)."""
        B, H = h.shape
        for b in range(B):
            for j in range(H):
                tanh_c_t = two * (one / (one + tanh_c[b, j])) - one
                tanh_c[b, j] = tanh_c_t
                h[b, j] = act[b, j] * tanh_c_t  # eq. (6)

    @jit
    def backward_step(act, c_prev, tanh_c, dh_loss, dh_next, dc, dact, one):
        """One step of BPTT through the gate block, as kernels.LSTM_BACKWARD.

        act (B, 4H) the activations o, i, f, g of step t; c_prev, tanh_c (B, H); dh_loss (B, H)
        dL/dh_t from the loss, dh_next (B, H) dL/dh_t carried from t+1. dc (B, H) in: dL/dc_t
        carried from t+1; out: dL/dc_{t-1}. dact (B, 4H) out: dL/da of the four gates.
        """
        B, H = dc.shape
        for b in range(B):
            for j in range(H):
                gate_o, gate_i = act[b, j], act[b, H + j]
                gate_f, gate_g = act[b, 2 * H + j], act[b, 3 * H + j]
                tanh_c_t = tanh_c[b, j]
                dh = dh_loss[b, j] + dh_next[b, j]  # dL/dh_t: loss + carried
                dc_t = dc[b, j] + dh * gate_o * (one - tanh_c_t * tanh_c_t)  # + through eq. (6)
                dact[b, j] = dh * tanh_c_t * gate_o * (one - gate_o)  # dL/da_o: eq. (6), sigma'
                dact[b, H + j] = dc_t * gate_g * gate_i * (one - gate_i)  # dL/da_i: eq. (4)
                dact[b, 2 * H + j] = dc_t * c_prev[b, j] * gate_f * (one - gate_f)  # dL/da_f
                dact[b, 3 * H + j] = dc_t * gate_i * (one - gate_g * gate_g)  # dL/da_g: tanh'
                dc[b, j] = dc_t * gate_f  # dL/dc_{t-1}: the constant error carousel, eq. (4)

    return forward_cell, forward_out, backward_step


def forward_loop(gates, hs, cs, tanh_cs, W_hT, recurrent):
    """The LSTM time loop with the kernels; fills gates, hs, cs, tanh_cs as the plain loop.

    gates (T, B, 4H) in: x_t W_x^T + b with the exp-form row scales; out: the activations.
    hs, cs (T + 1, B, H) with the initial state at index 0; tanh_cs (T, B, H); W_hT (H, 4H)
    the scaled packed recurrent weights; recurrent (B, 4H) scratch.
    """
    import numpy

    forward_cell, forward_out, _ = _compiled()
    one, two = gates.dtype.type(1), gates.dtype.type(2)
    for t in range(gates.shape[0]):
        a = gates[t]
        numpy.matmul(hs[t], W_hT, out=recurrent)  # the one recurrent GEMM of the LSTM
        a += recurrent
        numpy.exp(a, out=a)
        forward_cell(a, cs[t], cs[t + 1], tanh_cs[t], one, two)  # eq. (1)-(5)
        numpy.exp(tanh_cs[t], out=tanh_cs[t])
        forward_out(a, tanh_cs[t], hs[t + 1], one, two)  # eq. (6)


def backward_loop(gates, cs, tanh_cs, dh, W_h, dgates, dh_next, dc):
    """The LSTM BPTT loop with the kernel: fills dgates (T, B, 4H) with dL/da; on return
    dh_next (B, H) holds dL/dh_0 and dc (B, H) dL/dc_0 (both enter holding dL/d(final state))."""
    import numpy

    _, _, backward_step = _compiled()
    one = gates.dtype.type(1)
    for t in range(gates.shape[0] - 1, -1, -1):
        backward_step(gates[t], cs[t], tanh_cs[t], dh[t], dh_next, dc, dgates[t], one)
        numpy.matmul(dgates[t], W_h, out=dh_next)  # dL/dh_{t-1}: the one recurrent GEMM back
