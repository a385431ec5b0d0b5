"""What every cell is: parameters with paper names, a pure step pair, a registry and make_cell.

A cell kind is a subclass of :class:`Cell` that declares

* ``kind`` (the ``make_cell`` name), ``equations`` (text shown by :meth:`Cell.describe`),
* ``default_options`` (every option it accepts, with its default), ``check_options``,
* ``param_shapes()`` -> ordered ``{paper name: shape}``,
* ``gate_blocks()`` -> ``{gate: [parameter names]}`` (rows of the gradcheck report),
* ``step_forward(params, x_t, state) -> (state, cache_t)`` and
  ``step_backward(params, dstate, cache_t) -> (grads_t, dx_t, dstate_prev)``.

The engine (npcell/engine/) may register a fused pair over whole sequences for a kind (speed
only); npcell.sequence runs it when registered and a test holds it equal to the step loop.
Shapes: x_t (B, X), state arrays (B, H) (fast-weight A: (B, H, H)), W (out, in), b (out,).
"""

from __future__ import annotations

import copy
import functools
import math

import numpy

from ..backend import array_module, backend_of, current_xp, resolve_dtype, to_numpy, xp_for
from ..checks import get_memory_limit
from ..errors import (
    ConfigError,
    DTypeError,
    MemoryLimitError,
    ShapeError,
    check_bool,
    check_int,
    check_real,
    shape_str,
)

CELLS: dict[str, type[Cell]] = {}
PROBE_SIZES = (1, 2, 3)  # hidden sizes of the probe cells that fix the cache formula


def register(cls):
    """Class decorator: make a Cell subclass available to :func:`make_cell` under ``cls.kind``."""
    CELLS[cls.kind] = cls
    return cls


