"""Record one forward and one BPTT walk of a cell: every number the stepper shows, per step.

The backward walk is ``npcell.backward`` itself (its per-step ``on_step`` hook); the local
gradients (da_i, da_f, da_g, da_o, dz_k, dc, dc_prev, dh_prev) are the reference step_backward's
own local variables, read from its frame as it returns (``sys.setprofile``), so what the page
shows is what npcell/cells/*.py computed, under the names a student reads there.

Shapes: x (T, B, X); every per-step array is stored units x batch, (H, B), as the page draws it.
"""

from __future__ import annotations

import sys

import numpy

from ..backend import to_numpy
from ..cells import lstm, peephole, wmc
from ..cells.ops import cell_read, tanh
from ..errors import ConfigError
from ..sequence import backward, forward

# The reference step_backward of each kind the stepper walks, and the helper that computes
# dx and dh_prev for it (its locals are read too).
REFERENCE = {"lstm": lstm.lstm_step_backward, "peephole": peephole.peephole_step_backward,
             "wmc": wmc.wmc_step_backward}
HELPERS = (lstm.gate_input_grads,)
# The student's variables, upstream first (the order of npcell.exercises.variants.footprints)
LOCALS = ("da_o", "dz_o", "dc", "da_i", "da_f", "da_g", "dz_i", "dz_f", "dc_prev", "dh_prev")
GATES = ("i", "f", "g", "o")
SATURATED = 0.95  # a sigmoid gate outside (0.05, 0.95), or |tanh| above 0.95, is saturated


def check_kind(cell):
    if getattr(cell, "kind", None) not in REFERENCE:
        raise ConfigError(f"the stepper walks cell kinds {sorted(REFERENCE)}; got "
                          f"{getattr(cell, 'kind', type(cell).__name__)!r}")


def loss_gradient(shape, loss, seed):
    """dL/dh_t, an array of ``shape`` (T, B, H), of L = sum_t r_t . h_t with seeded random r_t:
    at the last step only (``loss='last'``, the long-range case where carries vanish or
    explode) or at every step (``'every'``)."""
    if loss not in ("last", "every"):
        raise ConfigError(f"loss must be 'last' or 'every'; got {loss!r}")
    r = numpy.random.default_rng(seed).standard_normal(shape)
    if loss == "last":
        r[:-1] = 0.0
    return r


class _LocalsRecorder:
    """Collects f_locals of the given functions each time one returns (sys.setprofile)."""

    def __init__(self, functions):
        self.codes = {f.__code__ for f in functions}
        self.frames = []

    def __call__(self, frame, event, arg):
        if event == "return" and frame.f_code in self.codes:
            self.frames.append(dict(frame.f_locals))

    def __enter__(self):
        self.previous = sys.getprofile()
        sys.setprofile(self)
        return self

    def __exit__(self, *exc):
        sys.setprofile(self.previous)

    def take(self):
        """Merge and clear what was collected since the last take (one step's locals)."""
        merged = {}
        for f in self.frames:
            merged.update({k: v for k, v in f.items() if k in LOCALS and hasattr(v, "shape")})
        self.frames = []
        return merged


def _units(a):
    """(B, H) -> (H, B) nested lists of floats (non-finite values become None for JSON)."""
    a = numpy.asarray(to_numpy(a), dtype=numpy.float64).T
    return [[float(v) if numpy.isfinite(v) else None for v in row] for row in a]


def _norm(a):
    return float(numpy.linalg.norm(to_numpy(a)))


def _forward_step(cell, p, cache):
    """What the forward view shows at one step: gates, c_t, h_t and the cell reads."""
    step = {name: _units(cache[name]) for name in (*GATES, "c")}
    step["h"] = _units(cache["o"] * cache["tanh_c"])
    sat = {k: _units(abs(cache[k] - 0.5) > SATURATED - 0.5) for k in ("i", "f", "o")}
    sat["g"] = _units(abs(cache["g"]) > SATURATED)
    reads = {}
    if cell.kind in ("peephole", "wmc"):
        for k in ("i", "f", "o"):  # i, f read c_{t-1}; o reads the new c_t
            z = cell_read(p[f"W_{k}c"], cache["c" if k == "o" else "c_prev"], p.get(f"b_{k}c"))
            reads[k] = {"z": _units(z), "tanh": _units(tanh(z)),
                        "saturated": _units(abs(tanh(z)) > SATURATED)}
    return {**step, "saturated": sat, "reads": reads}


def record_walk(cell, x, dh):
    """Forward and BPTT of ``cell`` over x (T, B, X) with dL/dh = dh (T, B, H).

    Returns (walk, arrays): ``walk`` is the JSON-ready dict the page reads; ``arrays`` holds the
    same per-step backward values as NumPy arrays (B, H) for Python-side checks, and the
    caches, dstates and grads the student check needs.
    """
    check_kind(cell)
    h, _, cache = forward(cell, x, fused=False)
    T = cache.T
    steps_b = [None] * T
    arrays = {"dstate": [None] * T, "out": [None] * T, "locals": [None] * T,
              "caches": cache.steps, "params": cache.params}
    carried = {"h": cell.xp.zeros_like(h[0])}  # dL/dh_{T-1} from beyond the sequence: none
    running = cell.zero_grads()

    with _LocalsRecorder((REFERENCE[cell.kind], *HELPERS)) as rec:
        def on_step(t, dstate_t, grads_t, dx_t, dstate_prev):
            local = rec.take()
            for name, g in grads_t.items():
                running[name] = running[name] + g
            arrays["dstate"][t] = {k: to_numpy(v) for k, v in dstate_t.items()}
            arrays["out"][t] = (grads_t, dx_t, dstate_prev)
            arrays["locals"][t] = {k: to_numpy(v) for k, v in local.items()}
            steps_b[t] = {
                "dh_loss": _units(dh[t]), "dh_carried": _units(carried["h"]),
                "dh": _units(dstate_t["h"]), "dc_carried": _units(dstate_t["c"]),
                "locals": {k: _units(local[k]) for k in LOCALS if k in local},
                "grad_norms": {k: _norm(v) for k, v in running.items()},
                "norm_dh": _norm(dstate_t["h"]), "norm_dc": _norm(dstate_t["c"]),
            }
            carried["h"] = dstate_prev["h"]

        backward(cell, dh, cache, on_step=on_step)
    steps_f = [_forward_step(cell, cache.params, c) for c in cache.steps]
    walk = {"kind": cell.kind, "T": T, "B": cache.B, "H": cell.hidden_size,
            "forward": steps_f, "backward": steps_b,
            "norms": {"dh": [s["norm_dh"] for s in steps_b],
                      "dc": [s["norm_dc"] for s in steps_b],
                      "c": [_norm(c["c"]) for c in cache.steps]}}
    return walk, arrays
