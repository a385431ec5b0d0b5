"""Fused CuPy kernels for the LSTM gate block: one launch per step forward, one backward.

On a GPU every NumPy-style call in the fused sequence loop (npcell/engine/lstm_family.py) is
one kernel launch of a few microseconds, and the LSTM gate block is ~10 of them per step
forward and ~7 backward. The two ``cupy.ElementwiseKernel`` objects below do the same
arithmetic in one launch each (the approach of Chainer's ``lstm_fwd`` / ``lstm_bwd``). They are
a *fast path beside the plain one*: the plain CuPy path is the same code as the NumPy path,
and ``tests/test_gpu.py`` holds the two equal in float64.

The switch ``npcell.engine.use_fused_kernels`` turns these kernels on (npcell/engine/__init__.py).
Importing this module never imports CuPy; the kernel objects are built on first use and
memoised (building one needs no GPU, NVRTC compiles it on its first call).

Layout contract with the fused path: a step's gate row is ``[o | i | f | g]`` (PACKED_ORDER),
each block H wide, and the pre-activations of the sigmoid gates arrive *halved* (the packed
weights of o, i, f are scaled by 1/2) so sigma(a) = 0.5 * tanh(a/2) + 0.5 is one tanh.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ...backend import xp_for


@dataclass(frozen=True)
class KernelSource:
    """The text of one ElementwiseKernel: typed parameter lists and the per-element body.

    ``i`` is the element index over the (B, H) non-raw arrays; ``raw`` arrays are indexed by
    hand: row b of a (B, 4H) gate array starts at b * 4H, and gate k of unit j is at
    b * 4H + k * H + j. Outputs are references, so the body assigns them.
    """

    name: str
    in_params: str
    out_params: str
    body: str


# Forward gate block of one step, eq. (1)-(6). ``act`` enters holding the input projection
# (+ bias) of step t and leaves holding the activations o, i, f, g; ``rec`` is h_{t-1} W_h^T.
LSTM_FORWARD = KernelSource(
    name="npcell_lstm_forward",
    in_params="raw T rec, T c_prev, int32 H",
    out_params="raw T act, T c, T tanh_c, T h",
    body="""
    const ptrdiff_t unit = i % H;
    const ptrdiff_t row = (i / H) * 4 * H;
    const ptrdiff_t k_o = row + unit, k_i = k_o + H, k_f = k_o + 2 * H, k_g = k_o + 3 * H;
    const T gate_o = (T)0.5 * tanh(act[k_o] + rec[k_o]) + (T)0.5;  // eq. (5), a/2 arrives
    const T gate_i = (T)0.5 * tanh(act[k_i] + rec[k_i]) + (T)0.5;  // eq. (2)
    const T gate_f = (T)0.5 * tanh(act[k_f] + rec[k_f]) + (T)0.5;  // eq. (3)
    const T gate_g = tanh(act[k_g] + rec[k_g]);                    // eq. (1)
    c = gate_f * c_prev + gate_i * gate_g;                         // eq. (4)
    tanh_c = tanh(c);
    h = gate_o * tanh_c;                                           // eq. (6)
    act[k_o] = gate_o; act[k_i] = gate_i; act[k_f] = gate_f; act[k_g] = gate_g;
    """,
)

# Backward gate block of one step (derivatives from the activations, as ops.dsigmoid/dtanh).
# dL/dh_t = dh_loss + dh_next; writes dL/da for the four gates into ``dact`` and dL/dc_{t-1}.
LSTM_BACKWARD = KernelSource(
    name="npcell_lstm_backward",
    in_params="raw T act, T c_prev, T tanh_c, T dh_loss, T dh_next, T dc_next, int32 H",
    out_params="raw T dact, T dc_prev",
    body="""
    const ptrdiff_t unit = i % H;
    const ptrdiff_t row = (i / H) * 4 * H;
    const ptrdiff_t k_o = row + unit, k_i = k_o + H, k_f = k_o + 2 * H, k_g = k_o + 3 * H;
    const T gate_o = act[k_o], gate_i = act[k_i], gate_f = act[k_f], gate_g = act[k_g];
    const T dh = dh_loss + dh_next;                          // dL/dh_t: loss + carried
    const T dc = dc_next + dh * gate_o * (1 - tanh_c * tanh_c);  // dL/dc_t: + through eq. (6)
    dact[k_o] = dh * tanh_c * gate_o * (1 - gate_o);         // dL/da_o: eq. (6), sigma'
    dact[k_i] = dc * gate_g * gate_i * (1 - gate_i);         // dL/da_i: eq. (4), sigma'
    dact[k_f] = dc * c_prev * gate_f * (1 - gate_f);         // dL/da_f: eq. (4), sigma'
    dact[k_g] = dc * gate_i * (1 - gate_g * gate_g);         // dL/da_g: eq. (4), tanh'
    dc_prev = dc * gate_f;                                   // dL/dc_{t-1}: through f_t
    """,
)


def _kernel(source: KernelSource):
    """The kernel object for ``source``, built by the CuPy module the backend holds (only
    reached with CuPy arrays in hand, so CuPy has been imported)."""
    return _build(xp_for("cupy"), source)


@functools.cache
def _build(cupy, source: KernelSource):
    # Keyed by the module too: the tests swap in a CPU test double of CuPy and back.
    return cupy.ElementwiseKernel(source.in_params, source.out_params, source.body, source.name)


def lstm_forward_step(act, rec, c_prev, c, tanh_c, h):
    """One LSTM step's gate block on the GPU.

    act (B, 4H) C-contiguous: in, a_t minus the recurrent term (sigmoid rows halved); out, the
    activations [o | i | f | g]. rec (B, 4H): h_{t-1} W_h^T (halved rows). c_prev (B, H) in;
    c, tanh_c, h (B, H) out.
    """
    H = c_prev.shape[1]
    _kernel(LSTM_FORWARD)(rec, c_prev, H, act, c, tanh_c, h)


def lstm_backward_step(act, c_prev, tanh_c, dh_loss, dh_next, dc_next, dact, dc_prev):
    """One LSTM step's gate-block backward on the GPU.

    act (B, 4H) activations of step t; c_prev, tanh_c, dh_loss (= dL/dh_t from the loss),
    dh_next (= dL/dh_t carried from t+1), dc_next (= dL/dc_t carried) all (B, H), in.
    Out: dact (B, 4H) dL/da of the four gates; dc_prev (B, H) dL/dc_{t-1} (not dc_next itself).
    """
    H = c_prev.shape[1]
    _kernel(LSTM_BACKWARD)(act, c_prev, tanh_c, dh_loss, dh_next, dc_next, H, dact, dc_prev)
