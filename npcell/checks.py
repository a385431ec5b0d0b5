"""What every public entry point checks before (and after) the math.

* validation of the cell, x, the state, dh, dstate and caches (one-line errors that say what
  was expected and what arrived);
* the memory guard: the cache a forward would keep, as a formula (CacheCost: T * B * per row
  and step + T * per step + B * per row, from each cell's ``step_cache_size`` or the engine's
  count of its fused buffers; no hidden forward pass), refused up front beyond the limit;
* the non-finite reports that name the first tensor and step that went NaN/Inf.

It imports only backend and errors, so cells (the memory limit of their parameters) and the
sequence driver can both use it.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import numpy  # host-side only: validating and converting inputs, never for the cell's math

from .backend import array_module, backend_of, is_cupy_array
from .errors import (
    ArgumentTypeError,
    BackendError,
    ConfigError,
    DTypeError,
    MemoryLimitError,
    NonFiniteError,
    ShapeError,
    key_difference,
    shape_str,
)

# ----- validation ---------------------------------------------------------------------------
# What every public entry point accepts (the same rules for forward, backward, gradcheck, ...):
#
# * arrays: NumPy or CuPy arrays of exactly the cell's dtype and backend. Nothing is cast
#   silently: a float32 x for a float64 cell is a DTypeError, a CuPy x for a NumPy cell a
#   BackendError.
# * nested Python lists/tuples of numbers (bool, int or float) are accepted and converted to the
#   cell's dtype on the cell's backend: they carry no dtype of their own, so this is not a cast.
#   Lists holding None, strings or other objects are refused (NumPy would turn None into NaN).
# * anything else (scalars, torch tensors, pandas frames, ...) is an ArgumentTypeError that says
#   how to convert it.
_CELL_ATTRIBUTES = ("kind", "params", "input_size", "hidden_size", "dtype", "state_names",
                    "step_forward", "step_backward", "state_shapes", "zero_state")


def check_cell(cell, name="cell"):
    """Refuse anything that is not a cell (duck-typed: what the driver uses must be there)."""
    missing = [a for a in _CELL_ATTRIBUTES if not hasattr(cell, a)]
    if missing:
        raise ArgumentTypeError(
            f"{name} must be a cell made by npcell.make_cell(kind, input_size, hidden_size); "
            f"got {type(cell).__name__} (it lacks {', '.join(missing[:4])})"
        )
    return cell


def _is_array(a) -> bool:
    return isinstance(a, numpy.ndarray) or is_cupy_array(a)


def as_array(cell, value, name):
    """``value`` if it is an array; a nested list/tuple of numbers converted to the cell's dtype
    and backend; otherwise ArgumentTypeError. Dtype and backend of arrays are checked later."""
    if _is_array(value) or not isinstance(value, (list, tuple)):
        return value
    try:
        host = numpy.asarray(value)
    except ValueError as err:  # ragged nesting
        raise ShapeError(
            f"{name} is a nested list that is not rectangular ({err}); every inner list must "
            "have the same length"
        ) from None
    if host.dtype.kind not in "biuf":
        raise DTypeError(
            f"{name} is a list whose entries are not all numbers (NumPy reads it as "
            f"{host.dtype}); pass numbers or an array of dtype {cell.dtype.name}"
        )
    return array_module(*cell.params.values()).asarray(host, dtype=cell.dtype)


def _not_an_array(name, value, expected):
    hint = ""
    module = type(value).__module__.split(".")[0]
    if module == "torch":
        hint = f" (convert with {name}.detach().cpu().numpy())"
    elif module in ("pandas", "polars", "jax", "tensorflow"):
        hint = f" (convert with numpy.asarray({name}))"
    raise ArgumentTypeError(
        f"{name} must be a NumPy or CuPy array (or a nested list of numbers) of shape "
        f"{expected}; got {type(value).__name__}{hint}"
    )


def check_input(cell, x):
    """Validate x as (T, B, X) of the cell's dtype and backend; return the array module."""
    check_cell(cell)
    if not _is_array(x):
        _not_an_array("x", x, f"(T, B, {cell.input_size})")
    if x.ndim != 3:
        raise ShapeError(
            f"x must be time-major (T, B, X) with X={cell.input_size}; got rank {x.ndim} "
            f"shape {shape_str(x.shape)}"
            + (" (add a batch axis: x[:, None, :])" if x.ndim == 2 else "")
        )
    T, B, X = x.shape
    if X != cell.input_size:
        raise ShapeError(
            f"x must have X={cell.input_size} features in its last axis for this "
            f"{cell.kind} cell; got shape {shape_str(x.shape)}"
        )
    if T < 1 or B < 1:
        raise ShapeError(
            f"x must have at least one step and one sequence; got {shape_str(x.shape)}"
        )
    _check_dtype_backend(cell, x, "x")
    return array_module(x)


