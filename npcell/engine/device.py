"""One Device per backend: what every fast path asks of the arrays it runs on, asked once.

A fused pair calls :func:`device_for` with its input and reads everything backend-specific from
the answer, never from ``xp.__name__`` tests of its own:

* ``xp``: the array module (numpy or cupy);
* ``kernels``: which compiled LSTM-family gate kernels run, 'numba' (NumPy; lstm, peephole,
  wmc), 'cupy' (the plain lstm on CuPy) or None (the plain path); the one switch
  :func:`npcell.engine.use_fused_kernels` decides;
* ``exp_form``: the activation form of the plain path (see :class:`GateMath`);
* ``pooled``: the workspace policy, big buffers reused across calls (NumPy) or plain
  allocations that CuPy's own memory pool recycles;
* ``sync()``: wait for queued work (a no-op on NumPy), for timings.

Activation forms. Each form is one exact identity, so every path computes the same function:

* tanh form (CuPy; NumPy below B*H = 256 units): sigma(a) = 0.5 tanh(a / 2) + 0.5, g = tanh(a);
* exp form (NumPy from B*H = 256 units): sigma(a) = 1 / (1 + exp(-a)), tanh(a) = 2 sigma(2a) - 1.
  NumPy's float64 tanh is scalar libm code, ~3x slower than its exp; in float32 its exp is
  ~1.5x faster than its tanh (fwd+bwd 7-15% faster overall). Below 256 units the form's two
  extra calls cost more than they save (measured, docs/performance.md). That measurement is why
  NumPy keeps two forms; CuPy has one (its ElementwiseKernels take the tanh form's scaled
  pre-activations too). The Numba kernels take the pre-activations unscaled and compute sigma
  and tanh themselves.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace

from ..backend import array_module, is_cupy_array
from . import workspace
from .cpu import loops as cpu_loops
from .switch import active

EXP_FORM_MIN_UNITS = 256  # B * H from which NumPy's exp form wins (measured, float64)


@dataclass(frozen=True)
class Device:
    """What a fast path needs to know about the backend of its arrays (see the module note)."""

    name: str  # 'numpy' | 'cupy'
    xp: object
    kernels: str | None  # 'numba' | 'cupy' | None (the plain path)
    exp_form: bool
    pooled: bool

    def empty(self, shape, dtype):
        """An uninitialised buffer under the workspace policy (reused when pooled)."""
        if self.pooled:
            return workspace.empty(self.xp, shape, dtype)
        return self.xp.empty(shape, dtype=dtype)

    def sync(self):
        """Wait until queued device work is done (timings); nothing to wait for on NumPy."""
        if self.name == "cupy":
            self.xp.cuda.Device().synchronize()

    def gate_math(self) -> GateMath:
        return GateMath(self.xp, self.exp_form)

    def in_tanh_form(self) -> Device:
        """This device with the tanh form (the exp form's row scale -2 would overflow weights
        above max/2, e.g. 1e308; the tanh form computes the same function without it)."""
        return replace(self, exp_form=False)


def device_for(x, *, units=0, lstm_kernels=True, cell_read=None) -> Device:
    """The Device of array ``x`` for a fused pass over ``units`` = B * H gate units.

    ``lstm_kernels``: whether the caller has compiled gate kernels at all (the LSTM family does;
    GRU and ULSTM run the plain path only); ``cell_read`` is the LSTM family's CellRead (None
    for lstm): the CuPy kernels serve the plain lstm only.
    """
    xp = array_module(x)
    if is_cupy_array(x):
        kernels = "cupy" if lstm_kernels and cell_read is None and active(x) else None
        return Device("cupy", xp, kernels, exp_form=False, pooled=False)
    kernels = "numba" if lstm_kernels and active(x) and cpu_loops.available() else None
    exp_form = kernels is None and units >= EXP_FORM_MIN_UNITS
    return Device("numpy", xp, kernels, exp_form=exp_form, pooled=True)


class GateMath:
    """The plain path's activations, in place, in the device's form. The LSTM family folds each
    form's scale into its packed weight rows once per call (a power of two: exact), so that
    ``sigmoid_`` and ``tanh_`` receive ``sig_scale * a`` and ``g_scale * a``."""

    def __init__(self, xp, exp_form):
        self.xp, self.exp_form = xp, exp_form
        self.sig_scale, self.g_scale = (-1.0, -2.0) if exp_form else (0.5, 1.0)

    def sigmoid_(self, z):
        """z holds sig_scale * a; make it sigma(a), in place."""
        if self.exp_form:
            self.xp.exp(z, out=z)
            z += 1.0
            self.xp.reciprocal(z, out=z)
        else:
            self.xp.tanh(z, out=z)
            z *= 0.5
            z += 0.5

    def tanh_(self, z):
        """z holds g_scale * a; make it tanh(a), in place."""
        if self.exp_form:
            self.sigmoid_(z)  # sigma(2a)
            z *= 2.0
            z -= 1.0  # tanh(a) = 2 sigma(2a) - 1
        else:
            self.xp.tanh(z, out=z)

    def tanh_into(self, a, out):
        """out <- tanh(a), for an unscaled a."""
        if self.exp_form:
            self.xp.multiply(a, self.g_scale, out=out)
            self.tanh_(out)
        else:
            self.xp.tanh(a, out=out)

    def sigmoid_unscaled_(self, a):
        """a <- sigma(a) in place for an unscaled a (GRU, ULSTM: no packed rows to fold into)."""
        a *= self.sig_scale
        with self.quiet():
            self.sigmoid_(a)
        return a

    def tanh_unscaled_(self, a):
        """a <- tanh(a) in place for an unscaled a."""
        if self.exp_form:
            a *= self.g_scale
            with self.quiet():
                self.tanh_(a)
        else:
            self.xp.tanh(a, out=a)
        return a

    def quiet(self):
        """A context that silences exp's harmless overflow: 1 / (1 + inf) = 0 is the right
        limit (exp form only)."""
        return self.xp.errstate(over="ignore") if self.exp_form else contextlib.nullcontext()
