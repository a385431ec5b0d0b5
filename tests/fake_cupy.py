"""A CPU stand-in for CuPy, so the CuPy code path of npcell runs (and is checked) without a GPU.

What it copies from CuPy is where GPU code usually breaks when it was only ever run on NumPy:

* a device array is *not* a NumPy array: ``numpy.asarray(a)`` raises TypeError (CuPy's
  ``__array__`` refuses implicit conversion), and so do arithmetic and assignment that mix a
  device array with a ``numpy.ndarray`` (``dev + host``, ``dev[...] = host``);
* reductions return 0-d device arrays, not Python numbers;
* reading a value back to the host is a *synchronisation* (the host waits for the GPU):
  ``float()``, ``int()``, ``bool()``, ``.item()``, ``.tolist()``, ``.get()``, ``asnumpy()``,
  printing or formatting an array, using one as an index, ``cuda.Device().synchronize()``.
  Each is counted in :data:`SYNCS` (with the line that did it), so a test can say how many a
  training step makes;
* NumPy ufuncs and functions applied to device arrays dispatch to this module (as CuPy's
  ``__array_ufunc__``/``__array_function__`` do), and only the functions listed in
  :data:`FUNCTIONS` exist: using one CuPy does not have fails here as it would on a GPU;
* ``ElementwiseKernel`` runs the kernel's C body, translated to vectorised NumPy: the body's
  arithmetic and the argument order of the call are checked on the CPU (not its compilation).

The arrays hold NumPy arrays inside, so results equal NumPy's bit for bit. Install it with
:func:`install` (the ``fake_cupy`` fixture in conftest.py does, and undoes it).
"""

from __future__ import annotations

import contextlib
import re
import sys
import traceback
import types

import numpy

from npcell import backend

__version__ = "0.0-fake (NumPy on the CPU)"


# ============================================================================================
# Synchronisation counter
# ============================================================================================
class SyncCounter:
    """How many times the host read a value back from the 'device', and from where."""

    def __init__(self):
        self.count = 0
        self.where: list[str] = []

    def hit(self, what):
        self.count += 1
        frame = next((f for f in reversed(traceback.extract_stack()[:-2])
                      if not f.filename.endswith("fake_cupy.py")), None)
        self.where.append(f"{what} at {frame.filename}:{frame.lineno} ({frame.line})"
                          if frame else what)

    def reset(self):
        self.count = 0
        self.where.clear()


SYNCS = SyncCounter()


def _refuse_host_array(value):
    raise TypeError(
        f"Unsupported type {type(value)!r}: a NumPy array met a (fake) CuPy array; move it "
        "with cupy.asarray(...) first (CuPy refuses this too)")


# ============================================================================================
# The device array
# ============================================================================================
def _wrap(value):
    """NumPy results -> device arrays (NumPy scalars become 0-d arrays, as CuPy's are)."""
    if isinstance(value, numpy.ndarray):
        return ndarray(value)
    if isinstance(value, numpy.generic):
        return ndarray(numpy.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _unwrap(value):
    """Device arrays -> their NumPy data; a host ``numpy.ndarray`` operand is refused."""
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, numpy.ndarray):
        _refuse_host_array(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_unwrap(v) for v in value)
    return value


def _index(key):
    """An index may hold device arrays, NumPy arrays, slices, ints, None, Ellipsis."""
    if isinstance(key, ndarray):
        return key._a
    if isinstance(key, tuple):
        return tuple(_index(k) for k in key)
    return key


