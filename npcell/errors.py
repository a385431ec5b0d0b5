"""npcell's error hierarchy.

Every error npcell raises on purpose derives from :class:`NpcellError`, so a course platform or a
notebook can catch one class. Each also derives from the builtin a NumPy user would expect
(``ShapeError`` is a ``ValueError``, ``DTypeError`` a ``TypeError``), so existing ``except`` clauses
keep working. Messages say what was expected, what arrived, and where.
"""

from __future__ import annotations

import math
import numbers


class NpcellError(Exception):
    """Base class of every error npcell raises deliberately."""


class ShapeError(NpcellError, ValueError):
    """An array has the wrong rank or size (the message names the argument and both shapes)."""


class DTypeError(NpcellError, TypeError):
    """An array has the wrong dtype, or dtypes are mixed."""


class BackendError(NpcellError, RuntimeError):
    """CuPy asked for but absent, or NumPy and CuPy arrays mixed in one call."""


class NonFiniteError(NpcellError, FloatingPointError):
    """A NaN or Inf appeared (message names the tensor and the first time step)."""


class ConfigError(NpcellError, ValueError):
    """Unknown cell kind, unknown option, or an option value out of range."""


class CheckpointError(NpcellError, OSError):
    """A checkpoint file is missing, truncated, corrupt, of another version or of other shapes."""


class MemoryLimitError(NpcellError, MemoryError):
    """A forward pass would need more cache memory than the configured limit."""


class ArgumentTypeError(NpcellError, TypeError):
    """An argument is not of a type npcell accepts: not an array where one is expected (or a
    nested list of numbers), not a dict for a state, not the cache that ``forward`` returned."""


class UsageError(NpcellError, ValueError):
    """A command-line user error (unknown name, bad flag value): ``npcell`` reports it in one
    line and exits 2."""


def shape_str(shape) -> str:
    """Render a shape the way NumPy prints it, e.g. ``(5, 3, 2)``."""
    return "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def shape_hint(got, want) -> str:
    """The usual reason a gradient has shape ``got`` where its tensor has ``want`` (a leading
    space and parentheses), or ''."""
    if len(got) == len(want) + 1 and tuple(got[1:]) == tuple(want):
        return " (missing sum over the batch?)"
    if tuple(got) == tuple(reversed(want)) and tuple(got) != tuple(want):
        return " (transposed W? npcell's W is (out, in))"
    return ""


def key_difference(expected, got) -> str:
    """'' when ``got`` has exactly the keys ``expected``; else "missing [...], unexpected [...]"
    (missing in ``expected``'s order, unexpected in ``got``'s), the tail of a one-line error."""
    missing = [k for k in expected if k not in got]
    extra = [k for k in got if k not in expected]
    return f"missing {missing}, unexpected {extra}" if missing or extra else ""


# ----- the shared argument validators: one per kind of argument --------------------------------
def _type_name(value) -> str:
    return type(value).__name__


def check_int(name, value, low=1) -> int:
    """An int (NumPy ints too, never a bool) >= ``low`` (any int: None), or ConfigError naming
    ``name``."""
    expected = {1: "a positive int", 0: "a non-negative int", None: "an int"}.get(
        low, f"an int >= {low}")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):  # NumPy ints count
        raise ConfigError(f"{name} must be {expected}; got {value!r} ({_type_name(value)})")
    if low is not None and value < low:
        raise ConfigError(f"{name} must be {expected}; got {value!r}")
    return int(value)


def check_real(name, value, *, above=None) -> float:
    """A finite real number (not a bool or a string), > ``above`` when given; else ConfigError."""
    expected = "a finite number" if above is None else f"> {above:g}"
    try:
        ok = not isinstance(value, (bool, str, bytes)) and math.isfinite(value)
    except TypeError:
        ok = False
    if not ok:
        raise ConfigError(f"{name} must be {expected}; got {value!r} ({_type_name(value)})")
    if above is not None and not value > above:
        raise ConfigError(f"{name} must be {expected}; got {value!r}")
    return float(value)


def check_bool(name, value) -> bool:
    """True or False (NumPy bools too), or ConfigError naming ``name``."""
    numpy_bool = getattr(value, "dtype", None) is not None and value.dtype.kind == "b" and (
        value.ndim == 0)
    if not isinstance(value, bool) and not numpy_bool:
        raise ConfigError(f"{name} must be True or False; got {value!r} ({_type_name(value)})")
    return bool(value)
