"""The one sequence driver: forward and backward through time (BPTT) for every cell kind.

``forward(cell, x, state)`` runs the cell over T steps; ``backward(cell, dh, cache, dstate)``
runs BPTT. State goes in and out so truncated BPTT over chunks is just a loop::

    state, dstate = None, None
    for chunk in np.split(x, 4):                     # forward chunk by chunk, carrying state
        h, state, cache = npcell.forward(cell, chunk, state)

Shapes: x (T, B, X) time-major; h (T, B, H); state {'h': (B, H), 'c': (B, H), ...}.
``dh`` is the gradient of the loss with respect to each output h_t (not the gradient passed
between steps); ``dstate`` is the gradient with respect to the *final* state (from a later chunk).

When the engine registers a fused pair for the cell's kind (npcell.engine.fused_pair) the driver
uses it; otherwise (or with ``fused=False``) it loops the cell's pure step functions. Both give
the same numbers.

The step loops are :func:`stepwise_forward` and :func:`stepwise_backward` (the one BPTT loop in
npcell). Each takes a per-step hook, and so do ``forward``/``backward`` (``on_step=``), which
is how ``diagnose`` measures every step without a loop of its own::

    h, state_T, cache = forward(cell, x, on_step=lambda t, state_t, cache_t: ...)
    grads, dx, dstate0 = backward(
        cell, dh, cache, on_step=lambda t, dstate_t, grads_t, dx_t, dstate_prev: ...)
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field

import numpy  # host-side only: validating and converting inputs, never for the cell's math

from .backend import array_module, backend_of, is_cupy_array
from .engine import PACKED_ORDER, fused_pair
from .errors import (
    ArgumentTypeError,
    BackendError,
    ConfigError,
    DTypeError,
    MemoryLimitError,
    NonFiniteError,
    ShapeError,
    shape_str,
)


@dataclass
class SequenceCache:
    """Everything backward needs. ``path`` is 'fused' (``data`` holds (T, ...) buffers) or
    'stepwise' (``steps`` holds one named cache per step)."""

    kind: str
    path: str
    T: int
    B: int
    params: dict
    steps: list = field(default_factory=list)
    data: dict = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Bytes held by the cached activations (arrays counted once, parameters excluded)."""
        seen, total = set(), 0
        arrays = list(self.data.values()) + [v for s in self.steps for v in s.values()]
        for a in arrays:
            if hasattr(a, "nbytes") and id(a) not in seen:
                seen.add(id(a))
                total += int(a.nbytes)
        return total


def forward(cell, x, state=None, *, fused=None, check_finite=False, max_cache_bytes=None,
            on_step=None):
    """Run ``cell`` over a sequence.

    Parameters
    ----------
    x : (T, B, X) array, same dtype and backend as the cell.
    state : initial state dict (``{'h': (B, H), 'c': (B, H)}``, fast-weight cells add ``A``);
        zeros when None.
    fused : use the cell's fused sequence path (default: when it has one).
    check_finite : refuse NaN/Inf in the parameters, x and state, and after the pass raise
        :class:`NonFiniteError` naming the first time step and tensor that went NaN/Inf.
    max_cache_bytes : refuse (:class:`MemoryLimitError`) when the cache would be larger; default
        :func:`get_memory_limit` (8 GiB unless set by :func:`set_memory_limit` or the
        ``NPCELL_MEMORY_LIMIT`` environment variable).
    on_step : optional per-step hook ``on_step(t, state_t, cache_t)``, called after step t
        (see :func:`stepwise_forward`); it needs the stepwise path, so it implies ``fused=False``.

    ``x`` and the state may also be nested lists of numbers (converted to the cell's dtype);
    arrays must already have the cell's dtype and backend.

    Returns
    -------
    h : (T, B, H) outputs; state : final state dict; cache : :class:`SequenceCache`.
    """
    check_cell(cell)
    x = as_array(cell, x, "x")
    check_input(cell, x)
    T, B, _ = x.shape
    state = check_state(cell, state, B, "state")
    use_fused = _use_fused(cell, fused, on_step)
    check_finite = _flag("check_finite", check_finite)
    check_memory(cell, T, B, max_cache_bytes, use_fused)  # before anything (T, B, ...) exists
    if check_finite:
        check_inputs_finite(cell, x, state)
    with _quiet_overflow(check_finite):  # check_finite reports it precisely instead
        if use_fused:
            fused_forward, _ = fused_pair(cell)
            h, state_T, data = fused_forward(cell, cell.params, x, state)
            cache = SequenceCache(cell.kind, "fused", T, B, cell.params, data=data)
        else:
            h, state_T, steps = stepwise_forward(cell, x, state, on_step=on_step)
            cache = SequenceCache(cell.kind, "stepwise", T, B, cell.params, steps=steps)
    if check_finite:
        check_forward_finite(cell, h, state_T, cache)
    return h, state_T, cache