class ndarray:  # noqa: N801 - the name CuPy uses
    """A 'device' array: a NumPy array that refuses to be used as one implicitly."""

    __module__ = "cupy._core.core"  # where npcell.backend.is_cupy_array looks
    __array_priority__ = 100  # NumPy defers binary operators to us

    def __init__(self, data, base=None):
        self._a = data
        self.base = base

    # ----- metadata: free, as on a GPU --------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: self._view(self._a.T))

    def __len__(self):
        return len(self._a)

    def _view(self, data):
        return ndarray(data, base=self.base if self.base is not None else self)

    # ----- what CuPy refuses, and what synchronises --------------------------------------------
    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use "
                        "`.get()` to construct a NumPy array explicitly.")

    def get(self, stream=None, order="C", out=None):
        SYNCS.hit(".get()")
        return self._a.copy(order=order)

    def item(self):
        SYNCS.hit(".item()")
        return self._a.item()

    def tolist(self):
        SYNCS.hit(".tolist()")
        return self._a.tolist()

    def __float__(self):
        SYNCS.hit("float()")
        return float(self._a)

    def __int__(self):
        SYNCS.hit("int()")
        return int(self._a)

    def __index__(self):
        SYNCS.hit("index")
        return self._a.__index__()

    def __bool__(self):
        SYNCS.hit("bool()")
        return bool(self._a)

    def __complex__(self):
        SYNCS.hit("complex()")
        return complex(self._a)

    def __format__(self, spec):
        SYNCS.hit("format")
        return format(self._a.item() if self._a.ndim == 0 else self._a, spec)

    def __repr__(self):
        SYNCS.hit("repr")
        return repr(self._a)

    __str__ = __repr__

    # ----- indexing ----------------------------------------------------------------------------
    def __getitem__(self, key):
        out = self._a[_index(key)]
        if isinstance(out, numpy.ndarray) and numpy.may_share_memory(out, self._a):
            return self._view(out)
        return _wrap(out)

    def __setitem__(self, key, value):
        self._a[_index(key)] = _unwrap(value)

    def __iter__(self):
        return (self[i] for i in range(len(self._a)))

    # ----- NumPy's protocols: ufuncs and functions on device arrays dispatch here ---------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        ours = FUNCTIONS.get(ufunc.__name__)
        if ours is None:
            return NotImplemented
        if method == "__call__":
            return ours(*inputs, **kwargs)
        if method == "at" and hasattr(ours, "at"):
            return ours.at(*inputs, **kwargs)
        return NotImplemented

    def __array_function__(self, func, types_, args, kwargs):
        ours = FUNCTIONS.get(func.__name__)
        if ours is None:
            return NotImplemented
        return ours(*args, **kwargs)

    # ----- methods -----------------------------------------------------------------------------
    def reshape(self, *shape, **kwargs):
        out = self._a.reshape(*shape, **kwargs)
        return self._view(out) if numpy.may_share_memory(out, self._a) else ndarray(out)

    def transpose(self, *axes):
        return self._view(self._a.transpose(*axes))

    def view(self, *args, **kwargs):
        return self._view(self._a.view(*args, **kwargs))

    def ravel(self, order="C"):
        return self.reshape(-1, order=order)

    def astype(self, dtype, copy=True, **kwargs):
        return ndarray(self._a.astype(dtype, copy=copy, **kwargs))

    def copy(self, order="C"):
        return ndarray(self._a.copy(order=order))

    def fill(self, value):
        self._a.fill(_unwrap(value))

    def __getattr__(self, name):  # sum, mean, max, min, argmax, any, all, dot, clip, ...
        if name not in ARRAY_METHODS:
            raise AttributeError(f"fake cupy.ndarray has no attribute {name!r} (add it to "
                                 "ARRAY_METHODS if real CuPy has it)")
        method = getattr(self._a, name)

        def call(*args, **kwargs):
            return _wrap(method(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()}))

        return call


ARRAY_METHODS = {"sum", "mean", "max", "min", "argmax", "argmin", "any", "all", "dot", "clip",
                 "prod", "std", "var", "cumsum", "squeeze", "swapaxes", "conj", "nonzero"}


def _binary(name):
    def op(self, other):
        return _wrap(getattr(self._a, name)(_unwrap(other)))

    op.__name__ = name
    return op


def _inplace(name):
    def op(self, other):
        getattr(self._a, name)(_unwrap(other))
        return self

    op.__name__ = name
    return op


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or",
              "xor", "lt", "le", "gt", "ge", "eq", "ne", "lshift", "rshift"):
    for _dunder in (f"__{_name}__", f"__r{_name}__"):
        if hasattr(numpy.ndarray, _dunder):
            setattr(ndarray, _dunder, _binary(_dunder))
    if hasattr(numpy.ndarray, f"__i{_name}__"):
        setattr(ndarray, f"__i{_name}__", _inplace(f"__i{_name}__"))
for _dunder in ("__neg__", "__pos__", "__abs__", "__invert__"):
    setattr(ndarray, _dunder, lambda self, _d=_dunder: _wrap(getattr(self._a, _d)()))
ndarray.__hash__ = None


# ============================================================================================
# Module functions: only those listed exist
# ============================================================================================
def _function(name):
    """cupy.<name> from numpy.<name>: device arrays in, device arrays out."""
    target = getattr(numpy, name)

    def call(*args, **kwargs):
        return _wrap(target(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()}))

    call.__name__ = name
    if isinstance(target, numpy.ufunc) and name == "add":  # cupy.add.at: scatter-add
        def at(a, indices, values=None):
            numpy.add.at(_unwrap(a), _index(indices), _unwrap(values))

        call.at = at
    return call


