"""Gradient checks with a readable report: a :class:`GradcheckReport` over npcell.numdiff.

The loss is a random weighted sum of every output, L = sum(R_h * h) + sum_k sum(R_k * state_T[k]),
with R drawn from a private seeded Generator (the caller's RNG is untouched). The analytic
gradient comes from :func:`npcell.backward` (the path under test: fused or the step loop, in the
cell's dtype); the numeric one from :mod:`npcell.numdiff`, which differences the *reference*
step loop in float64 (central differences, eps 1e-5) or complex128 (the complex step,
``method='complex'``), never the fast path it checks. Every comparison is numdiff's one rule,
|a - n| <= atol + rtol max(|a|, |n|) with atol scaled to the loss, shown as the relative error
|a - n| / (max(|a|, |n|) + atol / rtol) against rtol (the ``tol`` of the report).

Modes:

* ``fast``: one random directional derivative per parameter, per gate block (all its
  parameters at once), per time step of dx and per initial-state tensor.
* ``full``: every entry (or ``samples`` seeded entries per tensor). Failing fast rows are
  re-run this way so their hints can look at the element pattern.

The promise: with the default settings a correct backward passes (tests/test_gradcheck_promise.py
holds it over random shapes, seeds and every kind, float64 and float32; the measurement over
thousands of cases is scripts/gradcheck_false_fails.py).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field

import numpy

from .backend import array_module, to_numpy
from .errors import ConfigError, check_bool, check_int, check_real
from .errors import shape_hint as _shape_hint  # noqa: F401 - the grader imports it from here
from .numdiff import (  # noqa: F401 - relative_error, complex_step_gradients: re-exported
    COMPLEX_STEP,
    Tolerance,
    check_method,
    complex_step_gradients,
    derivative,
    entry_mover,
    loss_scale,
    mover,
    reference_outputs,
    relative_error,
    tolerance,
    working_copy,
)
from .sequence import (
    as_array,
    backward,
    check_cell,
    check_input,
    check_inputs_finite,
    check_state,
    forward,
)

# Kinds whose reference step_forward is complex analytic (tests/test_exercises_complex_step.py
# holds each to central differences); the others use abs/max/comparisons somewhere.
COMPLEX_SAFE = ("lstm", "peephole", "wmc", "gru", "ulstm", "ln_lstm", "fw_rnn", "fw_lstm",
                "teaching")
GROUPS = {"param": "parameters", "gate": "gate blocks", "dx": "dL/dx_t per step",
          "dstate0": "initial state"}


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
    # '' or how a value central differences failed was settled (see the hint): 'kink' (not
    # differentiable here: no verdict) or 'float64' (float32 round-off; the float64 twin passes)
    settled: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.max_rel_error <= self.tol) or self.settled != ""

    @property
    def kink(self) -> bool:
        return self.settled == "kink"

    @property
    def status(self) -> str:
        return "FAIL" if not self.ok else "kink" if self.kink else "ok"


@dataclass
class GradcheckReport:
    """Result of :func:`gradcheck`: ``str(report)`` prints the table, ``report.ok`` the verdict.

    ``tol`` is the rtol of the pass rule and ``floor`` = atol / rtol, the absolute floor of every
    row's relative error (atol scaled to the loss, see :mod:`npcell.numdiff`).
    """

    cell_kind: str
    mode: str
    dtype: str
    eps: float
    tol: float
    method: str = "central"
    rows: list[GradcheckRow] = field(default_factory=list)
    floor: float = 0.0

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
            f"eps={self.eps:g}, tol={self.tol:g}, floor={self.floor:.1e}): {verdict}, "
            f"max relative error {self.max_rel_error:.2e}"
        )
        width = max([16] + [len(r.name) + 2 for r in self.rows])  # long names keep their column
        lines = [head, f"  {'row':<{width}}{'rel.err':>10}{'abs.err':>10}{'analytic':>13}"
                 f"{'numeric':>13}  {'':4}  hint"]
        dx_rows = [r for r in self.rows if r.group == "dx"]
        shown = dx_rows[:3] + dx_rows[-3:]
        group = None
        for r in self.rows:
            if r.group == "dx" and len(dx_rows) > 8 and r.ok and r not in shown:
                continue
            if r.group != group:
                group = r.group
                lines.append(f"  -- {_group_title(group, self.mode)}")
            lines.append(
                f"  {r.name:<{width}}{r.max_rel_error:>10.2e}{r.max_abs_error:>10.2e}"
                f"{r.analytic:>13.5e}{r.numeric:>13.5e}  {r.status:4}  {r.hint}"
            )
        hidden = sum(1 for r in dx_rows if r.ok) - sum(
            1 for r in shown if r.ok) if len(dx_rows) > 8 else 0
        if hidden > 0:
            lines.append(f"  ({hidden} more passing dx[t] rows not shown)")
        return "\n".join(lines)

    def _repr_pretty_(self, p, cycle):  # IPython shows the table
        p.text(str(self))


def _group_title(group, mode):
    if group == "gate" and mode == "full":  # say that these rows repeat parameter rows
        return "gate blocks: the worst parameter row of each gate, repeated (see 'worst:')"
    if group == "gate":
        return "gate blocks: all parameters of one gate moved together"
    return GROUPS.get(group, group)


def gradcheck(cell, x, state=None, *, mode="fast", eps=None, tol=None, floor=None, samples=None,
              seed=0, fused=None, check_state0=True, method="central") -> GradcheckReport:
    """Check ``npcell.backward`` for ``cell`` on input ``x`` against numerical derivatives.

    Parameters
    ----------
    cell : any cell from :func:`npcell.make_cell` (its ``step_backward`` may be a student's).
    x : (T, B, X) input of the cell's dtype; state : initial state (zeros when None).
    mode : 'fast' (directional derivatives) or 'full' (every entry, or ``samples`` per tensor).
    eps : the central difference's step (default 1e-5; the numeric side runs in float64).
    tol : the rtol of the pass rule (default by dtype: float64 1e-5, float32 1e-3; see
        :data:`npcell.numdiff.TOLERANCES`); floor : the absolute floor atol / rtol of every
        relative error (default: the dtype's atol times the loss scale, over rtol).
    seed : seeds the loss weights, directions and sampled entries.
    fused : forwarded to :func:`npcell.forward` for the analytic side (None: the cell's default
        path); the numeric side always runs the reference step loop.
    method : 'central' differences, or 'complex' step (float64, kinds in :data:`COMPLEX_SAFE`;
        eps then defaults to :data:`npcell.numdiff.COMPLEX_STEP`).
    """
    check_method(method, "gradcheck")
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
    rule = tolerance(cell.dtype)
    if method == "complex":
        if cell.kind not in COMPLEX_SAFE or cell.dtype.name != "float64":
            raise ConfigError(
                f"gradcheck method='complex' needs a float64 cell of a complex-safe kind "
                f"{COMPLEX_SAFE}; got a {cell.dtype.name} {cell.kind!r} cell "
                "(use method='central')")
        eps = eps or COMPLEX_STEP
    eps = eps or rule.eps
    rule = Tolerance(rtol=tol or rule.rtol, atol=rule.atol, eps=eps)
    if cell.dtype.name != "float64":
        warnings.warn(
            f"gradcheck on a {cell.dtype.name} cell: its backward carries {cell.dtype.name} "
            f"round-off, so the pass rule is looser (tol={rule.rtol:g}); use dtype='float64' "
            "(cell.astype) for a tight check", UserWarning, stacklevel=2)

    # The loss weights, drawn in float64 and rounded to the cell's dtype once, so both sides
    # weight exactly the same numbers.
    rng = numpy.random.default_rng(seed)
    weights_h = xp.asarray(rng.standard_normal((T, B, cell.hidden_size)), dtype=cell.dtype)
    weights_s = {k: xp.asarray(rng.standard_normal(s), dtype=cell.dtype)
                 for k, s in cell.state_shapes(B).items()}

    # The analytic side: the path under test.
    _, _, cache = forward(cell, x, state, fused=fused)
    grads, dx, dstate0 = backward(cell, weights_h, cache, dstate=weights_s)

    # The numeric side: the reference step loop on float64 / complex128 copies, moved in place.
    numeric = _Numeric(cell, x, state, weights_h, weights_s, method, eps)
    floor = floor or rule.floor(numeric.scale)
    numeric.floor, numeric.rtol = floor, rule.rtol
    if cell.dtype.name != "float64":
        numeric.float32_twin(fused, weights_h, weights_s)

    tensors = {}  # name -> (group, where it lives in the working copies, its analytic gradient)
    for name in cell.params:
        tensors[name] = ("param", ("params", name), grads[name])
    for t in range(T):
        tensors[f"dx[t={t}]"] = ("dx", ("x", t), dx[t])
    if check_state0:
        for k in cell.state_names:
            tensors[f"dstate0[{k}]"] = ("dstate0", ("state", k), dstate0[k])

    report = GradcheckReport(cell.kind, mode, cell.dtype.name, eps, rule.rtol, method,
                             floor=floor)
    rows = {}
    for name, (group, key, analytic) in tensors.items():
        array = numeric.array(key)
        if tuple(analytic.shape) != tuple(array.shape):
            rows[name] = GradcheckRow(
                name, group, math.inf, math.inf, math.nan, math.nan, 0, rule.rtol,
                hint=f"gradient has shape {tuple(analytic.shape)}, tensor has shape "
                     f"{tuple(array.shape)}" + _shape_hint(analytic.shape, array.shape))
            continue
        if mode == "fast":
            rows[name] = numeric.directional_row(name, group, [(key, analytic)], rng)
            if not rows[name].ok:  # re-run in full (sampled) so the hint sees the pattern
                rows[name].hint = numeric.entry_row(name, group, key, analytic, rng,
                                                    samples or 64).hint
        else:
            rows[name] = numeric.entry_row(name, group, key, analytic, rng, samples)

    # Gate-block rows: all parameters of one gate moved together (fast) or the worst (full).
    gate_rows = []
    for gate, names in cell.gate_blocks().items():
        names = [n for n in names if n in rows]
        if not names:
            continue
        label = f"gate {gate}"
        worst_name = max(names, key=lambda n: rows[n].max_rel_error)
        if mode == "fast" and all(rows[n].n_checked for n in names):
            row = numeric.directional_row(label, "gate", [tensors[n][1:] for n in names], rng)
            if not row.ok or any(not rows[n].ok for n in names):
                row.hint = f"worst: {worst_name}"
        else:
            worst = rows[worst_name]
            row = GradcheckRow(label, "gate", worst.max_rel_error, worst.max_abs_error,
                               worst.analytic, worst.numeric, sum(rows[n].n_checked for n in names),
                               rule.rtol, worst.worst_index, hint=f"worst: {worst_name}")
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


# ----- the two ways of measuring, both over numdiff.derivative ---------------------------------
class _Numeric:
    """The numeric side of one check: the loss (the weights over the reference step loop's
    outputs) on working copies of the parameters, x and state; makes the directional and the
    entry-by-entry rows with numdiff's one primitive and one rule.

    A row that central differences fail is settled before it is reported, so that correct code
    is never called wrong: first by the complex step (no truncation error, so strong curvature,
    e.g. a LayerNorm over nearly equal units, cannot fake a disagreement), then, where the
    slopes left and right of the point differ and the complex step equals one of them (a ReLU
    input exactly at 0), by calling the row a kink: no verdict rather than a false one. A
    float32 row may also be settled by its float64 twin (the same backward, same path, run in
    float64): when that twin passes the float64 rule
    and the float32 value is within 10% of it, the gap is float32 round-off of an ill-conditioned
    step (a LayerNorm over two nearly equal units loses most of float32's digits), said in the
    hint. None of these can pass a wrong backward: the complex step and the one-sided slopes
    measure the function itself, and the twin is checked against them in float64.
    """

    SETTLE_MAX = 16  # failing entries of one tensor worth settling; more is a wrong tensor
    FLOAT32_GAP = 0.1  # largest float32 vs float64 gap of one backward that settle calls round-off

    def __init__(self, cell, x, state, weights_h, weights_s, method, eps):
        self.cell, self.x, self.state = cell, x, state
        self.method, self.eps = method, eps
        self.copies = {method: working_copy(cell, x, state, method)}
        self.weights = [weights_h.astype(numpy.float64)] + [
            weights_s[k].astype(numpy.float64) for k in cell.state_names]
        self.scale = loss_scale(self.weights, self.outputs(method)())
        self.floor = self.rtol = None  # set by gradcheck once it knows the rule
        self.twin = None  # float32: the float64 twin's analytic values (see settle)

    def float32_twin(self, fused, weights_h, weights_s):
        """For a float32 cell: the same backward run in float64 (``cell.astype``, same path),
        read by settle as ``twin(keys, direction)``."""
        cell64 = self.cell.astype("float64")
        x64 = self.x.astype("float64")
        state64 = {k: v.astype("float64") for k, v in self.state.items()}
        _, _, cache = forward(cell64, x64, state64, fused=fused)
        grads, dx, dstate0 = backward(
            cell64, weights_h.astype("float64"), cache,
            dstate={k: v.astype("float64") for k, v in weights_s.items()})
        tables = {"params": grads, "x": dx, "state": dstate0}
        rule64 = tolerance("float64")
        self.floor64 = rule64.floor(self.scale)

        def twin(keys, direction):
            values = [to_numpy(tables[where][name]) for where, name in keys]
            if isinstance(direction, tuple):
                return float(values[0][direction])
            return sum(float(numpy.sum(g * v)) for g, v in zip(values, direction))
        self.twin, self.rtol64 = twin, rule64.rtol

    def passes_float64(self, analytic, numeric):
        return float(relative_error(numpy.float64(analytic), numpy.float64(numeric),
                                    self.floor64)) <= self.rtol64

    def copy(self, method):
        if method not in self.copies:
            self.copies[method] = working_copy(self.cell, self.x, self.state, method)
        return self.copies[method]

    def array(self, key, method=None):
        """The working array at ``key``: ('params', name), ('x', t) or ('state', k)."""
        params, x, state = self.copy(method or self.method)
        where, name = key
        return {"params": params, "x": x, "state": state}[where][name]

    def outputs(self, method):
        params, x, state = self.copy(method)
        return lambda: reference_outputs(self.cell, params, x, state)

    def derivative(self, keys, direction, method=None):
        """dL/ds along ``direction``: a list of arrays (one per key), or an entry index."""
        method = method or self.method
        if isinstance(direction, tuple):  # one entry of one tensor
            move = entry_mover(self.array(keys[0], method), direction)
        else:
            arrays = [self.array(k, method) for k in keys]
            move = mover(arrays, [array_module(a).asarray(v) for a, v in zip(arrays, direction)])
        eps = self.eps if method == self.method else None
        return derivative(self.outputs(method), self.weights, move, method=method, eps=eps)

    def passes(self, analytic, numeric):
        return float(relative_error(numpy.float64(analytic), numpy.float64(numeric),
                                    self.floor)) <= self.rtol

    def settle(self, keys, direction, analytic):
        """(numeric or None, hint, settled) for a value central differences failed, or None
        when it stays a failure; see the class note."""
        if self.method == "complex":
            return None
        exact = None
        if self.cell.kind in COMPLEX_SAFE:
            try:
                exact = self.derivative(keys, direction, "complex")
            except (TypeError, ValueError, FloatingPointError):  # a forward that is not analytic
                exact = None
            if exact is not None and self.passes(analytic, exact):
                return exact, ("central difference off by its truncation error here; the "
                               "complex step agrees"), ""
        if self.twin is not None:  # float32: is the gap the float32 round-off of this step?
            a64 = self.twin(keys, direction)
            n = exact if self.cell.kind in COMPLEX_SAFE and exact is not None else None
            n = self.derivative(keys, direction) if n is None else n
            if self.passes_float64(a64, n) and abs(analytic - a64) <= self.FLOAT32_GAP * max(
                    abs(a64), self.floor):
                return n, (f"float32 round-off {abs(analytic - a64) / max(abs(a64), 1e-300):.1e} "
                           "(an ill-conditioned step, e.g. a LayerNorm over nearly equal units): "
                           "the same backward in float64 agrees with the numeric side"), "float64"
        # one-sided slopes: (L(p + eps v) - L(p)) / eps and (L(p) - L(p - eps v)) / eps
        up, down = self._one_sided(keys, direction)
        gap = abs(up - down)
        # A kink: the slopes left and right differ, and (where the complex step ran) it equals
        # one of them, as it does at a switch point (the branch its imaginary part takes) and
        # never for a smooth but strongly curved function (there it sits halfway between).
        sided = exact is None or min(abs(exact - up), abs(exact - down)) <= 0.1 * gap
        if gap > 1e-2 * max(abs(up), abs(down)) + self.rtol * self.floor and sided:
            return None, (f"not differentiable here (slope {down:.4g} left, {up:.4g} right: a "
                          "ReLU or max at its switch point); no verdict for this row"), "kink"
        return None

    def _one_sided(self, keys, direction):
        zero = self.outputs(self.method)()
        slopes = []
        for sign in (1.0, -1.0):
            plus = self._moved_outputs(keys, direction, sign * self.eps)
            slopes.append(sign * sum(float((w * (p - z)).sum())
                                     for w, p, z in zip(self.weights, plus, zero)) / self.eps)
        return slopes[0], slopes[1]

    def _moved_outputs(self, keys, direction, s):
        if isinstance(direction, tuple):
            move = entry_mover(self.array(keys[0]), direction)
        else:
            arrays = [self.array(k) for k in keys]
            move = mover(arrays, [array_module(a).asarray(v) for a, v in zip(arrays, direction)])
        move(s)
        try:
            return self.outputs(self.method)()
        finally:
            move(0)

    def directional_row(self, name, group, members, rng):
        """Compare v . grad with the numeric derivative along a random unit direction v over
        every (key, analytic gradient) pair in ``members``."""
        keys = [key for key, _ in members]
        directions = [rng.standard_normal(self.array(k).shape) for k in keys]
        norm = math.sqrt(sum(float(numpy.sum(v * v)) for v in directions)) or 1.0
        directions = [v / norm for v in directions]
        analytic = sum(float(numpy.sum(to_numpy(g).astype(numpy.float64) * v))
                       for (_, g), v in zip(members, directions))
        numeric = self.derivative(keys, directions)
        hint, how = "", ""
        if not self.passes(analytic, numeric):
            settled = self.settle(keys, directions, analytic)
            if settled is not None:
                value, hint, how = settled
                numeric = numeric if value is None else value
        rel = float(relative_error(numpy.float64(analytic), numpy.float64(numeric), self.floor))
        size = sum(int(v.size) for v in directions)
        return GradcheckRow(name, group, rel, abs(analytic - numeric), analytic, numeric, size,
                            self.rtol, hint=hint, settled=how)

    def entry_row(self, name, group, key, analytic, rng, samples):
        """The numeric derivative of every entry (or a seeded sample) of one tensor."""
        shape = self.array(key).shape
        size = int(numpy.prod(shape))
        flat_ids = numpy.arange(size)
        if samples is not None and samples < size:
            flat_ids = numpy.sort(rng.choice(size, size=samples, replace=False))
        numeric = numpy.full(shape, numpy.nan)
        for flat in flat_ids:
            idx = numpy.unravel_index(flat, shape)
            numeric[idx] = self.derivative([key], tuple(int(i) for i in idx))
        a = to_numpy(analytic).astype(numpy.float64)
        checked = ~numpy.isnan(numeric)
        rel = numpy.where(checked, relative_error(a, numpy.nan_to_num(numeric), self.floor), 0.0)
        failing = [tuple(int(i) for i in idx) for idx in numpy.argwhere(rel > self.rtol)]
        hints, how = set(), set()
        if 0 < len(failing) <= self.SETTLE_MAX:
            for idx in failing:
                settled = self.settle([key], idx, a[idx])
                if settled is None:
                    continue
                value, hint, kind = settled
                numeric[idx] = value if value is not None else numeric[idx]
                hints.add(hint)
                how.add(kind)
                if kind:  # no verdict on this entry (kink) or checked in float64
                    checked[idx] = False
            rel = numpy.where(checked, relative_error(a, numpy.nan_to_num(numeric), self.floor),
                              0.0)
        abs_err = numpy.where(checked, numpy.abs(a - numeric), 0.0)
        worst = numpy.unravel_index(int(numpy.argmax(rel)), rel.shape) if rel.size else ()
        row = GradcheckRow(name, group, float(rel.max(initial=0.0)),
                           float(abs_err.max(initial=0.0)),
                           float(a[worst]) if rel.size else 0.0,
                           float(numeric[worst]) if rel.size else 0.0, int(checked.sum()),
                           self.rtol, tuple(int(i) for i in worst), hint="; ".join(sorted(hints)),
                           settled=_how(how) if rel.max(initial=0.0) <= self.rtol else "")
        if not row.ok:
            row.hint = _pattern_hint(name, a, numeric, checked, self.floor)
        return row


def _how(settled: set) -> str:
    """The row's ``settled`` from its entries': 'kink' before 'float64' before ''."""
    return "kink" if "kink" in settled else "float64" if "float64" in settled else ""


# ----- hints for the usual bugs --------------------------------------------------------------
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