def backward(cell, dh, cache, dstate=None, *, check_finite=False, on_step=None):
    """BPTT through a cached forward.

    Parameters
    ----------
    dh : (T, B, H) dL/dh_t for every step (None for zeros, e.g. when only the final state matters).
    cache : the :class:`SequenceCache` that :func:`forward` returned.
    dstate : dL/d(final state), a dict with any of the state names (missing names are zeros).
    on_step : optional per-step hook ``on_step(t, dstate_t, grads_t, dx_t, dstate_prev)``
        (see :func:`stepwise_backward`); it needs a stepwise cache (``forward(..., fused=False)``
        or ``forward(..., on_step=...)``).

    Returns
    -------
    grads : dict keyed exactly like ``cell.params``; dx : (T, B, X); dstate0 : like the state.
    """
    check_cell(cell)
    _check_cache(cell, cache)
    if on_step is not None and cache.path != "stepwise":
        raise ConfigError("backward(on_step=...) needs the stepwise cache; run "
                          "forward(..., fused=False) or forward(..., on_step=...) first")
    check_finite = _flag("check_finite", check_finite)
    xp = cell.xp
    T, B, H = cache.T, cache.B, cell.hidden_size
    if dh is None:
        dh = xp.zeros((T, B, H), dtype=cell.dtype)
    else:
        dh = as_array(cell, dh, "dh")
        _check_array(cell, dh, "dh", (T, B, H))
    dstate = complete_dstate(cell, dstate, B)
    if check_finite:
        first_nonfinite(cell, {"dh": dh, **{f"dstate[{k!r}]": v for k, v in dstate.items()}},
                        what="input of the backward pass")
    with _quiet_overflow(check_finite):
        if cache.path == "fused":
            _, fused_backward = fused_pair(cell)
            grads, dx, dstate0 = fused_backward(cell, cache.params, dh, cache.data, dstate)
        else:
            def after_step(t, dstate_t, grads_t, dx_t, dstate_prev):
                if check_finite:
                    check_backward_step(cell, t, dstate_prev, dx_t)
                if on_step is not None:
                    on_step(t, dstate_t, grads_t, dx_t, dstate_prev)

            grads, dx, dstate0 = stepwise_backward(
                cell, dh, cache.steps, dstate, params=cache.params,
                on_step=after_step if check_finite or on_step is not None else None)
    if check_finite:  # dx first, in BPTT order (from t=T-1 down), then dstate0, then dL/dW
        first_nonfinite(cell, {"dx": dx, **{f"d{k}0": v for k, v in dstate0.items()}},
                        what="backward pass", last_step=True)
        first_nonfinite(cell, {f"dL/d{k}": v for k, v in grads.items()}, what="backward pass")
    return grads, dx, dstate0


