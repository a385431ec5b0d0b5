"""The one array-module switch: NumPy (default) or CuPy, plus the dtype policy.

Cell code never imports numpy for math; it asks :func:`array_module` for ``xp`` once per call,
either from the arrays it was given or from the current backend::

    with npcell.use_backend("cupy"):        # or npcell.use_backend("cupy") to switch for good
        cell = npcell.make_cell("lstm", 2, 64)
        h, state, cache = npcell.forward(cell, x_gpu)

Dtype policy: float64 is the default (teaching, gradient checks); float32 is the fast path.
Nothing is cast silently: mixing dtypes or backends raises :class:`~npcell.errors.DTypeError` or
:class:`~npcell.errors.BackendError`.
"""

from __future__ import annotations

import importlib
import os

import numpy

from .errors import BackendError, DTypeError

BACKENDS = ("numpy", "cupy")
FLOAT_DTYPES = ("float32", "float64")

_current = {"name": "numpy", "xp": numpy}


# CuPy is imported, and asked for a GPU, once per process: array_module runs inside every step
# function, and cupy.is_available() costs a driver call. The memo keeps the module or the error.
_cupy = {"checked": False, "module": None, "error": None}


def _import_cupy():
    """The cupy module (imported and checked on the first call only), or BackendError."""
    if not _cupy["checked"]:
        _cupy.update(_load_cupy(), checked=True)
    if _cupy["module"] is None:
        raise BackendError(_cupy["error"])
    return _cupy["module"]


def _load_cupy() -> dict:
    try:
        cupy = importlib.import_module("cupy")
    except ImportError as err:
        return {"module": None, "error": (
            "backend 'cupy' was requested but CuPy is not installed "
            f"({err}); install it with `pip install npcell[gpu]` (CUDA 13) or "
            "`pip install npcell[gpu-cuda12]`, or use backend 'numpy'")}
    try:
        available = cupy.is_available()
    except Exception:  # noqa: BLE001 - any driver failure means "not usable"
        available = False
    if not available:
        return {"module": None, "error": (
            "backend 'cupy' was requested and CuPy imports, but no usable CUDA GPU was found "
            "(cupy.is_available() is False); use backend 'numpy' on this machine")}
    return {"module": cupy, "error": None}


def cupy_available() -> bool:
    """True when CuPy imports and sees a CUDA GPU (never raises; checked once per process)."""
    try:
        _import_cupy()
    except BackendError:
        return False
    return True


def get_backend() -> str:
    """Name of the current backend: ``'numpy'`` or ``'cupy'``."""
    return _current["name"]


def xp_for(name: str):
    """Array module for a backend name, with a clear error for unknown or unusable names."""
    if name == "numpy":
        return numpy
    if name == "cupy":
        return _import_cupy()
    raise BackendError(f"unknown backend {name!r}; expected one of {BACKENDS}")


class use_backend:  # noqa: N801 - called like a function, as numpy.errstate
    """Switch the array backend; works as a plain call or as a context manager.

    ``npcell.use_backend("cupy")`` switches until the next call;
    ``with npcell.use_backend("cupy"):`` switches for the block, then restores the previous one.
    """

    def __init__(self, name: str):
        if not isinstance(name, str):
            raise BackendError(f"backend name must be a string, one of {BACKENDS}; got {name!r}")
        xp = xp_for(name)
        self._previous = dict(_current)
        _current.update(name=name, xp=xp)
        self.name = name
        self.xp = xp

    def __enter__(self):
        return self.xp

    def __exit__(self, *exc):
        _current.update(self._previous)
        return False

    def __repr__(self):
        return f"use_backend({self.name!r})"


def current_xp():
    """The array module of the current backend."""
    return _current["xp"]


def is_cupy_array(a) -> bool:
    return type(a).__module__.split(".")[0] == "cupy"


def backend_of(a) -> str:
    """'cupy' for a CuPy array, 'numpy' for anything else."""
    return "cupy" if is_cupy_array(a) else "numpy"


def array_module(*arrays):
    """The array module (numpy or cupy) of ``arrays``; raise if they mix backends.

    With no arrays (or only ``None``), the current backend's module.
    """
    on_device = None  # True: CuPy arrays seen; False: NumPy (or other host) arrays seen
    for a in arrays:
        if a is None:
            continue
        device = is_cupy_array(a)
        if on_device is not None and device != on_device:
            raise BackendError(
                "numpy and cupy arrays were mixed in one call; move them to one backend first "
                "(cupy.asarray(...) or cupy.asnumpy(...))"
            )
        on_device = device
    if on_device is None:
        return current_xp()
    # A CuPy array exists, so CuPy imported: after the first call this is one dict lookup.
    return (_cupy["module"] or _import_cupy()) if on_device else numpy


def resolve_dtype(dtype) -> numpy.dtype:
    """Normalise a dtype argument to ``numpy.dtype('float32'|'float64')`` or raise."""
    try:
        resolved = numpy.dtype(dtype)
    except TypeError:
        raise DTypeError(f"dtype must be one of {FLOAT_DTYPES}; got {dtype!r}") from None
    if resolved.name not in FLOAT_DTYPES:
        raise DTypeError(f"dtype must be one of {FLOAT_DTYPES}; got {resolved.name!r}")
    return resolved


def to_numpy(a):
    """A NumPy copy/view of ``a`` whatever its backend (for printing, saving, plotting)."""
    if is_cupy_array(a):
        return a.get()
    return numpy.asarray(a)


BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def limit_blas_threads(n: int) -> dict:
    """Pin BLAS/OpenMP to ``n`` threads: the environment (for libraries loaded later) and, with
    threadpoolctl installed, the pools already loaded (a reused worker has them). Returns what
    was set: {'env': {...}, 'blas': [one dict per pool] or a sentence why not}. The one thread
    pinning of npcell (sweep workers, the benchmarks)."""
    info = {"env": {}, "blas": None}
    for var in BLAS_THREAD_VARIABLES:
        os.environ[var] = str(n)
        info["env"][var] = str(n)
    try:  # an optional dependency: without it the environment variables are all there is
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        info["blas"] = "threadpoolctl not installed: BLAS threads set through environment only"
        return info
    threadpool_limits(n)
    info["blas"] = [{"api": p.get("internal_api"), "threads": p.get("num_threads"),
                     "library": os.path.basename(p.get("filepath", ""))}
                    for p in threadpool_info()]
    return info
