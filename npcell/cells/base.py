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

    def step_cache_size(self) -> tuple[float, int]:
        """(floats per batch row, array objects) that one step's cache and new state add: what
        the memory guard multiplies by T and B (npcell.checks.cache_bytes). Each kind counts
        them from its step_forward; tests/test_checks.py holds the count to tracemalloc."""
        raise NotImplementedError

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