# ----- the stepwise loops -------------------------------------------------------------------
# The one forward loop and the one BPTT loop over a cell's pure step pair. forward/backward run
# them when a cell has no fused pair (or with fused=False); diagnose runs them with its hooks
# to measure every step. Hooks observe: they must not modify the arrays they are given.
def stepwise_forward(cell, x, state, *, params=None, on_step=None):
    """Loop ``cell.step_forward`` over x.

    x : (T, B, X); state : the initial state dict ({'h': (B, H), 'c': (B, H), ...}), complete.
    params : the parameter dict (default ``cell.params``).
    on_step : optional ``on_step(t, state_t, cache_t)`` called after step t with the new state
        (h_t, c_t, ...) and the step's named cache.

    Returns h (T, B, H), the final state, and the list of T step caches.
    """
    params = cell.params if params is None else params
    T, B, _ = x.shape
    h = array_module(x).empty((T, B, cell.hidden_size), dtype=x.dtype)
    steps = []
    for t in range(T):
        state, cache_t = cell.step_forward(params, x[t], state)
        h[t] = state["h"]
        steps.append(cache_t)
        if on_step is not None:
            on_step(t, state, cache_t)
    return h, state, steps


def stepwise_backward(cell, dh, steps, dstate, *, params=None, on_step=None):
    """BPTT: loop ``cell.step_backward`` from t = T-1 down to 0 and sum the weight gradients.

    dh : (T, B, H) dL/dh_t from the loss at each step; steps : the T step caches of
    :func:`stepwise_forward`; dstate : dL/d(final state), a complete dict.
    params : the parameter dict (default ``cell.params``).
    on_step : optional ``on_step(t, dstate_t, grads_t, dx_t, dstate_prev)`` called after step t:
        dstate_t is dL/d(state_t) as step t received it (the loss's dh[t] included), grads_t
        this step's contribution to every weight gradient (keyed like params), dx_t (B, X)
        dL/dx_t, and dstate_prev dL/d(state_{t-1}).

    Returns grads (keyed like params), dx (T, B, X) and dL/d(initial state).
    """
    params = cell.params if params is None else params
    T = len(steps)
    grads = cell.zero_grads()
    dx = array_module(dh).empty((T, dh.shape[1], cell.input_size), dtype=dh.dtype)
    dstate = dict(dstate)
    for t in range(T - 1, -1, -1):
        dstate_t = dict(dstate)
        dstate_t["h"] = dstate_t["h"] + dh[t]  # the loss at step t joins the carried dL/dh_t
        grads_t, dx[t], dstate = cell.step_backward(params, dstate_t, steps[t])
        for name, g in grads_t.items():
            grads[name] += g  # the same weights act at every step: dL/dW = sum over t
        if on_step is not None:
            on_step(t, dstate_t, grads_t, dx[t], dstate)
    return grads, dx, dstate


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
    missing = [k for k in cell.state_names if k not in state]
    extra = [k for k in state if k not in cell.state_names]
    if missing or extra:
        raise ShapeError(
            f"{name} for a {cell.kind} cell must have keys {list(cell.state_names)}; "
            f"missing {missing}, unexpected {extra}"
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


def _check_cache(cell, cache):
    """The cache must come from forward on a cell of this kind, sizes, dtype and backend."""
    if not isinstance(cache, SequenceCache):
        raise ArgumentTypeError(
            "cache must be the SequenceCache returned by npcell.forward; "
            f"got {type(cache).__name__}"
        )
    if cache.kind != cell.kind:
        raise ShapeError(f"cache came from a {cache.kind!r} cell, not this {cell.kind!r} cell")
    mine = {n: tuple(p.shape) for n, p in cell.params.items()}
    theirs = {n: tuple(p.shape) for n, p in cache.params.items()}
    if mine != theirs:
        differ = [n for n in mine if theirs.get(n) != mine[n]]
        differ += [n for n in theirs if n not in mine]
        raise ShapeError(
            f"cache came from a {cache.kind} cell with other sizes or options than this one "
            f"(X={cell.input_size}, H={cell.hidden_size}); parameters that differ: {differ[:6]}"
        )
    first = next(iter(cache.params.values()))
    _check_dtype_backend(cell, first, "the cache")


def _quiet_overflow(check_finite):
    """With check_finite, NumPy's overflow/invalid RuntimeWarnings are noise: npcell raises a
    NonFiniteError naming the step and tensor instead."""
    if check_finite:
        return numpy.errstate(over="ignore", invalid="ignore", divide="ignore")
    return contextlib.nullcontext()


def _flag(name, value):
    if not isinstance(value, (bool, numpy.bool_)):
        raise ConfigError(f"{name} must be True or False; got {value!r} ({type(value).__name__})")
    return bool(value)


def _use_fused(cell, fused, on_step=None):
    has = fused_pair(cell) is not None and getattr(cell, "fused", True)
    if on_step is not None:
        if fused:
            raise ConfigError("on_step runs per step of the stepwise path; drop fused=True")
        return False
    if fused is None:
        return has
    fused = _flag("fused", fused)
    if fused and not has:
        raise ConfigError(f"cell kind {cell.kind!r} has no fused sequence path; use fused=False")
    return fused


# ----- memory guard -------------------------------------------------------------------------
# forward keeps every step's activations for backward, so its cache grows as T * B * H. A long
# sequence can ask for tens of GiB and take the machine down; the guard refuses up front instead
# and says how much it would have needed. The limit comes from, in order: the max_cache_bytes=
# argument, npcell.set_memory_limit(...), the NPCELL_MEMORY_LIMIT environment variable (bytes,
# or with a K/M/G/T suffix, or "off"), and DEFAULT_MEMORY_LIMIT.
DEFAULT_MEMORY_LIMIT = 8 * 2**30
MEMORY_LIMIT_ENV = "NPCELL_MEMORY_LIMIT"
_memory_limit = {"bytes": None}  # None: use the environment variable or the default
_step_bytes_memo: dict = {}
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


def _held_bytes(obj, exclude, seen) -> int:
    """Bytes held by the arrays reachable from obj (dicts, lists, tuples, dataclass caches):
    each data buffer counted once however many views point into it, plus the Python objects
    themselves (array headers, dicts), which matter when B * H is small. ``exclude``: ids of
    buffers that exist anyway (x, the initial state, the parameters)."""
    if id(obj) in seen or id(obj) in exclude:
        return 0
    seen.add(id(obj))
    if _is_array(obj):
        root = obj
        while getattr(root, "base", None) is not None and _is_array(root.base):
            root = root.base
        header = sys.getsizeof(obj) - (int(obj.nbytes) if root is obj and not
                                       is_cupy_array(obj) else 0)
        if root is not obj and (id(root) in seen or id(root) in exclude):
            return header
        seen.add(id(root))
        return header + int(root.nbytes)
    if isinstance(obj, dict):
        items = obj.values()
    elif isinstance(obj, (list, tuple)):
        items = obj
    elif hasattr(obj, "__dict__") and not callable(obj):
        items = vars(obj).values()
    else:
        return 0
    return sys.getsizeof(obj) + sum(_held_bytes(v, exclude, seen) for v in items)


def _measure_cache(cell, T, B, fused) -> int:
    """What a forward over (T, B, X) holds when it returns, beyond its inputs."""
    xp = cell.xp
    x = xp.zeros((T, B, cell.input_size), dtype=cell.dtype)
    state = cell.zero_state(B)
    h, state_T, cache = forward(cell, x, state, fused=fused, max_cache_bytes=float("inf"))
    exclude = {id(x), *(id(v) for v in state.values()), *(id(p) for p in cell.params.values())}
    return _held_bytes((h, state_T, cache.data, cache.steps), exclude, set())


def _cache_cost(cell, fused) -> tuple[int, int, int]:
    """(bytes per batch row and step, bytes per step, fixed bytes) of a forward's cache: the
    arrays grow with T * B, Python objects (array headers, per-step dicts) with T only.

    Measured once per cell configuration by running the same path over T in {1, 2} and B in
    {1, 2} (step functions are pure and the fused path only writes its own buffers, so this
    changes nothing)."""
    use_fused = _use_fused(cell, fused)
    options = tuple(getattr(cell, "options", {}).items())
    key = (type(cell), cell.kind, cell.input_size, cell.hidden_size, cell.dtype, options,
           use_fused)
    try:
        hash(key)
    except TypeError:  # an option value that is a list or an array
        key = key[:5] + (repr(options), use_fused)
    if key not in _step_bytes_memo:
        try:
            held = {(T, B): _measure_cache(cell, T, B, use_fused) for T in (1, 2) for B in (1, 2)}
            step_1 = held[2, 1] - held[1, 1]  # one more step of one row
            step_2 = held[2, 2] - held[1, 2]  # one more step of two rows
            per_row_step = max(step_2 - step_1, 1)
            per_step = max(step_1 - per_row_step, 0)
            fixed = max(held[1, 1] - step_1, 0)
        except Exception:  # noqa: BLE001 - a broken cell must not hide behind the guard
            per_row_step, per_step, fixed = 16 * cell.hidden_size * cell.dtype.itemsize, 0, 0
        _step_bytes_memo[key] = (per_row_step, per_step, fixed)
    return _step_bytes_memo[key]


def estimate_cache_bytes(cell, T: int, B: int, fused=None) -> int:
    """Bytes a forward over (T, B, X) keeps for backward (its activations and outputs h),
    from the measured cost of the path it takes (``fused`` as in :func:`forward`)."""
    per_row_step, per_step, fixed = _cache_cost(cell, fused)
    return int(T) * (int(B) * per_row_step + per_step) + fixed


def check_memory(cell, T, B, max_cache_bytes=None, fused=None):
    """Raise MemoryLimitError before a forward whose cache would exceed the limit."""
    if max_cache_bytes is None:
        limit = get_memory_limit()
    else:
        limit = _parse_limit(max_cache_bytes, "max_cache_bytes")
    if limit == float("inf"):
        return None
    needed = estimate_cache_bytes(cell, T, B, fused)
    if needed <= limit:
        return needed
    per_row_step, per_step, fixed = _cache_cost(cell, fused)
    chunk = int((limit - fixed) // (B * per_row_step + per_step))
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
# The fused LSTM-family buffers, as the step names above (u_if holds u_i and u_f side by side).
_FUSED_KEYS = {"u_if": "u_i", "cs": "c", "u_o": "u_o", "tanh_cs": "tanh_c", "hs": "h"}
_FUSED_GATE_KINDS = ("lstm", "peephole", "wmc")  # whose "gates" buffer is PACKED_ORDER blocks


def _fused_step_tensors(cell, data, T):
    """(step name, (T, ...) array) pairs for a fused cache; the packed (T, B, 4H) gate buffer
    of the LSTM family is split into its gates so a report can name i_t, f_t, g_t or o_t."""
    H = cell.hidden_size
    out = []
    for key, a in data.items():
        if key == "x" or not _is_array(a) or a.ndim < 2 or a.shape[0] not in (T, T + 1):
            continue
        a = a[a.shape[0] - T:]  # (T + 1, ...) buffers hold the initial state at index 0
        if key == "gates" and cell.kind in _FUSED_GATE_KINDS and a.shape[-1] == 4 * H:
            out += [(gate, a[..., n * H:(n + 1) * H]) for n, gate in enumerate(PACKED_ORDER)]
        else:
            out.append((_FUSED_KEYS.get(key, key), a))
    return out


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


def check_forward_finite(cell, h, state_T, cache):
    """After a forward with finite inputs: name the first step and tensor that went NaN/Inf."""
    T = cache.T
    found = []  # (t, order, tensor name, entry text, 'NaN'|'Inf')
    if cache.path == "fused":
        for order, (key, steps) in enumerate(_fused_step_tensors(cell, cache.data, T)):
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