def asarray(a, dtype=None, order=None):
    """Host -> device (an upload, not a synchronisation); a device array passes through."""
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == dtype else a.astype(dtype)
    return ndarray(numpy.array(a, dtype=dtype, order=order or "K", copy=True))


def array(a, dtype=None, copy=True, order="K"):
    if isinstance(a, ndarray):
        return ndarray(numpy.array(a._a, dtype=dtype, copy=copy, order=order))
    return ndarray(numpy.array(a, dtype=dtype, order=order, copy=True))


def asnumpy(a, stream=None, order="C", out=None):
    if isinstance(a, ndarray):
        return a.get(order=order)
    return numpy.asarray(a, order=order)


def is_available():
    return True


# What npcell calls through ``xp`` (add a name only if real CuPy has it).
FUNCTION_NAMES = (
    "empty", "empty_like", "zeros", "zeros_like", "ones", "ones_like", "full", "full_like",
    "ascontiguousarray", "arange", "eye", "concatenate", "stack", "where", "broadcast_to",
    "transpose", "split", "outer", "diag", "copyto", "clip",
    "add", "subtract", "multiply", "divide", "true_divide", "negative", "reciprocal", "power",
    "square", "sqrt", "exp", "expm1", "log", "log1p", "tanh", "abs", "absolute", "sign",
    "maximum", "minimum", "isfinite", "isnan", "isinf", "logical_and", "logical_or",
    "logical_not", "matmul", "dot", "einsum", "tensordot",
    "sum", "mean", "max", "min", "amax", "amin", "argmax", "argmin", "any", "all", "prod",
    "allclose", "array_equal", "moveaxis", "swapaxes", "expand_dims", "squeeze", "flip",
)
FUNCTIONS = {name: _function(name) for name in FUNCTION_NAMES}
FUNCTIONS.update(asarray=asarray, array=array)
CONSTANTS = {name: getattr(numpy, name) for name in (
    "float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool_",
    "complex64", "complex128", "dtype", "finfo", "iinfo", "newaxis", "pi", "inf", "nan", "e",
    "result_type", "promote_types", "can_cast")}


# ============================================================================================
# ElementwiseKernel: the C body run as vectorised NumPy
# ============================================================================================
_PARAM = re.compile(r"^\s*(raw\s+)?(\w+)\s+(\w+)\s*$")


def _params(text):
    out = []
    for item in text.split(","):
        m = _PARAM.match(item)
        if not m:
            raise ValueError(f"fake ElementwiseKernel cannot read the parameter {item!r}")
        out.append((bool(m.group(1)), m.group(2), m.group(3)))
    return out


def _split_top(text, sep):
    """Split on ``sep`` outside parentheses and brackets."""
    parts, depth, start = [], 0, 0
    for k, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:k])
            start = k + 1
    parts.append(text[start:])
    return parts


def _translate(body, out_names, raw_names):
    """C statements -> Python statements over index arrays (each thread's i at once)."""
    body = re.sub(r"//[^\n]*", "", body)
    lines = []
    for stmt in _split_top(body, ";"):
        stmt = " ".join(stmt.split())
        if not stmt:
            continue
        integer = stmt.startswith(("const ptrdiff_t", "ptrdiff_t", "const int", "int "))
        stmt = re.sub(r"^(const\s+)?(ptrdiff_t|int|T|float|double)\s+", "", stmt)
        stmt = re.sub(r"\(T\)\s*", "T_", stmt)  # (T)0.5 -> T_0.5, made a call below
        stmt = re.sub(r"T_([0-9.]+)", r"T(\1)", stmt)
        if integer:
            stmt = stmt.replace("/", "//")  # C integer division (operands are >= 0 here)
        for part in _split_top(stmt, ","):
            name, _, expr = part.partition("=")
            name = name.strip()
            if name in out_names and name not in raw_names:
                lines.append(f"{name}[...] = {expr.strip()}")  # an output reference
            else:
                lines.append(f"{name} = {expr.strip()}")
    return "\n".join(lines)


