"""The one switch for every compiled gate kernel (Numba on the CPU, CuPy on the GPU).

See npcell/engine/__init__.py for its use; this module holds it apart so the fused paths can
read it without importing the registry that imports them.
"""

from __future__ import annotations

from ..backend import is_cupy_array
from ..errors import ArgumentTypeError
from .cpu import loops as cpu_loops

_switch = {"on": None}  # None: auto (CPU kernels when Numba is there, CuPy kernels off)


class use_fused_kernels:  # noqa: N801 - used like a function, as npcell.use_backend
    """Turn the fused gate kernels on (True), off (False) or back to auto (None); a plain call
    or a context manager."""

    def __init__(self, on: bool | None = True):
        if on is not None and not isinstance(on, bool):
            raise ArgumentTypeError(
                f"use_fused_kernels expects True, False or None (auto); got {on!r}")
        self._previous = _switch["on"]
        _switch["on"] = on

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _switch["on"] = self._previous
        return False


def fused_kernels_enabled() -> bool | None:
    """The switch: True, False, or None for auto (see the module docstring)."""
    return _switch["on"]


def active(x) -> bool:
    """True when the fused kernels should run for array ``x``: on CuPy when the switch is True;
    on NumPy unless it is False, when Numba is installed."""
    if is_cupy_array(x):
        return _switch["on"] is True
    return _switch["on"] is not False and cpu_loops.available()
