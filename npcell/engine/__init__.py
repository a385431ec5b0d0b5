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

from .gru import gru_backward, gru_forward
from .lstm_family import PACKED_ORDER, lstm_family_backward, lstm_family_forward
from .switch import active, fused_kernels_enabled, use_fused_kernels
from .ulstm import ulstm_backward, ulstm_forward

# kind -> (forward(cell, params, x, state) -> (h, state_T, data),
#          backward(cell, params, dh, data, dstate) -> (grads, dx, dstate0))
FUSED = {
    "lstm": (lstm_family_forward, lstm_family_backward),
    "peephole": (lstm_family_forward, lstm_family_backward),
    "wmc": (lstm_family_forward, lstm_family_backward),
    "gru": (gru_forward, gru_backward),
    "ulstm": (ulstm_forward, ulstm_backward),
}


def fused_pair(cell):
    """The fused (forward, backward) pair registered for ``cell.kind``, or None."""
    return FUSED.get(cell.kind)


__all__ = ["FUSED", "PACKED_ORDER", "active", "fused_kernels_enabled", "fused_pair",
           "use_fused_kernels"]
