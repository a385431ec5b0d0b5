"""The compiled gate kernels behind npcell/engine/cpu/loops.py (Numba).

Each kernel does the elementwise work of one time step in one pass over its rows, between the
step's GEMMs. The loops run over 1-D row slices that start at index 0, so that LLVM vectorises
them (four float64 or eight float32 lanes with AVX2; see the note above the forward kernels).

The exponential is computed here too, by :func:`exp_`, because NumPy's is scalar code for
float64 on CPUs without AVX-512 (~10 ns an element on the 2-core AVX2 machine this was tuned
on) and a call to ``math.exp`` inside a compiled loop cannot be vectorised (~20 ns). ``exp_``
is the textbook range reduction, exp(x) = 2^k exp(r) with k = round(x / ln 2) and
abs(r) <= ln(2)/2, then a Taylor polynomial of exp(r), times 2^k built from its bits: within
1 ulp of the exact value (tests/test_kernels_cpu.py), ~2.3 ns an element in float64 and ~1.1
ns in float32 there (NumPy: 6-10 and 1.7-2).

Constants enter the kernels as arguments ``one``, ``two`` of the arrays' dtype, so that
float32 arithmetic stays float32 (a literal ``1.0`` would promote it to float64).
"""

from __future__ import annotations

import math

import numpy
from numba import njit, types
from numba.extending import intrinsic, overload

OPTIONS = dict(nogil=True, error_model="numpy", fastmath={"contract"})  # contract: FMA
jit = njit(cache=True, **OPTIONS)
# reassoc lets LLVM split a dot product over vector lanes (a sum in any order, as BLAS does)
jit_reduction = njit(cache=True, **{**OPTIONS, "fastmath": {"contract", "reassoc"}})
inline = njit(inline="always", **OPTIONS)  # pieces shared by kernels, inlined into each


# ============================================================================================
# A vectorisable exp
# ============================================================================================
def _bitcast(source, target):
    """A compiled function that reinterprets the bits of a ``source`` scalar as ``target``."""

    @intrinsic
    def cast(typingctx, value):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(target))

        return target(source), codegen

    return cast


_f64_bits, _bits_f64 = _bitcast(types.float64, types.int64), _bitcast(types.int64, types.float64)
_f32_bits, _bits_f32 = _bitcast(types.float32, types.int32), _bitcast(types.int32, types.float32)


def exp_(x):
    """exp(x) for a float32 or float64 scalar inside compiled code (see the module note).

    Saturates where the result leaves the normal range: inf above 709 (float64) / 88
    (float32), 0 below -708 / -87; NaN stays NaN. The kernels only take 1 / (1 + exp_(.)),
    which is the same at those limits to within the smallest normal number.
    """
    raise TypeError("exp_ is for compiled code; use numpy.exp")


@overload(exp_, jit_options=OPTIONS)
def _exp_overload(x):
    if x == types.float64:
        return _exp_kernel(numpy.float64, numpy.int64, low=-708, high=709, bias=1023,
                           mantissa=52, ln2_hi=6.93147180369123816490e-01,
                           ln2_lo=1.90821492927058770002e-10, degree=13,
                           to_bits=_f64_bits, from_bits=_bits_f64)
    if x == types.float32:
        return _exp_kernel(numpy.float32, numpy.int32, low=-87, high=88, bias=127,
                           mantissa=23, ln2_hi=0.693359375, ln2_lo=-2.12194440e-4, degree=7,
                           to_bits=_f32_bits, from_bits=_bits_f32)
    return None


def _exp_kernel(real, integer, *, low, high, bias, mantissa, ln2_hi, ln2_lo, degree, to_bits,
                from_bits):
    """exp for one float type. ``ln2_hi + ln2_lo`` is ln 2 split so that k * ln2_hi is exact
    (Cody and Waite); Taylor to ``degree`` leaves a truncation error below half an ulp for
    |r| <= ln(2)/2; adding 1.5 * 2^mantissa rounds x / ln 2 to the integer k in the low bits
    of the sum, which then become the exponent field of 2^k."""
    low, high, log2e = real(low), real(high), real(1 / math.log(2))
    ln2_hi, ln2_lo = real(ln2_hi), real(ln2_lo)
    shifter = real(1.5 * 2.0**mantissa)
    bias, mantissa = integer(bias), integer(mantissa)
    # Taylor coefficients 1/n!, highest first for Horner (a constant tuple: LLVM unrolls)
    coefficients = tuple(real(1 / math.factorial(n)) for n in range(degree, -1, -1))
    zero, inf = real(0), real(numpy.inf)

    def impl(x):
        clipped = min(max(x, low), high)
        shifted = clipped * log2e + shifter
        k = shifted - shifter  # round(x / ln 2)
        r = (clipped - k * ln2_hi) - k * ln2_lo  # x - k ln 2, |r| <= ln(2)/2
        p = coefficients[0]
        for n in range(1, len(coefficients)):  # exp(r) by Horner
            p = p * r + coefficients[n]
        p = p * from_bits((to_bits(shifted) + bias) << mantissa)  # times 2^k
        p = inf if x > high else p
        p = zero if x < low else p
        return x if x != x else p  # NaN in, NaN out

    return impl