class Cell:
    kind = "abstract"
    equations = ""
    state_names: tuple[str, ...] = ("h", "c")
    default_options: dict = {}

    def __init__(self, input_size, hidden_size, *, dtype="float64", seed=0, xp=None, **options):
        self.input_size = check_int("input_size", input_size)
        self.hidden_size = check_int("hidden_size", hidden_size)
        self.dtype = resolve_dtype(dtype)
        unknown = sorted(set(options) - set(self.default_options))
        if unknown:
            allowed = ", ".join(sorted(self.default_options)) or "none"
            raise ConfigError(
                f"unknown option(s) {unknown} for cell kind {self.kind!r}; "
                f"options it accepts: {allowed}"
            )
        self.options = {**self.default_options,
                        **_checked_option_types(self.kind, self.default_options, options)}
        self.check_options()
        xp = xp or current_xp()
        if seed is not None:
            check_int("seed", seed, 0)
        _check_param_memory(self)
        rng = numpy.random.default_rng(seed)
        # Draw on the host with a seeded Generator, then move: identical weights on both backends.
        host = self.init_params(rng)
        expected = self.param_shapes()
        assert list(host) == list(expected), (list(host), list(expected))
        self.params = {name: xp.asarray(value, dtype=self.dtype) for name, value in host.items()}

    # ----- what a kind defines ---------------------------------------------------------------
    def check_options(self):
        """Raise ConfigError for option values out of range (default: accept all)."""

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        raise NotImplementedError

    def gate_blocks(self) -> dict[str, list[str]]:
        """Gate block -> parameter names, for the per-gate rows of the gradcheck report."""
        return {}

    def gate_activations(self) -> dict[str, str] | None:
        """Step-cache key of each gate output -> its activation ('sigmoid', 'tanh', 'relu').

        Read by :func:`npcell.diagnose` for the saturation maps; None lets it infer them.
        """
        return None

    def init_params(self, rng) -> dict:
        """PyTorch-style default: every parameter U(-1/sqrt(H), 1/sqrt(H))."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        return {
            name: rng.uniform(-bound, bound, size=shape)
            for name, shape in self.param_shapes().items()
        }

    def step_cache_size(self) -> tuple[float, int, float]:
        """(floats per batch row, array objects, floats per step) that one step's cache and new
        state add: what the memory guard multiplies by T and B (npcell.checks.stepwise_cost).

        Derived from the kind's own step_forward, not counted by hand: :func:`_step_cache_formula`
        runs one step of tiny probe cells of this class and options; tests/test_checks.py holds
        the result to tracemalloc."""
        options = tuple(sorted(self.options.items()))
        per_row, objects, per_step = _step_cache_formula(type(self), options)
        return per_row(self.hidden_size), objects, per_step(self.hidden_size)

    def step_forward(self, params, x_t, state):
        raise NotImplementedError

    def step_backward(self, params, dstate, cache_t):
        raise NotImplementedError

    # ----- shared behaviour ------------------------------------------------------------------
    @property
    def xp(self):
        return array_module(*self.params.values())

    @property
    def backend(self) -> str:
        return backend_of(next(iter(self.params.values())))

    @property
    def num_params(self) -> int:
        return int(sum(math.prod(s) for s in self.param_shapes().values()))

    def state_shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        return {name: (batch, self.hidden_size) for name in self.state_names}

    def zero_state(self, batch: int, xp=None) -> dict:
        xp = xp or self.xp
        return {
            name: xp.zeros(shape, dtype=self.dtype)
            for name, shape in self.state_shapes(batch).items()
        }

    def zero_grads(self) -> dict:
        xp = self.xp
        return {name: xp.zeros_like(p) for name, p in self.params.items()}

    def copy(self) -> Cell:
        """A deep copy (parameters copied too)."""
        twin = copy.copy(self)
        twin.options = dict(self.options)
        twin.params = {name: p.copy() for name, p in self.params.items()}
        return twin

    def astype(self, dtype) -> Cell:
        """A copy of the cell with parameters cast to ``dtype`` ('float32' or 'float64')."""
        twin = self.copy()
        twin.dtype = resolve_dtype(dtype)
        twin.params = {name: p.astype(twin.dtype) for name, p in self.params.items()}
        return twin

    def to(self, backend: str) -> Cell:
        """A copy of the cell on ``backend`` ('numpy' or 'cupy')."""
        xp = xp_for(backend)
        twin = self.copy()
        twin.params = {name: xp.asarray(to_numpy(p)) for name, p in self.params.items()}
        return twin

    def set_params(self, values: dict):
        """Copy arrays into the parameters in place, checking names, shapes and dtypes."""
        unknown = sorted(set(values) - set(self.params))
        if unknown:
            raise ConfigError(
                f"unknown parameter(s) {unknown} for {self.kind}; it has {list(self.params)}"
            )
        for name, value in values.items():
            target = self.params[name]
            value = self.xp.asarray(value)
            if value.shape != target.shape:
                raise ShapeError(
                    f"parameter {name} of {self.kind} must have shape {shape_str(target.shape)}; "
                    f"got {shape_str(value.shape)}"
                )
            if value.dtype != target.dtype:
                raise DTypeError(
                    f"parameter {name} of {self.kind} is {target.dtype}; got {value.dtype} "
                    "(cast it first; npcell never casts silently)"
                )
            target[...] = value
        return self

    def describe(self) -> str:
        """The cell's equations, option values and parameter count, as printable text."""
        lines = [
            f"{type(self).__name__} (kind={self.kind!r}): X={self.input_size}, "
            f"H={self.hidden_size}, dtype={self.dtype.name}, backend={self.backend}",
            "",
            self.equations.strip("\n"),
            "",
            "options: " + (", ".join(f"{k}={v!r}" for k, v in self.options.items()) or "none"),
            "parameters:",
        ]
        for name, shape in self.param_shapes().items():
            lines.append(f"  {name:<8} {shape_str(shape)}")
        lines.append(f"total parameters: {self.num_params:,}")
        return "\n".join(lines)

    def __repr__(self):
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items()
                       if v != self.default_options[k])
        return (
            f"{type(self).__name__}(kind={self.kind!r}, input_size={self.input_size}, "
            f"hidden_size={self.hidden_size}, dtype={self.dtype.name!r}, "
            f"backend={self.backend!r}{opts}, params={self.num_params})"
        )


def _checked_option_types(kind, defaults, options) -> dict:
    """An option must have the type of its default (bool for bool, an int for an int, a finite
    real number for a float, a string for a string), so a wrong type fails here with a clear
    message instead of deep inside the math; the values come back as Python bool/int/float.
    Range checks stay in each kind's check_options."""
    checked = {}
    for name, value in options.items():
        default, label = defaults[name], f"option {name} of cell kind {kind!r}"
        if isinstance(default, (bool, numpy.bool_)):
            value = check_bool(label, value)
        elif isinstance(default, (int, numpy.integer)):
            value = check_int(label, value, low=None)
        elif isinstance(default, (float, numpy.floating)):
            value = check_real(label, value)
        elif isinstance(default, str) and not isinstance(value, str):
            raise ConfigError(f"{label} must be a string (default {default!r}); got {value!r} "
                              f"({type(value).__name__})")
        checked[name] = value  # no default type to hold the value to: check_options decides
    return checked


