"""npcell.checks: the memory guard's formula against what a forward really keeps."""

import tracemalloc

import numpy as np
import pytest

import npcell
from npcell.sequence import cache_cost, estimate_cache_bytes

# Kinds with options that change what a step caches, on both paths where a fused pair exists.
CONFIGS = [
    ("lstm", {}), ("peephole", {"diagonal": False, "cell_bias": True}),
    ("wmc", {"diagonal": True, "cell_bias": True}), ("gru", {"reset_after": True}),
    ("ulstm", {"use_o": False}), ("teaching", {}), ("ln_lstm", {"ln_style": "ba2016"}),
    ("fw_rnn", {"S": 2}), ("fw_lstm", {"variant": "B"}), ("fw_lstm", {"fast_weights": False}),
]


def _held_by_forward(cell, x, fused):
    npcell.forward(cell, x[:1], fused=fused)  # imports and first-call caches outside the trace
    tracemalloc.start()
    try:
        result = npcell.forward(cell, x, fused=fused, max_cache_bytes=float("inf"))
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    return held


@pytest.mark.parametrize("kind,options", CONFIGS)
@pytest.mark.parametrize("fused", [None, False])
@pytest.mark.parametrize("T,B,H,dtype", [(40, 4, 24, "float64"), (25, 16, 8, "float32")])
def test_the_formula_is_within_ten_percent_of_tracemalloc(kind, options, fused, T, B, H, dtype,
                                                          no_workspace):
    cell = npcell.make_cell(kind, 3, H, dtype=dtype, seed=0, **options)
    x = np.zeros((T, B, 3), dtype=dtype)
    held = _held_by_forward(cell, x, fused)
    estimate = estimate_cache_bytes(cell, T, B, fused)
    assert 0.9 * held <= estimate <= 1.1 * held, (kind, options, fused, estimate, held)


def test_the_estimate_runs_nothing(monkeypatch):
    """A formula, not a measurement: the first forward of a new shape calls the step exactly T
    times (the old guard ran four hidden forward passes)."""
    cell = npcell.make_cell("teaching", 2, 5, seed=0)  # no fused pair: every step is a call
    calls = []
    step = cell.step_forward
    monkeypatch.setattr(cell, "step_forward", lambda *a: calls.append(1) or step(*a))
    npcell.forward(cell, np.zeros((7, 3, 2)))
    assert len(calls) == 7
    assert cache_cost(cell).bytes(7, 3) == estimate_cache_bytes(cell, 7, 3)