@jit
def exp_array(values):
    """values (n,) in place: exp of each (the test's handle on :func:`exp_`)."""
    for n in range(values.shape[0]):
        values[n] = exp_(values[n])


# ============================================================================================
# The input term of a step, for small X (see loops.SmallInput)
# ============================================================================================
@jit
def input_projection(x, W_xT, act):
    """act (B, 4H) <- x (B, X) W_xT (X, 4H): the x_t W_kx terms of eq. (1)-(3), (5)."""
    for b in range(x.shape[0]):
        row, x_row, w_0 = act[b], x[b], W_xT[0]
        for j in range(row.shape[0]):
            row[j] = x_row[0] * w_0[j]  # the first input feature sets the row (X >= 1)
        for k in range(1, x_row.shape[0]):
            w_k, x_k = W_xT[k], x_row[k]
            for j in range(row.shape[0]):
                row[j] += x_k * w_k[j]


@jit_reduction
def input_backward(dact, x, W_xT, dx, dW_xT, db, zero):
    """Through the input term of one step, from dL/da (B, 4H): dx (B, X) <- dL/da W_x;
    dW_xT (X, 4H) += x^T dL/da and db (4H,) += the batch sum of dL/da (both float64: they
    sum T*B terms over the whole sequence)."""
    for b in range(dact.shape[0]):
        d, x_row, dx_row = dact[b], x[b], dx[b]
        for j in range(d.shape[0]):
            db[j] += d[j]  # dL/db_k, summed over the batch
        for k in range(x_row.shape[0]):
            w_k, dw_k, x_k = W_xT[k], dW_xT[k], x_row[k]
            total = zero
            for j in range(d.shape[0]):
                dw_k[j] += d[j] * x_k  # dL/dW_kx: dL/da_k x_t
                total += d[j] * w_k[j]  # dL/dx_t: sum over the gates of W_kx^T dL/da_k
            dx_row[k] = total


# ============================================================================================
# Forward: the gate block of a step after its GEMMs
# ============================================================================================
# act (B, 4H): the input projections x_t W_x^T in PACKED_ORDER [o | i | f | g]; out: the
# activations. recurrent (B, 4H): h_{t-1} W_h^T from the step's GEMM; bias (4H,): b.
# Every loop below runs over 1-D views that all start at index 0: with an offset inside the
# index (row[H + j]) Numba's negative-index handling keeps LLVM from vectorising the loop
# (measured: 2-4x slower).
@jit
def lstm_forward(act, recurrent, bias, c_prev, c, tanh_c, h, one, two):
    """One LSTM step, eq. (1)-(6). c_prev (B, H) in; c, tanh_c, h (B, H) out."""
    B, H = c.shape
    for b in range(B):
        row, rec = act[b], recurrent[b]
        _add_bias(row, bias)
        _sigmoid(row[: 3 * H], rec[: 3 * H], rec[: 3 * H], 0, one)  # o, i, f: eq. (5), (2), (3)
        _tanh(row[3 * H :], rec[3 * H :], one, two)  # g: eq. (1)
        _cell_update(row, c_prev[b], c[b], H)
        _output(row[:H], c[b], tanh_c[b], h[b], one, two)


@inline
def _add_bias(row, bias):
    for j in range(row.shape[0]):
        row[j] += bias[j]


@inline
def _sigmoid(gate, rec, read, with_read, one):
    """gate <- sigma(gate + rec [+ read]), in place."""
    if with_read:
        for j in range(gate.shape[0]):
            gate[j] = one / (one + exp_(-(gate[j] + rec[j] + read[j])))
    else:
        for j in range(gate.shape[0]):
            gate[j] = one / (one + exp_(-(gate[j] + rec[j])))


@inline
def _tanh(gate, rec, one, two):
    """gate <- tanh(gate + rec) = 2 sigma(2 (gate + rec)) - 1, in place."""
    for j in range(gate.shape[0]):
        gate[j] = two / (one + exp_(-two * (gate[j] + rec[j]))) - one


@inline
def _squash(read, u, one, two):
    """u <- tanh(read): WMC's squashed cell read, eq. (7)-(9)."""
    for j in range(read.shape[0]):
        u[j] = two / (one + exp_(-two * read[j])) - one


