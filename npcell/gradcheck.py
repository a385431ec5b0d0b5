"""Finite-difference gradient checks with a readable report.

The loss is a random weighted sum of every output, L = sum(R_h * h) + sum_k sum(R_k * state_T[k]),
with R drawn from a private seeded Generator (the caller's RNG is untouched). The analytic
gradient comes from :func:`npcell.backward`; the numeric one from central differences

    dL/dp ~ (L(p + eps*v) - L(p - eps*v)) / (2 eps)

and each comparison uses the relative error |a - n| / max(|a|, |n|, floor). The floor keeps
finite-difference round-off (about 1e-10 in float64) from reading as an error on gradients that
are zero; any real bug leaves an absolute error many orders larger.

Modes:

* ``fast``: one random directional derivative per parameter, per gate block (all its
  parameters at once), per time step of dx and per initial-state tensor: 2 forwards each.
* ``full``: every entry (or ``samples`` seeded entries per tensor). Failing fast rows are
  re-run this way so their hints can look at the element pattern.

Methods: ``central`` (the default, above) or ``complex``, the complex step

    dL/dp . v = Im L(p + i h v) / h + O(h^2),   h = 1e-20

which subtracts nothing, so h can be tiny and the result is exact to round-off (~1e-15 in
float64), one forward per direction and no eps to tune. It runs the reference step loop on
complex copies of the parameters, input and state, so it needs a forward that is complex
analytic (no abs, max, comparisons): :data:`COMPLEX_SAFE` lists the kinds that are.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field

import numpy

from .backend import array_module, to_numpy
from .errors import ConfigError, check_bool, check_int, check_real
from .sequence import (
    as_array,
    backward,
    check_cell,
    check_input,
    check_inputs_finite,
    check_state,
    forward,
)

COMPLEX_STEP = 1e-20  # h of the complex step: no cancellation, so it may be this small
# Kinds whose reference step_forward is complex analytic (tests/test_gradcheck_complex.py holds
# each to central differences); the others use abs/max/comparisons somewhere.
COMPLEX_SAFE = ("lstm", "peephole", "wmc", "gru", "ulstm", "ln_lstm", "fw_rnn", "fw_lstm",
                "teaching")
DEFAULTS = {  # dtype -> (eps, tol, floor)
    "float64": (1e-5, 1e-6, 1e-4),
    "float32": (1e-2, 5e-2, 1e-2),
}


@dataclass
class GradcheckRow:
    """One line of the report: a parameter, a gate block, a time step of dx, or an initial state."""

    name: str
    group: str  # 'param' | 'gate' | 'dx' | 'dstate0'
    max_rel_error: float
    max_abs_error: float
    analytic: float  # at the worst entry (full) or the directional derivative (fast)
    numeric: float
    n_checked: int
    tol: float
    worst_index: tuple | None = None
    hint: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.max_rel_error <= self.tol)


@dataclass
class GradcheckReport:
    """Result of :func:`gradcheck`: ``str(report)`` prints the table, ``report.ok`` the verdict."""

    cell_kind: str
    mode: str
    dtype: str
    eps: float
    tol: float
    method: str = "central"
    rows: list[GradcheckRow] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def max_rel_error(self) -> float:
        return max((r.max_rel_error for r in self.rows), default=0.0)

    @property
    def failures(self) -> list[GradcheckRow]:
        return [r for r in self.rows if not r.ok]

    def row(self, name: str) -> GradcheckRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no row {name!r}; rows: {[r.name for r in self.rows]}")

    def worst(self, group: str | None = None) -> GradcheckRow:
        """The row with the largest error (optionally within one group: 'param', 'gate', ...)."""
        rows = [r for r in self.rows if group is None or r.group == group]
        return max(rows, key=lambda r: r.max_rel_error)

    def to_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "rows"}
        out["ok"] = self.ok
        out["max_rel_error"] = self.max_rel_error
        out["rows"] = [{**asdict(r), "ok": r.ok} for r in self.rows]
        for r in out["rows"]:
            if r["worst_index"] is not None:
                r["worst_index"] = [int(i) for i in r["worst_index"]]
        return out

    def __str__(self) -> str:
        verdict = "PASS" if self.ok else f"FAIL ({len(self.failures)} rows)"
        head = (
            f"gradcheck {self.cell_kind} ({self.dtype}, mode={self.mode}, method={self.method}, "
            f"eps={self.eps:g}, "
            f"tol={self.tol:g}): {verdict}, max relative error {self.max_rel_error:.2e}"
        )
        lines = [head, f"  {'row':<16}{'rel.err':>10}{'abs.err':>10}{'analytic':>13}"
                 f"{'numeric':>13}  {'':4}  hint"]
        dx_rows = [r for r in self.rows if r.group == "dx"]
        for r in self.rows:
            shown = dx_rows[:3] + dx_rows[-3:]
            if r.group == "dx" and len(dx_rows) > 8 and r.ok and r not in shown:
                continue
            lines.append(
                f"  {r.name:<16}{r.max_rel_error:>10.2e}{r.max_abs_error:>10.2e}"
                f"{r.analytic:>13.5e}{r.numeric:>13.5e}  {'ok' if r.ok else 'FAIL':4}  {r.hint}"
            )
        hidden = sum(1 for r in dx_rows if r.ok) - sum(
            1 for r in dx_rows[:3] + dx_rows[-3:] if r.ok) if len(dx_rows) > 8 else 0
        if hidden > 0:
            lines.append(f"  ({hidden} more passing dx[t] rows not shown)")
        return "\n".join(lines)

    def _repr_pretty_(self, p, cycle):  # IPython shows the table
        p.text(str(self))


def gradcheck(cell, x, state=None, *, mode="fast", eps=None, tol=None, floor=None, samples=None,
              seed=0, fused=None, check_state0=True, method="central") -> GradcheckReport:
    """Check ``npcell.backward`` for ``cell`` on input ``x`` against numerical derivatives.

    Parameters
    ----------
    cell : any cell from :func:`npcell.make_cell` (its ``step_backward`` may be a student's).
    x : (T, B, X) input of the cell's dtype; state : initial state (zeros when None).
    mode : 'fast' (directional derivatives) or 'full' (every entry, or ``samples`` per tensor).
    eps, tol, floor : step, pass threshold on the relative error, and the denominator floor;
        defaults by dtype (float64: 1e-5, 1e-6, 1e-4). float32 warns and loosens them.
    seed : seeds the loss weights, directions and sampled entries.
    fused : forwarded to :func:`npcell.forward` (None: the cell's default path).
    method : 'central' differences, or 'complex' step (float64, kinds in :data:`COMPLEX_SAFE`;
        eps then defaults to :data:`COMPLEX_STEP`).
    """
    if method not in ("central", "complex"):
        raise ConfigError(f"gradcheck method must be 'central' or 'complex'; got {method!r}")
    if not isinstance(mode, str) or mode not in ("fast", "full"):
        raise ConfigError(f"gradcheck mode must be 'fast' or 'full'; got {mode!r}")
    _check_settings(eps=eps, tol=tol, floor=floor, samples=samples, seed=seed,
                    check_state0=check_state0)
    check_cell(cell)
    x = as_array(cell, x, "x")
    xp = check_input(cell, x)
    T, B, _ = x.shape
    state = check_state(cell, state, B, "state")
    check_inputs_finite(cell, x, state)  # a NaN/Inf input makes every row meaningless
    d_eps, d_tol, d_floor = DEFAULTS[cell.dtype.name]
    complex_step = method == "complex"
    if complex_step:
        if cell.kind not in COMPLEX_SAFE or cell.dtype.name != "float64":
            raise ConfigError(
                f"gradcheck method='complex' needs a float64 cell of a complex-safe kind "
                f"{COMPLEX_SAFE}; got a {cell.dtype.name} {cell.kind!r} cell "
                "(use method='central')")
        d_eps = COMPLEX_STEP
    if cell.dtype.name != "float64" and not complex_step:
        warnings.warn(
            f"gradcheck on a {cell.dtype.name} cell: finite differences are noisy in single "
            f"precision, so eps={d_eps:g} and tol={d_tol:g}; use dtype='float64' (cell.astype) for "
            "a real check", UserWarning, stacklevel=2)
    eps, tol, floor = eps or d_eps, tol or d_tol, floor or d_floor

    rng = numpy.random.default_rng(seed)
    H = cell.hidden_size
    weights_h = xp.asarray(rng.standard_normal((T, B, H)), dtype=cell.dtype)
    shapes = cell.state_shapes(B)
    weights_s = {k: xp.asarray(rng.standard_normal(s), dtype=cell.dtype) for k, s in shapes.items()}

    def outputs(x_in, state_in):
        h, state_T, _ = forward(cell, x_in, state_in, fused=fused)
        return h, state_T

    def numeric_diff(plus, minus):
        """(L+ - L-) / 2 eps, subtracting elementwise first to keep round-off small; for the
        complex step (minus is None) Im L+ / eps."""
        if minus is None:
            h_p, s_p = plus
            total = float(xp.sum(weights_h * h_p).imag)
            for k in weights_s:
                total += float(xp.sum(weights_s[k] * s_p[k]).imag)
            return total / eps
        (h_p, s_p), (h_m, s_m) = plus, minus
        total = float(xp.sum(weights_h * (h_p - h_m)))
        for k in weights_s:
            total += float(xp.sum(weights_s[k] * (s_p[k] - s_m[k])))
        return total / (2 * eps)

    h, state_T, cache = forward(cell, x, state, fused=fused)
    grads, dx, dstate0 = backward(cell, weights_h, cache, dstate=weights_s)

    # Each checked tensor: a getter/setter pair on its value, and its analytic gradient.
    tensors = {}
    work_type = complex if complex_step else cell.dtype
    params = {k: v.astype(work_type) for k, v in cell.params.items()} if complex_step else (
        cell.params)
    for name in cell.params:
        tensors[name] = ("param", _Slot(params, name), grads[name])
    x_work = x.astype(work_type)
    state_work = {k: v.astype(work_type) for k, v in state.items()}
    if complex_step:
        def outputs(x_in, state_in):  # the reference step loop, on complex arrays
            state_t, hs = dict(state_in), []
            for t in range(T):
                state_t, _ = cell.step_forward(params, x_in[t], state_t)
                hs.append(state_t["h"])
            return xp.stack(hs), state_t
    for t in range(T):
        tensors[f"dx[t={t}]"] = ("dx", _Slot(x_work, t), dx[t])
    if check_state0:
        for k in cell.state_names:
            tensors[f"dstate0[{k}]"] = ("dstate0", _Slot(state_work, k), dstate0[k])

    def run():
        return outputs(x_work, state_work)

    report = GradcheckReport(cell.kind, mode, cell.dtype.name, eps, tol, method)
    step = 1j * eps if complex_step else eps  # the perturbation's size along a direction
    rows = {}
    for name, (group, slot, analytic) in tensors.items():
        if tuple(analytic.shape) != tuple(slot.get().shape):
            rows[name] = GradcheckRow(
                name, group, math.inf, math.inf, math.nan, math.nan, 0, tol,
                hint=f"gradient has shape {tuple(analytic.shape)}, tensor has shape "
                     f"{tuple(slot.get().shape)}" + _shape_hint(analytic.shape, slot.get().shape))
            continue
        if mode == "fast":
            rows[name] = _directional_row(name, group, [(slot, analytic)], run, numeric_diff,
                                          step, tol, floor, rng, xp)
            if not rows[name].ok:  # re-run in full (sampled) so the hint sees the pattern
                full = _entry_row(name, group, slot, analytic, run, numeric_diff, step, tol,
                                  floor, rng, xp, samples=samples or 64)
                rows[name].hint = full.hint
        else:
            rows[name] = _entry_row(name, group, slot, analytic, run, numeric_diff, step, tol,
                                    floor, rng, xp, samples=samples)

    # Gate-block rows: all parameters of one gate moved together (fast) or the worst (full).
    gate_rows = []
    for gate, names in cell.gate_blocks().items():
        names = [n for n in names if n in rows]
        if not names:
            continue
        label = f"gate {gate}"
        if mode == "fast" and all(rows[n].n_checked for n in names):
            members = [(tensors[n][1], tensors[n][2]) for n in names]
            row = _directional_row(label, "gate", members, run, numeric_diff, step, tol,
                                   floor, rng, xp)
        else:
            worst = max((rows[n] for n in names), key=lambda r: r.max_rel_error)
            row = GradcheckRow(label, "gate", worst.max_rel_error, worst.max_abs_error,
                               worst.analytic, worst.numeric, sum(rows[n].n_checked for n in names),
                               tol, worst.worst_index)
        failing = [n for n in names if not rows[n].ok]
        if not row.ok or failing:
            row.hint = f"worst: {max(names, key=lambda n: rows[n].max_rel_error)}"
        gate_rows.append(row)

    ordered = [rows[n] for n in cell.params] + gate_rows
    ordered += [r for r in rows.values() if r.group in ("dx", "dstate0")]
    _time_hints(ordered, cell)
    report.rows = ordered
    return report


def _check_settings(*, eps, tol, floor, samples, seed, check_state0):
    """Refuse wrong types or ranges of gradcheck's settings (None: the default): ConfigError."""
    for name, value in (("eps", eps), ("tol", tol), ("floor", floor)):
        if value is not None:
            check_real(f"gradcheck {name}", value, above=0)
    for name, value, low in (("samples", samples, 1), ("seed", seed, 0)):
        if value is not None:
            check_int(f"gradcheck {name}", value, low)
    check_bool("gradcheck check_state0", check_state0)


# ----- the two ways of measuring --------------------------------------------------------------
def _directional_row(name, group, members, run, numeric_diff, eps, tol, floor, rng, xp):
    """Compare v . grad with the central difference (or, with an imaginary ``eps``, the complex
    step: one forward) along a random unit direction v."""
    directions = []
    analytic = 0.0
    for slot, _grad in members:
        v = rng.standard_normal(slot.get().shape)
        directions.append(xp.asarray(v, dtype=slot.get().real.dtype))  # real v
    norm = math.sqrt(sum(float(xp.sum(v * v)) for v in directions)) or 1.0
    directions = [v / norm for v in directions]
    for (_slot, grad), v in zip(members, directions):
        analytic += float(xp.sum(grad * v))
    originals = [slot.get().copy() for slot, _ in members]
    for (slot, _), orig, v in zip(members, originals, directions):
        slot.set(orig + eps * v)
    plus = run()
    minus = None
    if not isinstance(eps, complex):
        for (slot, _), orig, v in zip(members, originals, directions):
            slot.set(orig - eps * v)
        minus = run()
    for (slot, _), orig in zip(members, originals):
        slot.set(orig)
    numeric = numeric_diff(plus, minus)
    abs_err = abs(analytic - numeric)
    rel = float(relative_error(numpy.float64(analytic), numpy.float64(numeric), floor))
    size = sum(int(v.size) for v in directions)
    return GradcheckRow(name, group, rel, abs_err, analytic, numeric, size, tol)


def _entry_row(name, group, slot, analytic, run, numeric_diff, eps, tol, floor, rng, xp, samples):
    """Central difference of every entry (or a seeded sample) of one tensor."""
    value = slot.get()
    size = int(value.size)
    flat_ids = numpy.arange(size)
    if samples is not None and samples < size:
        flat_ids = numpy.sort(rng.choice(size, size=samples, replace=False))
    numeric = numpy.full(value.shape, numpy.nan)
    original = value.copy()
    for flat in flat_ids:
        idx = numpy.unravel_index(flat, value.shape)
        bumped = original.copy()
        bumped[idx] = original[idx] + eps
        slot.set(bumped)
        plus = run()
        minus = None
        if not isinstance(eps, complex):  # the complex step needs one forward
            bumped[idx] = original[idx] - eps
            slot.set(bumped)
            minus = run()
        numeric[idx] = numeric_diff(plus, minus)
    slot.set(original)
    a = to_numpy(analytic).astype(numpy.float64)
    checked = ~numpy.isnan(numeric)
    abs_err = numpy.where(checked, numpy.abs(a - numeric), 0.0)
    rel = numpy.where(checked, relative_error(a, numpy.nan_to_num(numeric), floor), 0.0)
    worst = numpy.unravel_index(int(numpy.argmax(rel)), rel.shape) if rel.size else ()
    row = GradcheckRow(name, group, float(rel.max(initial=0.0)), float(abs_err.max(initial=0.0)),
                       float(a[worst]) if rel.size else 0.0,
                       float(numeric[worst]) if rel.size else 0.0, int(checked.sum()), tol,
                       tuple(int(i) for i in worst))
    if not row.ok:
        row.hint = _pattern_hint(name, a, numeric, checked, floor)
    return row


# ----- hints for the usual bugs --------------------------------------------------------------
def _shape_hint(got, want):
    if len(got) == len(want) + 1 and tuple(got[1:]) == tuple(want):
        return " (missing sum over the batch?)"
    if tuple(got) == tuple(reversed(want)):
        return " (transposed W? npcell's W is (out, in))"
    return ""


def _pattern_hint(name, a, n, checked, floor):
    """Look at the analytic vs numeric pattern of one tensor and name the likely bug."""
    a_c, n_c = a[checked], n[checked]
    scale = max(float(numpy.abs(n_c).max(initial=0.0)), floor)

    def close(u, v):
        return bool(numpy.all(numpy.abs(u - v) <= 1e-4 * scale))

    if numpy.all(a_c == 0) and numpy.any(numpy.abs(n_c) > floor):
        return "gradient is all zeros: missing term or never accumulated"
    if close(a_c, -n_c):
        return "sign flipped"
    if a.ndim == 2 and a.shape[0] == a.shape[1] and numpy.all(checked) and close(a.T, n):
        return "transposed W? npcell's W is (out, in): dW = da^T @ input"
    nz = numpy.abs(n_c) > 10 * floor
    if nz.sum() >= 2:
        ratio = a_c[nz] / n_c[nz]
        if numpy.allclose(ratio, ratio[0], rtol=1e-3) and abs(ratio[0] - 1) > 1e-3:
            hint = f"off by a constant factor {ratio[0]:.4g}"
            if name.startswith("b_"):
                hint += " (mean instead of sum over the batch? one sample only?)"
            return hint
    hints = {
        "W_oc": "the o-gate reads c_t (eq. 9/18): is dW_oc paired with c_{t-1}?",
        "b_": "is db summed over the batch (and over t)?",
    }
    for key, hint in hints.items():
        if name.startswith(key):
            return hint
    return "analytic and numeric disagree: re-derive this tensor's BPTT line"


def _time_hints(rows, cell):
    """Hints that need several rows: errors in dx only before the last step, or in c0 only."""
    dx_rows = [r for r in rows if r.group == "dx"]
    if len(dx_rows) >= 2 and dx_rows[-1].ok and not all(r.ok for r in dx_rows[:-1]):
        for r in dx_rows:
            if not r.ok:
                r.hint = ("last step is right, earlier ones are not: is dh_next/dc_next carried "
                          "(and accumulated) between steps?")
    c0 = [r for r in rows if r.name == "dstate0[c]"]
    params_ok = all(r.ok for r in rows if r.group == "param")
    if c0 and not c0[0].ok and params_ok and not c0[0].hint:
        c0[0].hint = "only dL/dc_0 is wrong: missing a dc_{t-1} term (through f_t, W_ic, W_fc)?"
    for r in rows:
        if not r.ok and not r.hint:
            r.hint = "analytic and numeric disagree"


# ----- tensor slots: get/set the value being perturbed ----------------------------------------
class _Slot:
    """The array ``container[key]`` (a parameter, one step of x, one initial state) to perturb
    in place: ``container`` is a dict or an array, and ``container[key]`` a view into it."""

    def __init__(self, container, key):
        self.container, self.key = container, key

    def get(self):
        return self.container[self.key]

    def set(self, value):
        self.container[self.key][...] = value


def relative_error(a, n, floor=DEFAULTS["float64"][2]):
    """|a - n| / max(|a|, |n|, floor), elementwise; the measure every row uses."""
    xp = array_module(a)
    return xp.abs(a - n) / xp.maximum(xp.maximum(xp.abs(a), xp.abs(n)), floor)


def complex_step_gradients(f, arrays, *, h=COMPLEX_STEP) -> dict:
    """Gradient of a real function by the complex step, entry by entry: one evaluation each.

    ``arrays``: name -> real float64 array; ``f(complex_arrays) -> complex scalar`` must be the
    real function evaluated on the complex copies (complex analytic: no abs, max, comparisons).
    Returns name -> array shaped like the input, d f / d entry = Im f(a + i h e) / h.
    """
    work = {k: numpy.asarray(v, dtype=complex).copy() for k, v in arrays.items()}
    grads = {}
    for name, array in work.items():
        grad = numpy.empty(array.shape)
        flat, gflat = array.reshape(-1), grad.reshape(-1)
        for j in range(flat.size):
            flat[j] += 1j * h
            gflat[j] = complex(f(work)).imag / h
            flat[j] -= 1j * h  # exactly the original: the real part never changed
        grads[name] = grad
    return grads

