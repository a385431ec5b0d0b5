"""In-place activations for the engine's preallocated buffers (the reference ones, out of place,
are npcell.cells.ops)."""

from __future__ import annotations

from ..backend import array_module


def sigmoid_(a):
    """In-place sigmoid of an array or view : no temporaries."""
    xp = array_module(a)
    a *= 0.5
    xp.tanh(a, out=a)
    a += 1.0
    a *= 0.5
    return a