def _check_dtype_backend(cell, a, name):
    if backend_of(a) != cell.backend:
        raise BackendError(
            f"{name} is a {backend_of(a)} array but the {cell.kind} cell's parameters live on "
            f"{cell.backend}; move one of them (cell.to({backend_of(a)!r}) or xp.asarray)"
        )
    if a.dtype != cell.dtype:
        raise DTypeError(
            f"{name} has dtype {a.dtype} but the {cell.kind} cell is {cell.dtype.name}; "
            f"cast with {name}.astype({cell.dtype.name!r}) or make the cell with "
            f"dtype={a.dtype.name!r} (npcell never mixes dtypes silently)"
        )


def _check_array(cell, a, name, shape):
    if not _is_array(a):
        _not_an_array(name, a, shape_str(shape))
    if tuple(a.shape) != tuple(shape):
        raise ShapeError(f"{name} must have shape {shape_str(shape)}; got {shape_str(a.shape)}")
    _check_dtype_backend(cell, a, name)


def check_state(cell, state, batch, name="state"):
    """Validate a state dict (or None -> zeros) against the cell and batch size."""
    if state is None:
        return cell.zero_state(batch)
    if not isinstance(state, dict):
        raise ArgumentTypeError(
            f"{name} must be a dict with keys {list(cell.state_names)}; got {type(state).__name__}"
        )
    difference = key_difference(cell.state_names, state)
    if difference:
        raise ShapeError(
            f"{name} for a {cell.kind} cell must have keys {list(cell.state_names)}; {difference}"
        )
    shapes = cell.state_shapes(batch)
    checked = {}
    for key in cell.state_names:
        value = as_array(cell, state[key], f"{name}[{key!r}]")
        _check_array(cell, value, f"{name}[{key!r}]", shapes[key])
        checked[key] = value
    return checked


def complete_dstate(cell, dstate, batch):
    xp = cell.xp
    shapes = cell.state_shapes(batch)
    out = {k: xp.zeros(s, dtype=cell.dtype) for k, s in shapes.items()}
    if dstate is None:
        return out
    if not isinstance(dstate, dict):
        raise ArgumentTypeError(
            f"dstate must be a dict with keys among {list(cell.state_names)} (or None); "
            f"got {type(dstate).__name__}"
        )
    extra = [k for k in dstate if k not in cell.state_names]
    if extra:
        raise ShapeError(
            f"dstate for a {cell.kind} cell may have keys {list(cell.state_names)}; "
            f"unexpected {extra}"
        )
    for key, value in dstate.items():
        if value is None:
            continue
        value = as_array(cell, value, f"dstate[{key!r}]")
        _check_array(cell, value, f"dstate[{key!r}]", shapes[key])
        out[key] = value
    return out


def _quiet_overflow(check_finite):
    """With check_finite, NumPy's overflow/invalid RuntimeWarnings are noise: npcell raises a
    NonFiniteError naming the step and tensor instead."""
    if check_finite:
        return numpy.errstate(over="ignore", invalid="ignore", divide="ignore")
    return contextlib.nullcontext()


