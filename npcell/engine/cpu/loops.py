"""Fused CPU kernels for the gate blocks of lstm, peephole and wmc (Numba), beside the plain
NumPy path.

Why. On the CPU the plain fused path (npcell/engine/lstm_family.py) spends more time in its ~15-40
NumPy calls per step than in the recurrent GEMM at H = 128: each call is one pass over (B, H)
or (B, 4H) memory, the per-gate slices of the packed buffer are strided, NumPy cannot fuse,
and its float64 ``exp`` is scalar code on CPUs without AVX-512. Here the elementwise work of a
step between its GEMMs is one compiled pass, exponentials included (npcell/engine/cpu/kernels.py),
the way Chainer's ``lstm_fwd`` / ``lstm_bwd`` kernels do it on a GPU::

    lstm      forward:  GEMM h W_h^T;  kernel (eq. 1-6)
              backward: kernel (dL/da, dL/dc_{t-1});  GEMM dL/da W_h
    peephole  forward:  GEMM;  read of c_{t-1};  kernel (i, f, g, c_t);  read of c_t;
    and wmc             kernel (o, tanh c_t, h_t)
              backward: kernel (da_o, dL/dc_t);  o's read back;  kernel (da_i, da_f, da_g);
                        the reads of c_{t-1} back;  GEMM

where a read is a NumPy GEMM for full W_kc; diagonal w_kc are read (and their gradients
summed) inside the kernels.

The kernels take the pre-activations as they are (no row scales; those are the plain path's
device) and compute sigma(a) = 1 / (1 + exp(-a)) and tanh(a) = 2 / (1 + exp(-2a)) - 1, which
are exact identities and saturate correctly when exp overflows.

Numba is a default dependency on the Pythons it supports (an environment marker in
pyproject.toml). Without it :func:`available` is False and the plain path runs;
``npcell.engine.use_fused_kernels(False)`` forces the plain path with it.
tests/test_kernels_cpu.py holds the two paths equal.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import numpy

from ..ops import cell_read_back_into, cell_read_into


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
    """The Numba kernels module. Imported on first use, not with npcell: Numba is slow to import
    and optional (the plain path runs without it). Each kernel compiles on its first call and
    is cached on disk (``cache=True``); the first time, that takes ~20 s, so say so once."""
    if not _disk_cache_exists():
        print("npcell: compiling the Numba CPU kernels (once, about 20 s; cached on disk after)",
              file=sys.stderr)
    from . import kernels

    return kernels


def _disk_cache_exists() -> bool:
    """True when Numba's on-disk cache holds index files of our kernels: next to kernels.py in
    __pycache__, or under NUMBA_CACHE_DIR when set (Numba's own two places)."""
    here = Path(__file__).parent
    places = [here / "__pycache__"]
    if os.environ.get("NUMBA_CACHE_DIR"):
        places.append(Path(os.environ["NUMBA_CACHE_DIR"]))
    return any(next(place.rglob("kernels.*.nbi"), None) is not None
               for place in places if place.is_dir())


#: Up to this many input features X the loops below take the input term x_t W_x^T (and its
#: gradients) step by step, see :class:`SmallInput`; above it the hoisted GEMMs over all T*B
#: rows win.
SMALL_INPUT = 8
#: ... and only from this many units B*H a step: the two extra calls a step cost ~3 us, more
#: than they save on small steps. Measured (LSTM, X = 2, float32, forward + backward):
#: B = 1, H = 32 loses 35%; B = 4, H = 256 breaks even; B = 16, H = 128 gains 13%; at
#: B = H = 128 and X = 8 it still gains 8-10%.
SMALL_INPUT_MIN_UNITS = 2048


def loops_take_input(B, X, H):
    """True when the kernels' loops should compute the input term step by step (SmallInput)
    for batch B, X input features and H units; False: the hoisted GEMMs over all T*B rows."""
    return X <= SMALL_INPUT and B * H >= SMALL_INPUT_MIN_UNITS


class SmallInput:
    """The input term x_t W_x^T of eq. (1)-(3), (5), and its gradients dx, dW_x, db, computed
    inside the time loops, for small X (see :func:`loops_take_input`).

    Why: with X = 1 or 2 the hoisted GEMMs over all T*B rows (fused_forward/backward) have
    nothing to multiply and run at memory speed over the (T, B, 4H) buffer: on sMNIST (X = 1,
    T = 784, 205 MB in float32) the projection, dW_x, db and dx take 187 ms timed alone. Step
    by step, while the row of dL/da is still in cache, they take ~50 us a step (40 ms); the
    peephole's forward + backward there went from 912 to 800 ms (measured interleaved).

    x (T, B, X) the input; W_x (4H, X) the packed input weights (PACKED_ORDER, unscaled).
    """

    def __init__(self, x, W_x):
        self.x, self.W_xT = x, numpy.ascontiguousarray(W_x.T)
        self.dx = self.dW_xT = self.db = None

    def project(self, t, act):
        """act (B, 4H) <- x_t W_x^T: the gate buffer's input term for step t."""
        _compiled().input_projection(self.x[t], self.W_xT, act)

    def start_backward(self):
        """Allocate dx (T, B, X) and zero the float64 sums of dW_x and db."""
        self.dx = numpy.empty_like(self.x)
        self.dW_xT = numpy.zeros(self.W_xT.shape)
        self.db = numpy.zeros(self.W_xT.shape[1])

    def backward(self, t, dact):
        """From dL/da (B, 4H) of step t: dx[t], and adds to the sums of dW_x and db."""
        _compiled().input_backward(dact, self.x[t], self.W_xT, self.dx[t], self.dW_xT,
                                   self.db, self.x.dtype.type(0))

    def grads(self):
        """(dW_x (4H, X), db (4H,)) in the input's dtype, once the backward loop is done."""
        dtype = self.x.dtype
        return self.dW_xT.T.astype(dtype), self.db.astype(dtype)


def forward_loop(gates, hs, cs, tanh_cs, W_hT, bias, recurrent, small_input=None):
    """The LSTM time loop with the kernels; fills gates, hs, cs, tanh_cs as the plain loop.

    gates (T, B, 4H) in: x_t W_x^T, PACKED_ORDER, unscaled (or nothing, when ``small_input``, a
    :class:`SmallInput`, writes it step by step); out: the activations. The kernel adds the
    bias (4H,) as it goes (a separate pass over all of ``gates`` costs ~5% here).
    hs, cs (T + 1, B, H) with the initial state at index 0; tanh_cs (T, B, H); W_hT (H, 4H)
    the packed recurrent weights, transposed; recurrent (B, 4H) scratch.
    """
    kernel = _compiled().lstm_forward
    one, two = gates.dtype.type(1), gates.dtype.type(2)
    for t in range(gates.shape[0]):
        if small_input is not None:
            small_input.project(t, gates[t])
        numpy.matmul(hs[t], W_hT, out=recurrent)  # the one recurrent GEMM of the LSTM
        kernel(gates[t], recurrent, bias, cs[t], cs[t + 1], tanh_cs[t], hs[t + 1], one, two)


def backward_loop(gates, cs, tanh_cs, dh, W_h, dgates, dh_next, dc, small_input=None):
    """The LSTM BPTT loop with the kernel: fills dgates (T, B, 4H) with dL/da; on return
    dh_next (B, H) holds dL/dh_0 and dc (B, H) dL/dc_0 (both enter holding dL/d(final state)).
    ``small_input`` (a :class:`SmallInput`, after ``start_backward``) takes each step's dL/da."""
    kernel = _compiled().lstm_backward
    one = gates.dtype.type(1)
    for t in range(gates.shape[0] - 1, -1, -1):
        kernel(gates[t], cs[t], tanh_cs[t], dh[t], dh_next, dc, dgates[t], one)
        if small_input is not None:
            small_input.backward(t, dgates[t])
        numpy.matmul(dgates[t], W_h, out=dh_next)  # dL/dh_{t-1}: the one recurrent GEMM back


def connected_forward_loop(gates, hs, cs, tanh_cs, W_hT, bias, recurrent, reads, u_if,
                           u_o, small_input=None):
    """The peephole/WMC time loop with the kernels; fills what the plain loop fills.

    As :func:`forward_loop`, plus the cell reads: ``reads`` is the dict of cells/lstm.py's
    ``_cell_reads`` (weights unscaled). Full W_kc: ``ops.cell_read_into``
    (a GEMM) writes W_kc c [+ b_kc] between the kernels; diagonal w_kc: the kernels read c
    themselves. ``u_if`` (T, B, 2H) and ``u_o`` (T, B, H) receive WMC's squashed reads
    tanh(W_kc c) (eq. 7-9); None for the peephole, whose reads enter as they are.
    ``small_input``: as in :func:`forward_loop`.
    """
    kernels = _compiled()
    dtype = gates.dtype
    one, two = dtype.type(1), dtype.type(2)
    T, B, H4 = gates.shape
    squash, diagonal = reads["squash"], reads["diagonal"]
    w_if, b_if, w_o, b_o = _diagonal_weights(reads, H4 // 4, dtype)
    reads_if = numpy.empty((B, H4 // 2), dtype)
    reads_o = numpy.empty((B, H4 // 4), dtype)
    for t in range(T):
        if small_input is not None:
            small_input.project(t, gates[t])
        numpy.matmul(hs[t], W_hT, out=recurrent)  # the recurrent GEMM
        if not diagonal:  # i, f read c_{t-1}: eq. (7)-(8) / (16)-(17)
            cell_read_into(cs[t], reads["W_if"], reads["b_if"], False, reads_if)
        kernels.connected_gates(gates[t], recurrent, bias, reads_if,
                                u_if[t] if squash else reads_if, cs[t], cs[t + 1], w_if, b_if,
                                squash, diagonal, one, two)
        if not diagonal:  # o reads the new c_t: eq. (9) / (18)
            cell_read_into(cs[t + 1], reads["W_o"], reads["b_o"], False, reads_o)
        kernels.connected_output(gates[t], reads_o, u_o[t] if squash else reads_o, cs[t + 1],
                                 tanh_cs[t], hs[t + 1], w_o, b_o, squash, diagonal, one, two)


def connected_backward_loop(gates, cs, tanh_cs, dh, W_h, dgates, dh_next, dc, reads,
                            scratch, u_if, u_o, dz_if, dz_o, small_input=None):
    """The peephole/WMC BPTT loop with the kernels: fills dgates (T, B, 4H) with dL/da and,
    for WMC, dz_if (T, B, 2H) and dz_o (T, B, H) with dL/dz of the cell reads (eq. 15); the
    peephole passes u_if = u_o = None and its dL/dz, dL/da itself, as the views dz_if =
    dgates[:, :, H:3H], dz_o = dgates[:, :, :H] (the full reads' GEMMs read them).

    Full W_kc: ``ops.cell_read_back_into`` (a GEMM) adds dL/dc through a read.
    Returns (dw_if (2H,), dw_o (H,)), the gradients of diagonal w_kc summed over t and the
    batch as the kernels go, or None for full W_kc (the caller does one GEMM over all T).
    ``small_input``: as in :func:`backward_loop`.
    """
    kernels = _compiled()
    dtype = gates.dtype
    one = dtype.type(1)
    H = cs.shape[2]
    squash, diagonal = reads["squash"], reads["diagonal"]
    w_if, _, w_o, _ = _diagonal_weights(reads, H, dtype)
    # summed in float64 whatever the dtype: T*B terms each, added one at a time
    dw_if, dw_o = numpy.zeros(w_if.shape), numpy.zeros(w_o.shape)
    for t in range(gates.shape[0] - 1, -1, -1):
        d = dgates[t]
        if squash:
            u_o_t, dz_o_t, u_if_t, dz_if_t = u_o[t], dz_o[t], u_if[t], dz_if[t]
        else:  # the peephole's dL/dz is dL/da: the kernels get d (unread), see there
            u_o_t = dz_o_t = u_if_t = dz_if_t = d
        kernels.connected_output_backward(gates[t], tanh_cs[t], u_o_t, cs[t + 1], dh[t],
                                          dh_next, dc, d, dz_o_t, w_o, dw_o, squash, diagonal,
                                          one)
        if not diagonal:  # dL/dc_t += through the o gate's read of c_t (before di, df, dg)
            cell_read_back_into(dz_o[t], reads["W_o"], False, dc, scratch)
        kernels.connected_cell_backward(gates[t], cs[t], u_if_t, dc, d, dz_if_t, w_if, dw_if,
                                        squash, diagonal, one)
        if not diagonal:  # dL/dc_{t-1} += through the reads of c_{t-1} by i and f
            cell_read_back_into(dz_if[t], reads["W_if"], False, dc, scratch)
        if small_input is not None:
            small_input.backward(t, d)
        numpy.matmul(d, W_h, out=dh_next)  # dL/dh_{t-1}: the recurrent GEMM back
    return (dw_if.astype(dtype), dw_o.astype(dtype)) if diagonal else None


def _diagonal_weights(reads, H, dtype):
    """(w_if (2H,), b_if (2H,), w_o (H,), b_o (H,)) of diagonal reads, zeros for absent biases;
    empty arrays for full W_kc (the kernels do not touch them then)."""
    if not reads["diagonal"]:
        empty = numpy.zeros(0, dtype)
        return empty, empty, empty, empty
    w_if, w_o = numpy.ascontiguousarray(reads["W_if"]).reshape(2 * H), reads["W_o"]
    b_if = numpy.zeros(2 * H, dtype) if reads["b_if"] is None else reads["b_if"]
    b_o = numpy.zeros(H, dtype) if reads["b_o"] is None else reads["b_o"]
    return w_if, b_if, w_o, b_o
