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

from dataclasses import dataclass, field

from .backend import array_module
from .checks import (  # noqa: F401 - check_input, check_state, complete_dstate: re-exported
    CacheCost,
    _check_array,
    _check_dtype_backend,
    _quiet_overflow,
    as_array,
    check_backward_step,
    check_cell,
    check_forward_finite,
    check_input,
    check_inputs_finite,
    check_memory,
    check_state,
    complete_dstate,
    first_nonfinite,
    fused_cost,
    get_memory_limit,
    set_memory_limit,
    stepwise_cost,
)
from .engine import fused_pair, step_tensors
from .errors import ArgumentTypeError, ConfigError, ShapeError, check_bool, shape_hint, shape_str


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
    check_finite = check_bool("check_finite", check_finite)
    # before anything (T, B, ...) exists
    check_memory(cell, T, B, cache_cost(cell, use_fused), max_cache_bytes)
    if check_finite:
        check_inputs_finite(cell, x, state)
    with _quiet_overflow(check_finite):  # check_finite reports it precisely instead
        if use_fused:
            h, state_T, data = fused_pair(cell).forward(cell, cell.params, x, state)
            cache = SequenceCache(cell.kind, "fused", T, B, cell.params, data=data)
        else:
            h, state_T, steps = stepwise_forward(cell, x, state, on_step=on_step)
            cache = SequenceCache(cell.kind, "stepwise", T, B, cell.params, steps=steps)
    if check_finite:
        fused = step_tensors(cell, cache.data, T) if cache.path == "fused" else ()
        check_forward_finite(cell, h, state_T, cache, fused)
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
    check_finite = check_bool("check_finite", check_finite)
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
            grads, dx, dstate0 = fused_pair(cell).backward(cell, cache.params, dh, cache.data,
                                                           dstate)
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
            if name in grads and tuple(g.shape) != tuple(grads[name].shape):
                raise ShapeError(
                    f"step_backward of the {cell.kind} cell returned dL/d{name} of shape "
                    f"{shape_str(g.shape)} at t={t}; {name} has shape "
                    f"{shape_str(grads[name].shape)}" + shape_hint(g.shape, grads[name].shape))
            grads[name] += g  # the same weights act at every step: dL/dW = sum over t
        if on_step is not None:
            on_step(t, dstate_t, grads_t, dx[t], dstate)
    return grads, dx, dstate


def _use_fused(cell, fused, on_step=None):
    has = fused_pair(cell) is not None and getattr(cell, "fused", True)
    if on_step is not None:
        if fused:
            raise ConfigError("on_step runs per step of the stepwise path; drop fused=True")
        return False
    if fused is None:
        return has
    fused = check_bool("fused", fused)
    if fused and not has:
        raise ConfigError(f"cell kind {cell.kind!r} has no fused sequence path; use fused=False")
    return fused


def cache_cost(cell, fused=None) -> CacheCost:
    """The cache of the path a forward takes (``fused`` as in :func:`forward`)."""
    if _use_fused(cell, fused):
        return fused_cost(cell, fused_pair(cell).cache_floats)
    return stepwise_cost(cell)


def estimate_cache_bytes(cell, T: int, B: int, fused=None) -> int:
    """Bytes a forward over (T, B, X) keeps for backward (its activations and outputs h), from
    the formula of the path it takes (``fused`` as in :func:`forward`); nothing runs."""
    return cache_cost(cell, fused).bytes(T, B)


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