# ----- memory guard -------------------------------------------------------------------------
# forward keeps every step's activations for backward, so its cache grows as T * B * H. A long
# sequence can ask for tens of GiB and take the machine down; the guard refuses up front instead
# and says how much it would have needed. The limit comes from, in order: the max_cache_bytes=
# argument, npcell.set_memory_limit(...), the NPCELL_MEMORY_LIMIT environment variable (bytes,
# or with a K/M/G/T suffix, or "off"), and DEFAULT_MEMORY_LIMIT.
DEFAULT_MEMORY_LIMIT = 8 * 2**30
MEMORY_LIMIT_ENV = "NPCELL_MEMORY_LIMIT"
_memory_limit = {"bytes": None}  # None: use the environment variable or the default
_SUFFIXES = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def _parse_limit(value, where):
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().upper().removesuffix("IB").removesuffix("B")
        if text in ("OFF", "NONE", "INF", "UNLIMITED"):
            return float("inf")
        suffix = text[-1:] if text[-1:] in _SUFFIXES else ""
        try:
            number = float(text[: len(text) - len(suffix)])
        except ValueError:
            number = float("nan")
        value = number * _SUFFIXES[suffix]
    if isinstance(value, bool) or not isinstance(value, (int, float, numpy.integer,
                                                          numpy.floating)):
        raise ConfigError(f"{where} must be a number of bytes; got {value!r}")
    if not value > 0:  # also refuses NaN
        raise ConfigError(f"{where} must be a positive number of bytes (or 'off'); got {value!r}")
    return float("inf") if value == float("inf") else int(value)


def set_memory_limit(nbytes):
    """Set the most bytes a forward's cache may take (int, or '512M', '8G', 'off'); None goes back
    to the NPCELL_MEMORY_LIMIT environment variable or the default of 8 GiB. Returns the old
    limit."""
    old = get_memory_limit()
    _memory_limit["bytes"] = _parse_limit(nbytes, "the memory limit")
    return old


def get_memory_limit():
    """The limit in force (bytes, or inf when switched off)."""
    if _memory_limit["bytes"] is not None:
        return _memory_limit["bytes"]
    env = os.environ.get(MEMORY_LIMIT_ENV)
    if env:
        return _parse_limit(env, f"the environment variable {MEMORY_LIMIT_ENV}={env!r}")
    return DEFAULT_MEMORY_LIMIT


# Per array object and per step, the Python objects a stepwise cache holds beside the data
# (array headers, the step's dict): measured with tracemalloc on CPython 3.12, NumPy 2.
ARRAY_OBJECT_BYTES = 100
STEP_OBJECT_BYTES = 200


@dataclass(frozen=True)
class CacheCost:
    """Bytes a forward's cache keeps: T * B * per_row_step + T * per_step + B * per_row."""

    per_row_step: int
    per_step: int
    per_row: int

    def bytes(self, T, B) -> int:
        return int(T) * (int(B) * self.per_row_step + self.per_step) + int(B) * self.per_row


def stepwise_cost(cell) -> CacheCost:
    """The stepwise path's cache, from the cell's own count of one step (step_cache_size) plus
    the (T, B, H) outputs h."""
    floats, arrays, step_floats = cell.step_cache_size()
    itemsize = cell.dtype.itemsize
    return CacheCost(per_row_step=int((floats + cell.hidden_size) * itemsize),
                     per_step=int(step_floats * itemsize) + arrays * ARRAY_OBJECT_BYTES
                     + STEP_OBJECT_BYTES, per_row=0)


def fused_cost(cell, cache_floats) -> CacheCost:
    """A fused pair's cache, from its count (floats per row and step, floats per row once)."""
    per_row_step, per_row = cache_floats(cell)
    itemsize = cell.dtype.itemsize
    return CacheCost(per_row_step=int(per_row_step * itemsize), per_step=0,
                     per_row=int(per_row * itemsize))


