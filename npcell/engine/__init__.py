"""The engine: everything in npcell that exists only for speed.

Nothing here is needed to read the paper; the reference step pairs live in npcell/cells/, and
tests hold every engine path equal to the reference step loop.

``fused_pair(cell)`` is the registry: cell kind -> the fused (forward, backward) pair over a
whole sequence that npcell.sequence runs in place of the reference step loop. "Fused" means
exactly that: one pass over all T steps with packed weights, batched GEMMs and preallocated
buffers, equal to looping the kind's reference step pair.

``use_fused_kernels`` is the one switch for every compiled gate kernel (Numba on the CPU, CuPy
ElementwiseKernels on the GPU)::

    npcell.engine.use_fused_kernels(True)          # for good
    with npcell.engine.use_fused_kernels(False):   # for a block: the plain path
        ...
    npcell.engine.use_fused_kernels(None)          # back to the default ("auto")

Default ("auto", ``None``): the CPU kernels run on NumPy arrays when Numba is installed (they are
tested against the plain path); the CuPy kernels stay off until a GPU run has validated them
(see docs/performance.md), so on CuPy only ``True`` turns them on. The CPU kernels serve lstm,
peephole and wmc; the CuPy kernels the plain ``lstm`` only (peephole/WMC keep the plain CuPy
path).
"""

from __future__ import annotations

from dataclasses import dataclass

from .gru import gru_backward, gru_cache_floats, gru_forward
from .lstm_family import (
    PACKED_ORDER,
    lstm_family_backward,
    lstm_family_cache_floats,
    lstm_family_forward,
)
from .switch import active, fused_kernels_enabled, use_fused_kernels
from .ulstm import ulstm_backward, ulstm_cache_floats, ulstm_forward


@dataclass(frozen=True)
class FusedPair:
    """What the engine registers for a cell kind.

    forward(cell, params, x, state) -> (h, state_T, data); backward(cell, params, dh, data,
    dstate) -> (grads, dx, dstate0); cache_floats(cell) -> (floats per batch row and step,
    floats per batch row once) that forward's data keep (the memory guard's formula).
    """

    forward: object
    backward: object
    cache_floats: object


_LSTM_FAMILY = FusedPair(lstm_family_forward, lstm_family_backward, lstm_family_cache_floats)
FUSED = {
    "lstm": _LSTM_FAMILY,
    "peephole": _LSTM_FAMILY,
    "wmc": _LSTM_FAMILY,
    "gru": FusedPair(gru_forward, gru_backward, gru_cache_floats),
    "ulstm": FusedPair(ulstm_forward, ulstm_backward, ulstm_cache_floats),
}
# The fused LSTM-family buffers, under the names of the reference step caches (u_if holds u_i
# and u_f side by side), so a non-finite report names the same tensors on either path.
_STEP_KEYS = {"u_if": "u_i", "cs": "c", "u_o": "u_o", "tanh_cs": "tanh_c", "hs": "h"}


def fused_pair(cell) -> FusedPair | None:
    """The fused pair registered for ``cell.kind``, or None."""
    return FUSED.get(cell.kind)


def step_tensors(cell, data, T):
    """(step name, (T, ...) array) pairs of a fused cache, for the non-finite report; the
    packed (T, B, 4H) gate buffer of the LSTM family is split into i_t, f_t, g_t, o_t."""
    H = cell.hidden_size
    out = []
    for key, a in data.items():
        if key == "x" or not hasattr(a, "ndim") or a.ndim < 2 or a.shape[0] not in (T, T + 1):
            continue
        a = a[a.shape[0] - T:]  # (T + 1, ...) buffers hold the initial state at index 0
        if key == "gates" and FUSED.get(cell.kind) is _LSTM_FAMILY and a.shape[-1] == 4 * H:
            out += [(gate, a[..., n * H:(n + 1) * H]) for n, gate in enumerate(PACKED_ORDER)]
        else:
            out.append((_STEP_KEYS.get(key, key), a))
    return out


__all__ = ["FUSED", "PACKED_ORDER", "FusedPair", "active", "fused_kernels_enabled", "fused_pair",
           "step_tensors", "use_fused_kernels"]