class ElementwiseKernel:
    """cupy.ElementwiseKernel(in_params, out_params, operation, name), run on the CPU."""

    def __init__(self, in_params, out_params, operation, name="kernel", **kwargs):
        self.name = name
        self.inputs, self.outputs = _params(in_params), _params(out_params)
        raw = {n for r, _, n in self.inputs + self.outputs if r}
        outs = {n for _, _, n in self.outputs}
        self.code = compile(_translate(operation, outs, raw), f"<kernel {name}>", "exec")

    def __call__(self, *args, size=None):
        params = self.inputs + self.outputs
        if len(args) != len(params):
            raise TypeError(f"kernel {self.name} takes {len(params)} arguments "
                            f"({', '.join(n for _, _, n in params)}); got {len(args)}")
        types_ = {}
        for (_, ctype, name), a in zip(params, args):
            if isinstance(a, numpy.ndarray):
                _refuse_host_array(a)
            if len(ctype) == 1 and ctype.isupper():  # a type placeholder such as T
                if not isinstance(a, ndarray):
                    raise TypeError(f"kernel {self.name}: {name} must be a cupy array")
                if types_.setdefault(ctype, a.dtype) != a.dtype:
                    raise TypeError(f"kernel {self.name}: {name} is {a.dtype}, but {ctype} is "
                                    f"already {types_[ctype]}")
        shaped = [a._a for (raw, _, _), a in zip(params, args) if not raw and
                  isinstance(a, ndarray)]
        shape = numpy.broadcast_shapes(*(a.shape for a in shaped)) if shaped else (size,)
        scope = {"tanh": numpy.tanh, "exp": numpy.exp, "log": numpy.log, "sqrt": numpy.sqrt,
                 "fabs": numpy.abs, "i": numpy.arange(int(numpy.prod(shape)))}
        if "T" in types_:
            scope["T"] = types_["T"].type
        write_back = []
        for (raw, ctype, name), a in zip(params, args):
            if not isinstance(a, ndarray):
                scope[name] = numpy.dtype(ctype).type(a) if ctype in ("int32", "int64") else a
                continue
            data = a._a if raw or a.shape == shape else numpy.broadcast_to(a._a, shape)
            flat = data.reshape(-1)
            if not numpy.may_share_memory(flat, a._a) and (raw, ctype, name) in self.outputs:
                flat = flat.copy()
                write_back.append((a._a, flat))
            scope[name] = flat
        with numpy.errstate(all="ignore"):  # a GPU does not warn either
            exec(self.code, scope)  # noqa: S102 - the kernel text is npcell's own source
        for target, flat in write_back:
            target[...] = flat.reshape(target.shape)


# ============================================================================================
# cuda: what bench and the tests touch
# ============================================================================================
class _Device:
    def __init__(self, device_id=0):
        self.id = device_id

    def synchronize(self):
        SYNCS.hit("cuda.Device().synchronize()")


def _device_properties(device_id):
    return {"name": b"fake CuPy (NumPy on the CPU)", "totalGlobalMem": 0}


cuda = types.SimpleNamespace(Device=_Device,
                             runtime=types.SimpleNamespace(getDeviceProperties=_device_properties))


# ============================================================================================
# The module
# ============================================================================================
def make_module():
    """A fresh module object named ``cupy`` holding exactly the names above."""
    module = types.ModuleType("cupy", "fake CuPy: NumPy on the CPU behind CuPy's rules")
    module.__dict__.update(FUNCTIONS)
    module.__dict__.update(CONSTANTS)
    module.__dict__.update(ndarray=ndarray, asnumpy=asnumpy, is_available=is_available,
                           ElementwiseKernel=ElementwiseKernel, cuda=cuda,
                           __version__=__version__, SYNCS=SYNCS)
    return module


def install(monkeypatch=None):
    """Make ``import cupy`` and npcell's CuPy backend use the fake; return the module.

    With a pytest ``monkeypatch`` everything is undone after the test; without one (the dry run
    of benchmarks/gpu_check.sh) it stays for the process.
    """
    module = make_module()
    memo = {"checked": True, "module": module, "error": None}
    if monkeypatch is None:
        sys.modules["cupy"] = module
        backend._cupy = memo
    else:
        monkeypatch.setitem(sys.modules, "cupy", module)
        monkeypatch.setattr(backend, "_cupy", memo)
    SYNCS.reset()
    return module


@contextlib.contextmanager
def installed():
    """:func:`install` for a block (inside a hypothesis test, where a fixture cannot be reset
    between examples); restores ``sys.modules['cupy']`` and the backend's memo after it."""
    saved_module, saved_memo = sys.modules.get("cupy"), backend._cupy
    try:
        yield install()
    finally:
        backend._cupy = saved_memo
        if saved_module is None:
            sys.modules.pop("cupy", None)
        else:
            sys.modules["cupy"] = saved_module