def check_memory(cell, T, B, cost: CacheCost, max_cache_bytes=None):
    """Raise MemoryLimitError before a forward whose cache (``cost``) would exceed the limit."""
    if max_cache_bytes is None:
        limit = get_memory_limit()
    else:
        limit = _parse_limit(max_cache_bytes, "max_cache_bytes")
    if limit == float("inf"):
        return None
    needed = cost.bytes(T, B)
    if needed <= limit:
        return needed
    chunk = int((limit - B * cost.per_row) // (B * cost.per_row_step + cost.per_step))
    advice = (
        f"use truncated BPTT: forward/backward over chunks of at most T={chunk} steps, carrying "
        "the state from one chunk to the next (h, state, cache = npcell.forward(cell, "
        "x[t0:t1], state))" if chunk >= 1 else
        f"even one step of batch {B} does not fit: use a smaller batch"
    )
    raise MemoryLimitError(
        f"forward over T={T}, B={B} with a {cell.kind} cell (X={cell.input_size}, "
        f"H={cell.hidden_size}, {cell.dtype.name}) would cache {_human(needed)} for backward, "
        f"more than the limit of {_human(limit)}; {advice}, or raise the limit with "
        f"npcell.set_memory_limit(...), {MEMORY_LIMIT_ENV} or max_cache_bytes="
    )


def _human(nbytes) -> str:
    if nbytes == float("inf"):
        return "no limit"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit} ({int(nbytes):,} bytes)"
    return f"{int(nbytes)} bytes"


# ----- non-finite values --------------------------------------------------------------------
ADVICE = "try gradient clipping or a smaller lr (or smaller inputs)"
# Readable names of cached tensors, in the order a step computes them (so the earliest-computed
# bad tensor of the first bad step is the one reported). Unknown names follow in cache order.
_STEP_NAMES = {
    "u_i": "u_i (cell read of the input gate)", "u_f": "u_f (cell read of the forget gate)",
    "r": "r_t", "z": "z_t", "n": "n_t",
    "g": "g_t", "i": "i_t", "f": "f_t", "c": "c_t",
    "u_o": "u_o (cell read of the output gate)", "o": "o_t",
    "tanh_c": "tanh(c_t)", "A": "A_t (fast weights)", "h": "h_t",
}
def _bad_mask(a):
    xp = array_module(a)
    return ~xp.isfinite(a)


def _describe_entry(a, bad, time_axis, index_names=None):
    """For an array known to hold a NaN/Inf: (entry text, 'NaN' or 'Inf', t or None, index).

    With ``time_axis`` the first axis is t; the other axes are named by ``index_names`` when it
    fits, else (batch row, unit) for 2 axes and (batch row, row, column) for 3."""
    flat = int(array_module(a).argmax(bad.reshape(-1)))
    index = tuple(int(i) for i in numpy.unravel_index(flat, a.shape))
    value = float(a.reshape(-1)[flat])
    what = "NaN" if value != value else "Inf"
    t = index[0] if time_axis else None
    rest = index[1:] if time_axis else index
    if index_names is None or len(index_names) != len(rest):
        index_names = {1: ("entry",), 2: ("batch row", "unit"),
                       3: ("batch row", "row", "column")}.get(len(rest))
    if index_names is None:
        where = f"entry {rest}"
    else:
        where = ", ".join(f"{n} {i}" for n, i in zip(index_names, rest))
    return where, what, t, rest


def _verb(what):
    return "overflowed to Inf" if what == "Inf" else "became NaN"


def first_nonfinite(cell, tensors, *, what, time_major=("x", "h", "dh", "dx"),
                    last_step=False):
    """Raise NonFiniteError for the first tensor in ``tensors`` holding a NaN or Inf, naming the
    tensor, the time step (for (T, ...) arrays named in ``time_major``) and the entry.

    ``last_step=True`` reports the largest bad t (backward runs from t=T-1 down to 0)."""
    for name, a in tensors.items():
        bad = _bad_mask(a)
        if not bool(bad.any()):
            continue
        time_axis = name in time_major and a.ndim >= 2
        if time_axis and last_step:
            per_t = bad.reshape(a.shape[0], -1).any(axis=1)
            t_last = int(a.shape[0] - 1 - int(array_module(a).argmax(per_t[::-1])))
            where, kind, _, _ = _describe_entry(a[t_last:t_last + 1], bad[t_last:t_last + 1],
                                                True)
            t = t_last
        else:
            where, kind, t, _ = _describe_entry(a, bad, time_axis)
        at = f" at t={t}" if t is not None else ""
        raise NonFiniteError(
            f"{name} {_verb(kind)}{at} ({where}) in the {what} of the {cell.kind} cell; {ADVICE}"
        )