@inline
def _cell_update(row, c_prev, c, H):
    gate_i, gate_f, gate_g = row[H : 2 * H], row[2 * H : 3 * H], row[3 * H :]
    for j in range(H):
        c[j] = gate_f[j] * c_prev[j] + gate_i[j] * gate_g[j]  # eq. (4)


@inline
def _output(gate_o, c, tanh_c, h, one, two):
    for j in range(c.shape[0]):
        tanh_c_t = two / (one + exp_(-two * c[j])) - one
        tanh_c[j] = tanh_c_t
        h[j] = gate_o[j] * tanh_c_t  # h_t = o_t tanh(c_t), eq. (6)


@inline
def _diagonal_read(w, bias, c, read):
    """read <- w * [c, c, ...] + bias: the diagonal cell read of k gates, w and bias (k*H,)."""
    H = c.shape[0]
    for k in range(read.shape[0] // H):
        w_k, b_k, read_k = w[k * H : (k + 1) * H], bias[k * H : (k + 1) * H], read[k * H :]
        for j in range(H):
            read_k[j] = w_k[j] * c[j] + b_k[j]


@jit
def connected_gates(act, recurrent, bias, read_if, u_if, c_prev, c, w_if, b_if, squash,
                    diagonal, one, two):
    """Peephole/WMC step up to c_t (o reads c_t, so its gate waits for connected_output).

    read_if (B, 2H): z = W_kc c_{t-1} [+ b_kc] for i and f, from a GEMM; with ``diagonal``
    the kernel writes it itself from w_if, b_if (2H,). WMC (``squash``) writes tanh(z) to
    u_if (B, 2H) and adds that, eq. (7)-(8); the peephole adds z, eq. (16)-(17).
    """
    B, H = c.shape
    for b in range(B):
        row, rec = act[b], recurrent[b]
        _add_bias(row, bias)
        gate_o, rec_o = row[:H], rec[:H]
        for j in range(H):  # a_o: its cell read and sigma come after c_t
            gate_o[j] += rec_o[j]
        read = read_if[b]
        if diagonal:
            _diagonal_read(w_if, b_if, c_prev[b], read)  # w_kc * c_{t-1} [+ b_kc]
        if squash:
            _squash(read, u_if[b], one, two)  # tanh(W_kc c_{t-1}), eq. (7)-(8)
            read = u_if[b]
        _sigmoid(row[H : 3 * H], rec[H : 3 * H], read, 1, one)  # i, f: eq. (7)-(8) / (16)-(17)
        _tanh(row[3 * H :], rec[3 * H :], one, two)  # g: eq. (1)
        _cell_update(row, c_prev[b], c[b], H)


@jit
def connected_output(act, read_o, u_o, c, tanh_c, h, w_o, b_o, squash, diagonal, one, two):
    """The o gate reads c_t (eq. 9 / 18), then h_t. read_o (B, H): W_oc c_t [+ b_oc] (with
    ``diagonal`` written here from w_o, b_o (H,)); WMC writes tanh of it to u_o (B, H) and
    adds that. tanh_c, h (B, H) out."""
    B, H = c.shape
    for b in range(B):
        read = read_o[b]
        if diagonal:
            _diagonal_read(w_o, b_o, c[b], read)  # w_oc * c_t [+ b_oc]
        if squash:
            _squash(read, u_o[b], one, two)  # tanh(W_oc c_t), eq. (9)
            read = u_o[b]
        gate_o = act[b, :H]
        _sigmoid(gate_o, read, read, 0, one)  # o_t, eq. (9) / (18): a_o already holds rec
        _output(gate_o, c[b], tanh_c[b], h[b], one, two)


# ============================================================================================
# Backward: one step of BPTT through the gate block (no transcendental: all from the cache)
# ============================================================================================
@jit
def lstm_backward(act, c_prev, tanh_c, dh_loss, dh_next, dc, dact, one):
    """As kernels.LSTM_BACKWARD. act (B, 4H) the activations o, i, f, g of step t; c_prev,
    tanh_c (B, H); dh_loss dL/dh_t from the loss, dh_next dL/dh_t carried from t+1. dc (B, H)
    in: dL/dc_t carried from t+1; out: dL/dc_{t-1}. dact (B, 4H) out: dL/da of the gates."""
    B, H = dc.shape
    for b in range(B):
        row, drow, dc_row = act[b], dact[b], dc[b]
        _output_backward(row[:H], tanh_c[b], dh_loss[b], dh_next[b], dc_row, drow[:H], one)
        _cell_backward(row, c_prev[b], dc_row, drow, H, one)


@inline
def _output_backward(gate_o, tanh_c, dh_loss, dh_next, dc, da_o, one):
    for j in range(dc.shape[0]):
        dh = dh_loss[j] + dh_next[j]  # dL/dh_t: loss + carried
        o, tanh_c_t = gate_o[j], tanh_c[j]
        da_o[j] = dh * tanh_c_t * o * (one - o)  # dL/da_o: eq. (6), sigma'
        dc[j] += dh * o * (one - tanh_c_t * tanh_c_t)  # dL/dc_t: + through eq. (6)


@inline
def _cell_backward(row, c_prev, dc, drow, H, one):
    gate_i, gate_f, gate_g = row[H : 2 * H], row[2 * H : 3 * H], row[3 * H :]
    da_i, da_f, da_g = drow[H : 2 * H], drow[2 * H : 3 * H], drow[3 * H :]
    for j in range(H):
        i, f, g, dc_t = gate_i[j], gate_f[j], gate_g[j], dc[j]
        da_i[j] = dc_t * g * i * (one - i)  # dL/da_i: eq. (4), sigma' of eq. (2)
        da_f[j] = dc_t * c_prev[j] * f * (one - f)  # dL/da_f: eq. (4), sigma' of eq. (3)
        da_g[j] = dc_t * i * (one - g * g)  # dL/da_g: eq. (4), tanh' of eq. (1)
        dc[j] = dc_t * f  # dL/dc_{t-1}: the constant error carousel, eq. (4)


@inline
def _squash_backward(da, u, dz, one):
    """dz <- da tanh'(u): through WMC's tanh, the delta-hat of eq. (15)."""
    for j in range(da.shape[0]):
        dz[j] = da[j] * (one - u[j] * u[j])


@inline
def _diagonal_read_backward(dz, w, c, dc, dw):
    """Through read = w * [c, c, ...] (k gates): dc (H,) += sum_k w_k dz_k; dw (k*H,) +=
    dz * [c, c, ...] (summed over the batch as the kernel goes: eq. (21) / (14) diagonal)."""
    H = c.shape[0]
    for k in range(dz.shape[0] // H):
        dz_k, w_k, dw_k = dz[k * H : (k + 1) * H], w[k * H : (k + 1) * H], dw[k * H :]
        for j in range(H):
            dc[j] += dz_k[j] * w_k[j]
            dw_k[j] += dz_k[j] * c[j]


@jit
def connected_output_backward(act, tanh_c, u_o, c, dh_loss, dh_next, dc, dact, dz_o, w_o, dw_o,
                              squash, diagonal, one):
    """Peephole/WMC, first half: dL/da_o into dact[:, :H], dc (B, H) += the path through
    eq. (6); WMC: dz_o (B, H) = dL/da_o tanh'(u_o), through the tanh of eq. (9) (eq. 15).
    The o gate's read of c_t then joins dc before di, df, dg: here when ``diagonal`` (and
    dw_o (H,) += dz_o c_t), else outside (a GEMM). The peephole's dL/dz is dL/da_o itself,
    so it passes dact for u_o and dz_o (unread): a strided view dact[:, :H] would be a
    non-contiguous array type, whose rows LLVM does not vectorise (2x slower, measured)."""
    B, H = dc.shape
    for b in range(B):
        da_o = dact[b, :H]
        _output_backward(act[b, :H], tanh_c[b], dh_loss[b], dh_next[b], dc[b], da_o, one)
        dz = da_o  # the peephole's dL/dz is dL/da
        if squash:
            dz = dz_o[b]
            _squash_backward(da_o, u_o[b], dz, one)
        if diagonal:
            _diagonal_read_backward(dz, w_o, c[b], dc[b], dw_o)


@jit
def connected_cell_backward(act, c_prev, u_if, dc, dact, dz_if, w_if, dw_if, squash, diagonal,
                            one):
    """Peephole/WMC, second half: dc (B, H) in: the whole dL/dc_t; out: dL/dc_{t-1} through
    f_t (and, when ``diagonal``, through the reads of c_{t-1} by i and f, with dw_if (2H,) +=
    dz_if c_{t-1}; else those join outside). dact[:, H:] out: dL/da_i, da_f, da_g; WMC:
    dz_if (B, 2H) = delta-hat i_t, f_t, the tanh' of eq. (7)-(8) (eq. 15). The peephole
    passes dact for u_if and dz_if, as in connected_output_backward."""
    B, H = dc.shape
    for b in range(B):
        drow = dact[b]
        _cell_backward(act[b], c_prev[b], dc[b], drow, H, one)
        dz = drow[H : 3 * H]  # the peephole's dL/dz is dL/da
        if squash:
            dz = dz_if[b]
            _squash_backward(drow[H : 3 * H], u_if[b], dz, one)
        if diagonal:
            _diagonal_read_backward(dz, w_if, c_prev[b], dc[b], dw_if)