def _check_param_memory(cell):
    """Refuse (MemoryLimitError) parameters larger than the memory limit before drawing them."""
    nbytes = cell.num_params * cell.dtype.itemsize
    limit = get_memory_limit()
    if nbytes > limit:
        raise MemoryLimitError(
            f"a {cell.kind} cell with input_size={cell.input_size}, hidden_size="
            f"{cell.hidden_size} has {cell.num_params:,} parameters = {nbytes:,} bytes in "
            f"{cell.dtype.name}, more than the memory limit of {limit:,} bytes; use smaller "
            "sizes or raise the limit with npcell.set_memory_limit(...)"
        )


def make_cell(kind: str, input_size: int, hidden_size: int, *, dtype="float64", seed=0,
              backend=None, **options) -> Cell:
    """Build a cell of ``kind`` with paper-named parameters.

    Parameters
    ----------
    kind : one of :data:`CELLS` (``'lstm'``, ``'peephole'``, ``'wmc'``, ...).
    input_size, hidden_size : X and H.
    dtype : ``'float64'`` (default; teaching and gradient checks) or ``'float32'``.
    seed : seeds the ``numpy.random.Generator`` that draws the initial weights.
    backend : ``'numpy'`` or ``'cupy'``; default: the current backend.
    **options : kind-specific options (see ``cell.describe()`` and ``Cell.default_options``).
    """
    if not isinstance(kind, str) or kind not in CELLS:
        raise ConfigError(f"unknown cell kind {kind!r}; expected one of {sorted(CELLS)}")
    xp = xp_for(backend) if backend is not None else None
    return CELLS[kind](input_size, hidden_size, dtype=dtype, seed=seed, xp=xp, **options)


def require_option(cell, name, allowed):
    value = cell.options[name]
    if value not in allowed:
        raise ConfigError(
            f"option {name}={value!r} is not valid for cell kind {cell.kind!r}; "
            f"expected one of {list(allowed)}"
        )


@functools.cache
def _step_cache_formula(cls, options):
    """(floats per batch row (a function of H), array objects, floats per step (of H)) that one
    step of ``cls`` with ``options`` adds.

    One step of a probe cell (X = 1, float64 zeros) for each batch size B = 1, 2 and hidden size
    H of :data:`PROBE_SIZES` counts what step_forward allocates: every array in its cache and
    new state that is not one of its inputs is one object, and the arrays that own their memory
    add their size. The difference between B = 2 and B = 1 is the part per batch row, the rest
    is per step (e.g. a (4H,) sum over the batch). Each part is a polynomial of degree <= 2 in H
    (a fast-weight A_t is H x H), so three sizes fix it exactly. The driver's view x[t], held by
    each step's cache, is one more object.
    """
    rows, steps = [], []
    for H in PROBE_SIZES:
        (f1, objects), (f2, _) = (_one_step_allocates(cls, options, B, H) for B in (1, 2))
        rows.append(f2 - f1)
        steps.append(2 * f1 - f2)
    return _quadratic(*rows), objects + 1, _quadratic(*steps)


def _one_step_allocates(cls, options, B, H):
    """(floats, array objects) that one step_forward of a (X = 1, H) probe cell allocates."""
    probe = cls(1, H, seed=0, xp=numpy, **dict(options))
    x_t = numpy.zeros((B, 1))
    state = probe.zero_state(B)
    new_state, cache_t = probe.step_forward(probe.params, x_t, state)
    inputs = {id(a) for a in (x_t, *state.values(), *probe.params.values())}
    seen, owners, floats = set(), set(), 0
    for a in _arrays_in([cache_t, new_state]):
        if id(a) in inputs or id(a) in seen:
            continue
        seen.add(id(a))
        owner = a
        while isinstance(owner.base, numpy.ndarray):  # a view keeps all of its base alive
            owner = owner.base
        if id(owner) not in inputs and id(owner) not in owners:
            owners.add(id(owner))
            floats += owner.size
    return floats, len(seen)


def _quadratic(f1, f2, f3):
    """The polynomial a H^2 + b H + c through (1, f1), (2, f2), (3, f3), as a function."""
    a = (f3 - 2 * f2 + f1) / 2
    b = f2 - f1 - 3 * a
    c = f1 - a - b
    return lambda H: a * H * H + b * H + c


def _arrays_in(value):
    """Every array inside nested dicts, lists and tuples."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from _arrays_in(v)
    elif hasattr(value, "nbytes") and hasattr(value, "base"):
        yield value
