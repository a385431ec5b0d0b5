"""The one sequence driver: forward and backward through time (BPTT) for every cell kind.

``forward(cell, x, state)`` runs the cell over T steps; ``backward(cell, dh, cache, dstate)``
runs BPTT. State goes in and out so truncated BPTT over chunks is just a loop::

    state, dstate = None, None
    for chunk in np.split(x, 4):                     # forward chunk by chunk, carrying state
        h, state, cache = npcell.forward(cell, chunk, state)

Shapes: x (T, B, X) time-major; h (T, B, H); state {'h': (B, H), 'c': (B, H), ...}.
``dh`` is the gradient of the loss with respect to each output h_t (not the gradient passed
between steps); ``dstate`` is the gradient with respect to the *final* state (from a later chunk).

When a cell has a fused ``sequence_forward``/``sequence_backward`` the driver uses it; otherwise
(or with ``fused=False``) it loops the cell's pure step functions. Both give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .backend import array_module, backend_of
from .errors import BackendError, DTypeError, NonFiniteError, ShapeError, shape_str


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


def forward(cell, x, state=None, *, fused=None, check_finite=False):
    """Run ``cell`` over a sequence.

    Parameters
    ----------
    x : (T, B, X) array, same dtype and backend as the cell.
    state : initial state dict (``{'h': (B, H), 'c': (B, H)}``, fast-weight cells add ``A``);
        zeros when None.
    fused : use the cell's fused sequence path (default: when it has one).
    check_finite : raise :class:`NonFiniteError` naming the first step whose output is NaN/Inf.

    Returns
    -------
    h : (T, B, H) outputs; state : final state dict; cache : :class:`SequenceCache`.
    """
    xp = check_input(cell, x)
    T, B, _ = x.shape
    state = check_state(cell, state, B, "state")
    use_fused = _use_fused(cell, fused)
    if use_fused:
        h, state_T, data = cell.sequence_forward(cell.params, x, state)
        cache = SequenceCache(cell.kind, "fused", T, B, cell.params, data=data)
    else:
        h = xp.empty((T, B, cell.hidden_size), dtype=x.dtype)
        steps = []
        state_T = state
        for t in range(T):
            state_T, cache_t = cell.step_forward(cell.params, x[t], state_T)
            h[t] = state_T["h"]
            steps.append(cache_t)
        cache = SequenceCache(cell.kind, "stepwise", T, B, cell.params, steps=steps)
    if check_finite:
        first_nonfinite(cell, {"h": h, **state_T}, what="forward")
    return h, state_T, cache


def backward(cell, dh, cache, dstate=None, *, check_finite=False):
    """BPTT through a cached forward.

    Parameters
    ----------
    dh : (T, B, H) dL/dh_t for every step (None for zeros, e.g. when only the final state matters).
    cache : the :class:`SequenceCache` that :func:`forward` returned.
    dstate : dL/d(final state), a dict with any of the state names (missing names are zeros).

    Returns
    -------
    grads : dict keyed exactly like ``cell.params``; dx : (T, B, X); dstate0 : like the state.
    """
    if not isinstance(cache, SequenceCache):
        raise TypeError(f"cache must be the SequenceCache returned by forward; got {type(cache)}")
    if cache.kind != cell.kind:
        raise ShapeError(f"cache came from a {cache.kind!r} cell, not this {cell.kind!r} cell")
    xp = cell.xp
    T, B, H = cache.T, cache.B, cell.hidden_size
    if dh is None:
        dh = xp.zeros((T, B, H), dtype=cell.dtype)
    else:
        _check_array(cell, dh, "dh", (T, B, H))
    dstate = _complete_dstate(cell, dstate, B)
    if cache.path == "fused":
        grads, dx, dstate0 = cell.sequence_backward(cache.params, dh, cache.data, dstate)
    else:
        grads = cell.zero_grads()
        dx = xp.empty((T, B, cell.input_size), dtype=cell.dtype)
        dstate_t = dict(dstate)
        for t in range(T - 1, -1, -1):
            dstate_t["h"] = dstate_t["h"] + dh[t]  # the loss at step t joins the carried dh
            grads_t, dx[t], dstate_t = cell.step_backward(cache.params, dstate_t, cache.steps[t])
            for name, g in grads_t.items():
                grads[name] += g  # the same weights act at every step: sum over t
        dstate0 = dstate_t
    if check_finite:
        first_nonfinite(cell, {"dx": dx, **{f"d{k}0": v for k, v in dstate0.items()}},
                        what="backward")
        first_nonfinite(cell, {f"dL/d{k}": v for k, v in grads.items()}, what="backward")
    return grads, dx, dstate0


# ----- validation ---------------------------------------------------------------------------
def _use_fused(cell, fused):
    has = hasattr(cell, "sequence_forward") and getattr(cell, "fused", True)
    if fused is None:
        return has
    if fused and not has:
        raise ValueError(f"cell kind {cell.kind!r} has no fused sequence path; use fused=False")
    return bool(fused)


def check_input(cell, x):
    """Validate x as (T, B, X) of the cell's dtype and backend; return the array module."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(
            f"x must be a NumPy or CuPy array of shape (T, B, {cell.input_size}); "
            f"got {type(x).__name__}"
        )
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
            f"x must have at least one step and one sequence; got {shape_str(x.shape)}")
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
    if not hasattr(a, "shape"):
        raise TypeError(
            f"{name} must be an array of shape {shape_str(shape)}; got {type(a).__name__}")
    if tuple(a.shape) != tuple(shape):
        raise ShapeError(f"{name} must have shape {shape_str(shape)}; got {shape_str(a.shape)}")
    _check_dtype_backend(cell, a, name)


def check_state(cell, state, batch, name="state"):
    """Validate a state dict (or None -> zeros) against the cell and batch size."""
    if state is None:
        return cell.zero_state(batch)
    if not isinstance(state, dict):
        raise TypeError(
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
    for key in cell.state_names:
        _check_array(cell, state[key], f"{name}[{key!r}]", shapes[key])
    return {k: state[k] for k in cell.state_names}


def _complete_dstate(cell, dstate, batch):
    xp = cell.xp
    shapes = cell.state_shapes(batch)
    out = {k: xp.zeros(s, dtype=cell.dtype) for k, s in shapes.items()}
    if dstate is None:
        return out
    if not isinstance(dstate, dict):
        raise TypeError(f"dstate must be a dict with keys among {list(cell.state_names)}")
    extra = [k for k in dstate if k not in cell.state_names]
    if extra:
        raise ShapeError(
            f"dstate for a {cell.kind} cell may have keys {list(cell.state_names)}; "
            f"unexpected {extra}"
        )
    for key, value in dstate.items():
        if value is None:
            continue
        _check_array(cell, value, f"dstate[{key!r}]", shapes[key])
        out[key] = value
    return out


def first_nonfinite(cell, tensors, *, what):
    """Raise NonFiniteError naming the first tensor (and time step, for (T, ...) arrays) with a
    NaN or Inf."""
    for name, a in tensors.items():
        xp = array_module(a)
        finite = xp.isfinite(a)
        if bool(finite.all()):
            continue
        if a.ndim == 3 and name in ("h", "dx"):
            bad_t = int(xp.argmin(finite.reshape(a.shape[0], -1).all(axis=1)))
            where = f" at t={bad_t}"
        else:
            where = ""
        raise NonFiniteError(
            f"{name} became NaN/Inf{where} in the {what} pass of the {cell.kind} cell; "
            "try gradient clipping, a smaller learning rate or smaller inputs"
        )