def check_inputs_finite(cell, x, state):
    """Before a forward: parameters, x and the initial state must be finite."""
    for name, p in cell.params.items():
        bad = _bad_mask(p)
        if bool(bad.any()):
            where, kind, _, _ = _describe_entry(p, bad, False, ("row", "column"))
            raise NonFiniteError(
                f"parameter {name} of the {cell.kind} cell contains {kind} ({where}) before the "
                f"forward pass: the weights are already broken, usually by an optimiser step that "
                f"diverged; {ADVICE}, and restart from the last good checkpoint"
            )
    for name, a in [("x", x)] + [(f"state[{k!r}]", v) for k, v in state.items()]:
        bad = _bad_mask(a)
        if bool(bad.any()):
            names = ("batch row", "feature") if name == "x" else None
            where, kind, t, _ = _describe_entry(a, bad, name == "x", names)
            at = f" at t={t}" if t is not None else ""
            raise NonFiniteError(
                f"{name} contains {kind}{at} ({where}) before the forward pass of the "
                f"{cell.kind} cell: check the data (or the previous chunk's state)"
            )


def check_forward_finite(cell, h, state_T, cache, fused_tensors=()):
    """After a forward with finite inputs: name the first step and tensor that went NaN/Inf.
    ``fused_tensors``: (step name, (T, ...) array) pairs of a fused cache (engine.step_tensors)."""
    T = cache.T
    found = []  # (t, order, tensor name, entry text, 'NaN'|'Inf')
    if cache.path == "fused":
        for order, (key, steps) in enumerate(fused_tensors):
            bad = _bad_mask(steps)
            if not bool(bad.any()):
                continue
            where, kind, t, _ = _describe_entry(steps, bad, True)
            rank = list(_STEP_NAMES).index(key) if key in _STEP_NAMES else 100 + order
            found.append((t, rank, _STEP_NAMES.get(key, key), where, kind))
    else:
        per_t = _bad_mask(h).reshape(T, -1).any(axis=1)
        for t in range(T if bool(per_t.any()) else 0):  # scan steps only when h shows a problem
            step = cache.steps[t]
            items = step.items() if isinstance(step, dict) else vars(step).items()
            for order, (key, a) in enumerate(items):
                if key == "x" or key.endswith("_prev") or not _is_array(a):
                    continue
                bad = _bad_mask(a)
                if bool(bad.any()):
                    where, kind, _, _ = _describe_entry(a, bad, False)
                    rank = list(_STEP_NAMES).index(key) if key in _STEP_NAMES else 100 + order
                    found.append((t, rank, _STEP_NAMES.get(key, key), where, kind))
            if found or bool(per_t[t]):
                break
    if found:
        t, _, name, where, kind = min(found, key=lambda f: (f[0], f[1]))
        raise NonFiniteError(
            f"{name} {_verb(kind)} at t={t} ({where}) in the forward pass of the {cell.kind} "
            f"cell, although the inputs and parameters were finite; {ADVICE}"
        )
    first_nonfinite(cell, {"h": h, **{f"state_T[{k!r}]": v for k, v in state_T.items()}},
                    what="forward pass")


def check_backward_step(cell, t, dstate_prev, dx_t):
    """Inside the stepwise BPTT loop: the gradients leaving step t must be finite."""
    for name, a in [("dL/dx_t", dx_t)] + [(f"dL/d{k}_(t-1)", v) for k, v in dstate_prev.items()]:
        bad = _bad_mask(a)
        if bool(bad.any()):
            where, kind, _, _ = _describe_entry(a, bad, False)
            raise NonFiniteError(
                f"{name} {_verb(kind)} at t={t} ({where}) in the backward pass of the "
                f"{cell.kind} cell (BPTT runs from t=T-1 down to 0; this is the first step where "
                f"it appeared); {ADVICE}"
            )
