"""Gradient diagnostics: what a cell's gradients do over time, and why (WMC paper, section 3.3).

:func:`diagnose` runs one forward and one backward pass of any cell kind over a sequence and
keeps, for every time step t,

* the state norms ‖c_t‖ and ‖h_t‖ (per sequence, then mean and max over the batch);
* gate saturation maps, one (T, H) array per gate: the fraction of the batch whose gate unit
  sits within ``threshold`` of an asymptote (sigmoid: s < tau or s > 1 - tau, i.e.
  sigma' < tau (1 - tau); tanh: |tanh| > 1 - tau; ReLU: output 0);
* the contribution of step t to every weight gradient (its Frobenius norm per step; the full
  (T, ...) arrays with ``keep_step_grads=True``), e.g. ‖dL/dW_ic at step t‖ beside ‖c_{t-1}‖;
* for the peephole and WMC cells, the paper's local term alone, ‖∂k_t/∂W_kc‖ (eq. 14 / 21),
  and :meth:`Diagnosis.loglog_slopes`: how both scale with ‖c‖ on log-log axes;
* ‖dL/dh_t‖, ‖dL/dc_t‖ and ‖dL/dx_t‖: where the error signal vanishes or explodes.

It measures inside the one stepwise BPTT loop of :mod:`npcell.sequence` (the ``on_step`` hooks
of ``stepwise_forward`` / ``stepwise_backward``) on the pure step pair every cell has and the
named step caches, so every registered kind works, including
kinds added later: a cell without ``c`` reports the states it has, and gate names come from
``cell.gate_blocks()`` matched against the step cache keys (a cell may also declare
``gate_activations() -> {gate: 'sigmoid' | 'tanh' | 'relu'}``).

The second half of the module is the paper's own analysis as functions a notebook can call on
one cached step of an ``lstm``, ``peephole`` or ``wmc`` cell, for each of the gates i, f, o:
:func:`gate_preactivation` (ī_t, eq. 10 / 20), :func:`gate_derivative` (∂i/∂ī, eq. 11 / 19),
:func:`delta_hat` (δ̂i_t, eq. 15) and :func:`weight_local_gradients` (the outer products of
eq. 12-14 / 21). Then the named regimes (:data:`REGIMES`, ``npcell diagnose --regime``), each
setting up lstm / peephole / wmc so that one claim of the paper shows, and :func:`takeaway`, the
one line a figure's title carries, computed from the data. Drawing is :mod:`npcell.plots`' job
(it imports this module; this module never imports it). docs/diagnostics.md has the measured
numbers.

Shapes: x (T, B, X) time-major, h and c (B, H) per step, T steps, batch B, hidden size H.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy

from .backend import array_module, to_numpy
from .cells.ops import cell_read, dtanh, sigmoid
from .errors import ConfigError, ShapeError, shape_str
from .sequence import (
    check_input,
    check_state,
    complete_dstate,
    stepwise_backward,
    stepwise_forward,
)

DEFAULT_THRESHOLD = 0.05
# The cells and gates of the paper's analysis (eq. 10-21): gates i and f read c_{t-1}, o reads c_t.
PAPER_GATES = ("i", "f", "o")
PAPER_KINDS = ("lstm", "peephole", "wmc")
MIN_FIT_DECADES = 1.0  # a log-log slope over less than one decade of ‖c‖ says little: none quoted
# Gate names whose activation is tanh in the cells npcell ships (the candidates); every other
# gate found in a step cache is read as a sigmoid gate unless its values leave [0, 1].
TANH_GATE_NAMES = frozenset({"g", "n", "u", "ltm_cand", "cand", "candidate"})
FORMAT_VERSION = 1


# ============================================================================================
# The result
# ============================================================================================
@dataclass
class Diagnosis:
    """What :func:`diagnose` measured on one cell and one sequence (host NumPy arrays).

    Time runs t = 0 .. T-1 (step t reads x_t and the state left by step t-1).

    Attributes
    ----------
    kind, label, task : cell kind, legend label (kind plus non-default options), task text.
    loss : the loss value of this forward pass.
    threshold : the saturation threshold tau.
    state_norm_mean, state_norm_max : state name -> (T + 1,) arrays; entry 0 is the initial
        state, entry t + 1 the state after step t. Per sequence ‖s‖ is the L2 norm over units
        (over all H*H entries for a fast-weight matrix A), then mean / max over the batch.
    saturation : gate -> (T, H) fraction of the batch saturated at (t, unit).
    gate_activation : gate -> 'sigmoid' | 'tanh' | 'relu'.
    grad_step_norm : parameter -> (T,) Frobenius norm of step t's contribution to dL/dW.
    grads : parameter -> the full gradient (sum of the step contributions), as npcell.backward.
    step_grads : parameter -> (T, *shape) step contributions (only with keep_step_grads=True).
    dstate_norm : state name -> (T,) Frobenius norm over (B, H) of dL/ds_t, the adjoint that
        enters step t's backward: for h it includes the loss term at t; for c it is the part
        carried back from step t+1 (h_t held fixed), so it is 0 at the last step.
    dx_norm : (T,) Frobenius norm of dL/dx_t.
    term_norm : connection weight (W_ic, W_fc, W_oc) -> (T,) root-mean-square over the batch of
        ‖∂k_t/∂W_kc‖ for one sequence, the paper's local term without the upstream error:
        ‖δ̂k_t ⊗ c‖ (eq. 14 with δ̂ of eq. 15, WMC; eq. 21, peephole; ‖δ̂ ⊙ c‖ when diagonal).
        Only for the lstm-family cells with a cell connection (peephole, wmc).
    gate_blocks : the cell's gate blocks (gate -> parameter names), for grouping in plots.
    """

    kind: str
    label: str
    task: str
    loss: float
    threshold: float
    batch_size: int
    hidden_size: int
    state_norm_mean: dict = field(default_factory=dict)
    state_norm_max: dict = field(default_factory=dict)
    saturation: dict = field(default_factory=dict)
    gate_activation: dict = field(default_factory=dict)
    grad_step_norm: dict = field(default_factory=dict)
    grads: dict = field(default_factory=dict)
    step_grads: dict = field(default_factory=dict)
    dstate_norm: dict = field(default_factory=dict)
    dx_norm: numpy.ndarray | None = None
    term_norm: dict = field(default_factory=dict)
    gate_blocks: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)

    # ----- convenient views ----------------------------------------------------------------
    @property
    def T(self) -> int:
        return int(self.dx_norm.shape[0])

    @property
    def state_names(self) -> list[str]:
        return list(self.state_norm_mean)

    @property
    def has_cell(self) -> bool:
        """True when the cell carries a memory cell state c."""
        return "c" in self.state_norm_mean

    def state_norm(self, name: str = "c", reduce: str = "mean", *, prev: bool = False):
        """(T,) norms of state ``name``: after step t (default) or, with ``prev=True``, the
        state step t reads (‖c_{t-1}‖, the x-axis of eq. 14 / 21)."""
        table = {"mean": self.state_norm_mean, "max": self.state_norm_max}
        if reduce not in table:
            raise ConfigError(f"reduce must be 'mean' or 'max'; got {reduce!r}")
        if name not in table[reduce]:
            raise ConfigError(
                f"the {self.kind} cell has no state {name!r}; it has {self.state_names}"
            )
        norms = table[reduce][name]
        return norms[:-1] if prev else norms[1:]

    @property
    def cell_norm_mean(self):
        """(T,) mean over the batch of ‖c_t‖ (‖h_t‖ for cells without c)."""
        return self.state_norm(self.memory_state, "mean")

    @property
    def cell_norm_max(self):
        """(T,) max over the batch of ‖c_t‖ (‖h_t‖ for cells without c)."""
        return self.state_norm(self.memory_state, "max")

    @property
    def memory_state(self) -> str:
        """'c' when the cell has one, else 'h': the state the norm panels show."""
        return "c" if self.has_cell else "h"

    def connection_params(self) -> list[str]:
        """The weights that read the cell state (W_ic, W_fc, W_oc for peephole and WMC)."""
        names = self.gate_blocks.get("c-connections", [])
        return [n for n in names if n.startswith("W_")]

    def summary(self) -> str:
        """A few numbers per diagnosis, as printable text."""
        lines = [f"{self.label} on {self.task}: loss {self.loss:.4g}"]
        mem = self.memory_state
        lines.append(
            f"  ||{mem}_t|| mean over batch: t=0 {self.cell_norm_mean[0]:.3g}, "
            f"t=T-1 {self.cell_norm_mean[-1]:.3g}, max over t {self.cell_norm_max.max():.3g}"
        )
        dh = self.dstate_norm["h"]
        lines.append(
            f"  ||dL/dh_t||: t=T-1 {dh[-1]:.3g}, t=0 {dh[0]:.3g} (ratio {_ratio(dh[0], dh[-1])})"
        )
        for name in self.connection_params():
            g = self.grad_step_norm[name]
            lines.append(f"  per-step ||dL/d{name}||: max {g.max():.3g}, last {g[-1]:.3g}")
        for gate, sat in self.saturation.items():
            lines.append(
                f"  gate {gate} ({self.gate_activation[gate]}): "
                f"{100.0 * sat.mean():.1f}% of units saturated (tau={self.threshold})"
            )
        return "\n".join(lines)

    def __repr__(self):
        return (
            f"Diagnosis(kind={self.kind!r}, task={self.task!r}, T={self.T}, "
            f"B={self.batch_size}, H={self.hidden_size}, loss={self.loss:.4g}, "
            f"gates={list(self.saturation)})"
        )

    # ----- how the connection gradients scale with ‖c‖ ----------------------------------------
    def cell_read_norm(self, name: str):
        """(T,) batch mean of the ‖c‖ weight ``name`` reads: c_t for W_oc, c_{t-1} otherwise."""
        return self.state_norm("c", prev=name != "W_oc")

    def loglog_slopes(self) -> dict:
        """Connection weight -> {'term': LogLogFit, 'full': LogLogFit} against ‖c‖ read.

        'term' fits :attr:`term_norm` (eq. 14 / 21 alone), 'full' the per-step ‖dL/dW_kc‖ of
        BPTT, which multiplies the term by the upstream error dL/dk_t (see docs/diagnostics.md).
        A fit that has too few positive points is left out.
        """
        out = {}
        for name in self.connection_params():
            x = self.cell_read_norm(name)
            fits = {}
            for what, y in (("term", self.term_norm.get(name)),
                            ("full", self.grad_step_norm.get(name))):
                if y is None:
                    continue
                try:
                    fits[what] = fit_loglog(x, y)
                except ConfigError:
                    pass
            out[name] = fits
        return out

    # ----- dict / npz round trip -------------------------------------------------------------
    _DICT_FIELDS = ("state_norm_mean", "state_norm_max", "saturation", "grad_step_norm",
                    "grads", "step_grads", "dstate_norm", "term_norm")
    _META_FIELDS = ("kind", "label", "task", "loss", "threshold", "batch_size", "hidden_size",
                    "gate_activation", "gate_blocks", "options")

    def to_dict(self, *, lists: bool = False) -> dict:
        """Plain dict of every field; ``lists=True`` turns arrays into lists (JSON-ready)."""
        conv = (lambda a: a.tolist()) if lists else (lambda a: a)
        out = {name: getattr(self, name) for name in self._META_FIELDS}
        for name in self._DICT_FIELDS:
            out[name] = {k: conv(v) for k, v in getattr(self, name).items()}
        out["dx_norm"] = conv(self.dx_norm)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> Diagnosis:
        kwargs = {name: d[name] for name in cls._META_FIELDS}
        for name in cls._DICT_FIELDS:
            kwargs[name] = {k: numpy.asarray(v) for k, v in d.get(name, {}).items()}
        kwargs["dx_norm"] = numpy.asarray(d["dx_norm"])
        return cls(**kwargs)

    def save(self, path) -> str:
        """Write an .npz file (plain arrays plus a JSON header; readable without pickle)."""
        arrays = {"__meta__": numpy.array(json.dumps(
            {"format_version": FORMAT_VERSION,
             **{name: getattr(self, name) for name in self._META_FIELDS}}))}
        for name in self._DICT_FIELDS:
            for key, value in getattr(self, name).items():
                arrays[f"{name}/{key}"] = numpy.asarray(value)
        arrays["dx_norm"] = numpy.asarray(self.dx_norm)
        path = str(path)
        numpy.savez(path, **arrays)
        return path if path.endswith(".npz") else path + ".npz"

    @classmethod
    def load(cls, path) -> Diagnosis:
        """Read a file written by :meth:`save` (``allow_pickle=False``)."""
        with numpy.load(str(path), allow_pickle=False) as data:
            if "__meta__" not in data.files:
                raise ConfigError(f"{path} is not a Diagnosis file (no __meta__ entry)")
            meta = json.loads(str(data["__meta__"]))
            if meta.pop("format_version", None) != FORMAT_VERSION:
                raise ConfigError(f"{path}: unknown Diagnosis format version")
            d = dict(meta)
            for name in cls._DICT_FIELDS:
                d[name] = {}
            for key in data.files:
                if "/" in key:
                    name, sub = key.split("/", 1)
                    d[name][sub] = data[key]
            d["dx_norm"] = data["dx_norm"]
        return cls.from_dict(d)


# ============================================================================================
# diagnose
# ============================================================================================
def diagnose(cell, seq, target=None, loss=None, *, state=None, dstate=None,
             threshold=DEFAULT_THRESHOLD, task=None, label=None, gates=None,
             keep_step_grads=False, seed=0) -> Diagnosis:
    """One forward and one backward pass of ``cell`` over ``seq``, measured step by step.

    Parameters
    ----------
    cell : any npcell cell.
    seq : x (T, B, X), or a pair (x, target) such as ``npcell.tasks.adding.make_batch`` returns.
    target : optional. (B, Y) is read out at the last step, (T, B, Y) at every step, by a
        seeded linear readout (``npcell.training.layers.Linear(H, Y, seed=seed)``) and the MSE loss.
    loss : optional callable ``loss(h) -> (value, dh)`` with h and dh (T, B, H); overrides the
        target readout.
        Default (no target, no loss): L = mean over the batch of r · h_{T-1}, with r a fixed
        random unit vector (seeded by ``seed``). The error enters at the last step only, like
        the adding task, so ‖dL/dh_t‖ over t shows how far back the signal reaches.
    state : initial state dict (zeros when None).
    dstate : optional gradient of the loss with respect to the *final* state, as in
        :func:`npcell.backward` (e.g. ``{"c": r}`` puts error straight on c_{T-1}, which reaches
        the cell even when tanh(c) is saturated). It adds to the loss above; pass
        ``loss=lambda h: (0.0, 0 * h)`` to use it alone.
    threshold : tau of the saturation maps (see the module docstring), in (0, 0.5).
    task : text naming the task, for titles (default "a custom sequence").
    label : legend label (default: the kind plus its non-default options).
    gates : optional {gate name: 'sigmoid' | 'tanh' | 'relu'} overriding the detected gates.
    keep_step_grads : also keep every step's full gradient contribution (memory T x params).

    Returns
    -------
    :class:`Diagnosis`.
    """
    if isinstance(seq, tuple) and len(seq) == 2:
        if target is not None:
            raise ConfigError("give the target either inside seq=(x, target) or as target=")
        seq, target = seq
    xp = check_input(cell, seq)
    if (isinstance(threshold, bool) or not isinstance(threshold, (int, float, numpy.number))
            or not 0.0 < float(threshold) < 0.5):
        raise ConfigError(f"threshold must be a number in (0, 0.5); got {threshold!r}")
    threshold = float(threshold)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, numpy.integer))
                             or seed < 0):
        raise ConfigError(f"seed must be a non-negative int; got {seed!r}")
    x = seq
    T, B, _ = x.shape
    H = cell.hidden_size
    params = cell.params
    state = check_state(cell, state, B, "state")

    # ----- forward: the stepwise loop keeps every step cache; the hook measures each step ----
    state_norms = {name: [_batch_norms(value)] for name, value in state.items()}
    reads_cell = getattr(cell, "cell_read", None) is not None and cell.kind in PAPER_KINDS
    term_norms = {f"W_{gate}c": [] for gate in PAPER_GATES} if reads_cell else {}

    def measure_forward(t, state_t, cache_t):
        for name, value in state_t.items():
            state_norms[name].append(_batch_norms(value))
        for gate in PAPER_GATES if reads_cell else ():
            term_norms[f"W_{gate}c"].append(local_term_norm(cell, cache_t, gate))

    h, _, caches = stepwise_forward(cell, x, state, on_step=measure_forward)
    gate_act = _resolve_gates(cell, caches, B, gates)
    saturation = {
        gate: to_numpy(xp.stack([_saturated(c[gate], act, threshold).mean(axis=0)
                                 for c in caches]))
        for gate, act in gate_act.items()
    }

    # ----- the loss and its gradient dL/dh_t -------------------------------------------------
    loss_value, dh = _loss_and_dh(cell, h, target, loss, seed)

    # ----- backward (BPTT, t = T-1 .. 0): the hook keeps each step's contribution -----------
    step_norms = {name: [] for name in params}
    step_grads = {name: [] for name in params} if keep_step_grads else {}
    dstate_norms = {name: [] for name in cell.state_names}
    dx_norms = []

    def measure_backward(t, dstate_t, grads_t, dx_t, dstate_prev):
        for name, value in dstate_t.items():
            dstate_norms[name].append(_frobenius(value))
        dx_norms.append(_frobenius(dx_t))
        for name, g in grads_t.items():
            step_norms[name].append(_frobenius(g))
            if keep_step_grads:
                step_grads[name].append(g)

    grads, _, _ = stepwise_backward(cell, dh, caches, complete_dstate(cell, dstate, B),
                                    on_step=measure_backward)

    def series(values, reverse=False):
        arr = to_numpy(xp.stack(values))
        return arr[::-1].copy() if reverse else arr

    norms = {name: to_numpy(xp.stack(v)) for name, v in state_norms.items()}  # (T + 1, B)
    return Diagnosis(
        kind=cell.kind,
        label=label or _default_label(cell),
        task=task or "a custom sequence",
        loss=float(loss_value),
        threshold=threshold,
        batch_size=int(B),
        hidden_size=int(H),
        state_norm_mean={name: n.mean(axis=1) for name, n in norms.items()},
        state_norm_max={name: n.max(axis=1) for name, n in norms.items()},
        saturation=saturation,
        gate_activation=gate_act,
        grad_step_norm={name: series(v, reverse=True) for name, v in step_norms.items()},
        grads={name: to_numpy(g) for name, g in grads.items()},
        step_grads={name: series(v, reverse=True) for name, v in step_grads.items()},
        dstate_norm={name: series(v, reverse=True) for name, v in dstate_norms.items()},
        dx_norm=series(dx_norms, reverse=True),
        term_norm={name: series(v) for name, v in term_norms.items()},
        gate_blocks={k: list(v) for k, v in cell.gate_blocks().items()},
        options=_jsonable(cell.options),
    )


def _batch_norms(value):
    """Per-sequence L2 norm of a state array (B, ...) -> (B,)."""
    xp = array_module(value)
    flat = value.reshape(value.shape[0], -1)
    return xp.sqrt((flat * flat).sum(axis=1))


def _frobenius(value):
    xp = array_module(value)
    return xp.sqrt((value * value).sum())


def _ratio(a, b) -> str:
    return f"{a / b:.3g}" if b != 0 else "inf"


def _saturated(gate_values, activation, tau):
    """Boolean (B, H): the gate unit sits within tau of an asymptote (its slope is ~0)."""
    xp = array_module(gate_values)
    if activation == "sigmoid":
        return (gate_values < tau) | (gate_values > 1.0 - tau)  # sigma' < tau (1 - tau)
    if activation == "tanh":
        return xp.abs(gate_values) > 1.0 - tau  # tanh' < tau (2 - tau)
    if activation == "relu":
        return gate_values <= 0.0  # a dead ReLU passes no gradient
    raise ConfigError(f"unknown gate activation {activation!r}; expected sigmoid, tanh or relu")


def _resolve_gates(cell, caches, batch, override):
    """Gate name -> activation, from an override, the cell's own declaration, or the caches."""
    if override is not None:
        unknown = [g for g in override if g not in caches[0]]
        if unknown:
            raise ConfigError(
                f"gates {unknown} are not in the {cell.kind} step cache; it holds {list(caches[0])}"
            )
        return dict(override)
    declared = cell.gate_activations() if hasattr(cell, "gate_activations") else None
    if declared:
        return dict(declared)
    H = cell.hidden_size
    gates = [gate for gate in cell.gate_blocks()
             if caches[0].get(gate) is not None and tuple(caches[0][gate].shape) == (batch, H)]
    if not gates:  # only blocks that are not gate outputs (e.g. "c-connections")
        return {}
    # Each gate's range over all steps, reduced on the device and read back once for all gates
    # (not once per step and gate: on a GPU every read-back waits for the device).
    xp = array_module(caches[0][gates[0]])

    def low_high(gate):
        steps = xp.stack([c[gate] for c in caches])  # (T, B, H)
        return xp.stack([steps.min(), steps.max()])

    ranges = to_numpy(xp.stack([low_high(gate) for gate in gates]))  # (gates, 2)
    found = {}
    for gate, (lo, hi) in zip(gates, ranges):
        if gate in TANH_GATE_NAMES or lo < 0.0:
            found[gate] = "tanh" if lo >= -1.0 and hi <= 1.0 else "relu"
        elif hi <= 1.0:
            found[gate] = "sigmoid"
        else:
            found[gate] = "relu"
    return found


def _default_label(cell) -> str:
    extras = [f"{k}={v}" for k, v in cell.options.items()
              if type(cell).default_options.get(k) != v]
    return cell.kind + (f" ({', '.join(extras)})" if extras else "")


def _jsonable(options: dict) -> dict:
    return {k: (v if isinstance(v, (bool, int, float, str)) or v is None else repr(v))
            for k, v in options.items()}


def _loss_and_dh(cell, h, target, loss, seed):
    """The loss value and dL/dh (T, B, H) for the three ways diagnose can be asked."""
    xp = array_module(h)
    T, B, H = h.shape
    if loss is not None:
        if not callable(loss):
            raise ConfigError(f"loss must be a callable loss(h) -> (value, dh); got {loss!r}")
        value, dh = loss(h)
        if tuple(dh.shape) != (T, B, H):
            raise ShapeError(
                f"loss(h) must return dh with the shape of h {shape_str(h.shape)}; "
                f"got {shape_str(dh.shape)}"
            )
        return float(value), dh
    dh = xp.zeros_like(h)
    if target is None:
        # L = mean_b r . h_{T-1}: a fixed random direction read at the last step only.
        r = numpy.random.default_rng(seed).standard_normal(H)
        r = xp.asarray(r / numpy.linalg.norm(r), dtype=h.dtype)
        dh[-1] = r / B  # dL/dh_{T-1}, the same for every sequence
        return float((h[-1] @ r).mean()), dh
    from .training.layers import Linear, mse_loss

    target = xp.asarray(target, dtype=h.dtype)
    if target.ndim == 2 and target.shape[0] == B:
        read = h[-1]  # a (B, Y) target is read out at the last step (adding task)
    elif target.ndim == 3 and target.shape[:2] == (T, B):
        read = h  # a (T, B, Y) target at every step
    else:
        raise ShapeError(
            f"target must be (B, Y) = ({B}, Y) for a last-step readout or (T, B, Y) = "
            f"({T}, {B}, Y) for every step; got {shape_str(target.shape)}"
        )
    readout = Linear(H, target.shape[-1], dtype=h.dtype.name, seed=seed, xp=xp)
    pred, cache = readout.forward(readout.params, read)
    value, dpred = mse_loss(pred, target)
    _, dread = readout.backward(readout.params, dpred, cache)  # dL/dh through the readout
    if target.ndim == 2:
        dh[-1] = dread
    else:
        dh[...] = dread
    return value, dh


# ============================================================================================
# compare
# ============================================================================================
@dataclass
class Comparison:
    """Several diagnoses of the same sequence, with their side-by-side figure."""

    diagnoses: list
    regime: Regime | None = None

    def __iter__(self):
        return iter(self.diagnoses)

    def __len__(self):
        return len(self.diagnoses)

    def __getitem__(self, i):
        return self.diagnoses[i]

    def summary(self) -> str:
        return "\n".join(d.summary() for d in self.diagnoses)

    def takeaway(self) -> str:
        """One line computed from the diagnoses (see :func:`takeaway`)."""
        return takeaway(self.diagnoses)


def compare(cells, seq, target=None, loss=None, *, labels=None, task=None,
            **kwargs) -> Comparison:
    """Diagnose several cells on the same sequence (draw it with
    :func:`npcell.plots.comparison_figure`).

    ``cells``: a list of cells (same input size). ``labels``: optional legend labels.
    Other keyword arguments go to :func:`diagnose`.
    """
    cells = list(cells)
    if not cells:
        raise ConfigError("compare needs at least one cell")
    if labels is not None and len(labels) != len(cells):
        raise ConfigError(f"got {len(labels)} labels for {len(cells)} cells")
    if isinstance(seq, tuple) and len(seq) == 2 and target is None:
        seq, target = seq
    diagnoses = [
        diagnose(cell, seq, target, loss, task=task,
                 label=None if labels is None else labels[n], **kwargs)
        for n, cell in enumerate(cells)
    ]
    return Comparison(diagnoses)


# ============================================================================================
# Named regimes: each sets up lstm / peephole / wmc so that one claim of the paper shows
# ============================================================================================
@dataclass(frozen=True)
class Regime:
    """A diagnosis setting: an adding-problem batch and cells with chosen biases and W_kc.

    ``biases`` sets whole bias vectors (e.g. b_f = 5: the forget gate starts open).
    ``connection`` gives, per cell kind, how W_ic, W_fc, W_oc are drawn: ``None`` keeps the
    cell's own init (PyTorch's U(+-1/sqrt(H))), ``("sign", m)`` sets every entry to +-m with a
    random sign; ``diagonal`` forces the W_kc shape of both connected cells.
    """

    name: str
    claim: str
    T: int
    hidden: int
    batch: int
    biases: dict = field(default_factory=dict)
    connection: dict = field(default_factory=dict)
    diagonal: bool | None = None
    note: str = ""
    kinds: tuple = PAPER_KINDS  # the cells the regime shows by default


REGIMES = {
    "eq21-vs-eq14": Regime(
        "eq21-vs-eq14",
        claim="eq. (21) vs (14): the peephole's term grows as ‖c‖, WMC's falls once tanh saturates",
        T=300, hidden=16, batch=16, biases={"b_i": 0.0, "b_f": 5.0, "b_g": 1.0},
        connection={"peephole": ("sign", 0.01), "wmc": ("sign", 1.0)}, diagonal=True,
        kinds=("peephole", "wmc"),
        note="controlled: f ~ 1 and g ~ 0.76 make c grow every step; the peephole's |w| = 0.01 "
             "keeps its sigmoid in the linear range, WMC's |w| = 1 saturates tanh from ‖c‖ ~ 3"),
    "flooding": Regime(
        "flooding",
        claim="same weights, gates half open: the peephole's W_fc c feeds f back and c floods; "
              "WMC's tanh caps the push",
        T=400, hidden=64, batch=16, biases={"b_i": 2.0, "b_f": 2.0, "b_g": 1.0},
        note="PyTorch's init for every weight; b_f = 2 lets c reach ~ i g / (1 - f) ~ 5 per "
             "unit, where a positive w_fc c already pushes f towards 1"),
    "pytorch-init": Regime(
        "pytorch-init",
        claim="at PyTorch's init the cells agree: ‖c‖ = O(1), so tanh(W_kc c) ~ W_kc c",
        T=400, hidden=64, batch=32,
        note="the null case: nothing in the paper's argument shows before c grows"),
}


def regime_cells(name, kinds=None, *, seed=0):
    """(cells, x, y, task text) for regime ``name``: one cell per kind (default: the regime's
    own), all with the same LSTM weights (one seed)."""
    from .cells import make_cell
    from .tasks.adding import make_batch

    if name not in REGIMES:
        raise ConfigError(f"unknown regime {name!r}; expected one of {sorted(REGIMES)}")
    regime = REGIMES[name]
    kinds = regime.kinds if kinds is None else tuple(kinds)
    x, y = make_batch(regime.T, regime.batch, numpy.random.default_rng(seed))
    cells = []
    for kind in kinds:
        options = {}
        if regime.diagonal is not None and kind in ("peephole", "wmc"):
            options["diagonal"] = regime.diagonal
        cell = make_cell(kind, x.shape[-1], regime.hidden, seed=seed, **options)
        for bias, value in regime.biases.items():
            cell.params[bias][...] = value
        rule = regime.connection.get(kind)
        if rule is not None:
            rng = numpy.random.default_rng([seed, 21])
            for gate in PAPER_GATES:
                w = cell.params[f"W_{gate}c"]
                w[...] = rule[1] * rng.choice([-1.0, 1.0], size=w.shape)  # +-m, random sign
        cells.append(cell)
    return cells, x, y, f"{name}, adding T={regime.T}"


def run_regime(name, kinds=None, *, seed=0, threshold=DEFAULT_THRESHOLD) -> Comparison:
    """Diagnose ``kinds`` (default: the regime's) in regime ``name``, labelled by kind; the
    Comparison carries the regime."""
    cells, x, y, task = regime_cells(name, kinds, seed=seed)
    result = compare(cells, x, y, task=task, threshold=threshold, seed=seed,
                     labels=[cell.kind for cell in cells])
    result.regime = REGIMES[name]
    return result


def takeaway(diagnoses) -> str:
    """One line computed from the diagnoses: the eq. 14 / 21 slopes, ‖c‖ reached, saturation.

    e.g. "W_ic term ~ ‖c‖^0.97 (peephole), ‖c‖^-3.2 (wmc); ‖c_T‖ lstm 48, peephole 727, wmc 71".
    """
    diagnoses = list(diagnoses)
    parts = []
    slopes = [(d.label, d.loglog_slopes().get("W_ic", {}).get("term")) for d in diagnoses]
    slopes = [(label, fit) for label, fit in slopes if fit is not None]
    if slopes and all(fit.span >= MIN_FIT_DECADES for _, fit in slopes):
        parts.append("W_ic term ~ " + ", ".join(f"‖c‖^{fit.slope:.2f} ({label})"
                                                 for label, fit in slopes))
    elif slopes:
        span = min(fit.span for _, fit in slopes)
        parts.append(f"‖c‖ spans {span:.1f} decades: no slope")
    with_cell = [d for d in diagnoses if d.has_cell]
    if with_cell:
        parts.append("‖c_T‖ " + ", ".join(f"{d.label} {d.cell_norm_mean[-1]:.3g}"
                                          for d in with_cell))
    sat = [(d.label, max(((100.0 * s.mean(), g) for g, s in d.saturation.items()
                          if d.gate_activation.get(g) == "sigmoid"), default=None))
           for d in diagnoses]
    sat = [(label, v) for label, v in sat if v is not None]
    if sat and all(pct == 0.0 for _, (pct, _) in sat):
        parts.append("no gate unit saturates")
    elif sat:
        parts.append("most saturated gate " + ", ".join(f"{label} {g} {pct:.0f}%"
                                                        for label, (pct, g) in sat))
    return "; ".join(parts) if parts else "no cell-state measurements"


# ============================================================================================
# Log-log fits: how a per-step gradient scales with the cell norm it read
# ============================================================================================
@dataclass(frozen=True)
class LogLogFit:
    """Least-squares line log10 y = slope * log10 x + intercept, over the n points with x, y > 0.

    A slope of 1 means y grows in proportion to x (eq. 21: the peephole's per-step ‖dL/dW_kc‖
    is a gate error times c); a slope near 0 means y does not follow x (eq. 14: WMC's term is
    divided away by the tanh derivative once W_kc c saturates). ``r2`` is the fraction of the
    variance of log10 y the line explains; ``span`` the decades of x the fit covers.
    """

    slope: float
    intercept: float
    r2: float
    n: int
    span: float

    def __str__(self):
        return (f"slope {self.slope:.2f} (R² {self.r2:.2f}, {self.n} points, "
                f"{self.span:.1f} decades)")


def fit_loglog(x, y, *, min_points=3) -> LogLogFit:
    """Fit a power law y ~ x^slope on log-log axes (both (N,) arrays; non-positive points skipped).

    Raises ConfigError when fewer than ``min_points`` positive pairs remain or x spans no range.
    """
    x = numpy.asarray(to_numpy(x), dtype=float).ravel()
    y = numpy.asarray(to_numpy(y), dtype=float).ravel()
    if x.shape != y.shape:
        raise ShapeError(f"fit_loglog needs x and y of one shape; got {x.shape} and {y.shape}")
    keep = (x > 0) & (y > 0) & numpy.isfinite(x) & numpy.isfinite(y)
    lx, ly = numpy.log10(x[keep]), numpy.log10(y[keep])
    if lx.size < min_points or numpy.ptp(lx) == 0.0:
        raise ConfigError(f"fit_loglog needs at least {min_points} positive points over a range "
                          f"of x; got {lx.size}")
    slope, intercept = numpy.polyfit(lx, ly, 1)
    residual = ly - (slope * lx + intercept)
    total = ((ly - ly.mean()) ** 2).sum()
    # a flat y (total ~ rounding) is explained perfectly by the flat line
    flat = total <= 1e-20 * max(1.0, float((ly ** 2).sum()))
    r2 = 1.0 if flat else 1.0 - (residual ** 2).sum() / total
    return LogLogFit(float(slope), float(intercept), float(r2), int(lx.size), float(numpy.ptp(lx)))


# ============================================================================================
# The paper's local gradients, eq. (10)-(15) (WMC) and (19)-(21) (peephole)
# ============================================================================================


def _paper_cell(cell, gate):
    """The cell's CellRead (squash, diagonal, bias) or None for lstm; raise for other kinds /
    gates."""
    if cell.kind not in PAPER_KINDS:
        raise ConfigError(
            f"the eq. 10-15 / 19-21 local gradients are defined for the lstm, peephole and wmc "
            f"cells; got a {cell.kind!r} cell"
        )
    if gate not in PAPER_GATES:
        raise ConfigError(f"gate must be one of {PAPER_GATES}; got {gate!r}")
    return cell.cell_read


def _cell_read(cell, cache_t, gate):
    """The cell state gate k reads: c_{t-1} for i and f, the new c_t for o (eq. 9 / 18)."""
    return cache_t["c"] if gate == "o" else cache_t["c_prev"]


def _connection_argument(cell, cache_t, gate):
    """W_kc c (+ b_kc): the argument of the tanh in eq. (10) / the peephole term of eq. (20)."""
    p = cell.params
    return cell_read(p[f"W_{gate}c"], _cell_read(cell, cache_t, gate), p.get(f"b_{gate}c"))


def gate_preactivation(cell, cache_t, gate="i"):
    """ī_t, the argument of the gate's sigmoid, recomputed from the parameters. (B, H).

    WMC: W_ix x_t + W_ih h_{t-1} + tanh(W_ic c_{t-1}) + b_i (eq. 10); peephole: the same with
    W_ic c_{t-1} unsquashed (eq. 20); LSTM: no cell term (eq. 2). Gate o reads c_t.
    ``cache_t`` is one step cache (``npcell.forward(cell, x, fused=False)[2].steps[t]``).
    """
    connection = _paper_cell(cell, gate)
    p, k = cell.params, cache_t
    a = k["x"] @ p[f"W_{gate}x"].T + k["h_prev"] @ p[f"W_{gate}h"].T + p[f"b_{gate}"]
    if connection is None:
        return a  # eq. (2) / (3) / (5): the LSTM gates do not read c
    squash = connection.squash
    z = _connection_argument(cell, cache_t, gate)
    xp = array_module(z)
    return a + (xp.tanh(z) if squash else z)  # eq. (10) (WMC) / eq. (20) (peephole)


def gate_derivative(cell, cache_t, gate="i"):
    """∂i_t/∂ī_t = diag[σ(ī_t) ⊙ (1 - σ(ī_t))], returned as its diagonal (B, H). Eq. (11)/(19)."""
    s = sigmoid(gate_preactivation(cell, cache_t, gate))
    return s * (1.0 - s)  # eq. (11) / (19)


def delta_hat(cell, cache_t, gate="i"):
    """δ̂i_t of eq. (15): ∂i/∂ī ⊙ (1 - tanh²(W_ic c_{t-1})), (B, H).

    For the peephole there is no tanh, so the factor is 1 and δ̂ = ∂i/∂ī (eq. 21). The LSTM
    has no cell connection and raises ConfigError.
    """
    connection = _paper_cell(cell, gate)
    if connection is None:
        raise ConfigError("delta_hat needs a cell connection (peephole or wmc); lstm has none")
    d = gate_derivative(cell, cache_t, gate)
    if not connection.squash:
        return d  # eq. (21): the peephole term enters the sigmoid unprotected
    z = _connection_argument(cell, cache_t, gate)
    return d * dtanh(array_module(z).tanh(z))  # eq. (15)


def weight_local_gradients(cell, cache_t, gate="i") -> dict:
    """The outer products of eq. (12)-(14) (WMC) / (21) (peephole), one per sequence.

    Returns parameter name -> array with entry [b, j, k] = ∂(gate)_{t,j} / ∂W_{jk} for sequence
    b (gate unit j depends on row j of W only, so this is the whole Jacobian):

    * ``W_kx``: (B, H, X) = ∂i/∂ī ⊗ x_t (eq. 12)
    * ``W_kh``: (B, H, H) = ∂i/∂ī ⊗ h_{t-1} (eq. 13)
    * ``b_k``: (B, H) = ∂i/∂ī
    * ``W_kc``: (B, H, H) = δ̂i_t ⊗ c_{t-1} (eq. 14 / 21; c_t for gate o), or (B, H) = δ̂ ⊙ c
      for a diagonal peephole; ``b_kc`` (B, H) = δ̂ when the cell has cell biases.

    Weighted by dL/d(gate)_t and summed over the batch, each equals step t's contribution to
    that gradient in BPTT (tests/test_diagnostics.py checks it).
    """
    connection = _paper_cell(cell, gate)
    d = gate_derivative(cell, cache_t, gate)
    out = {
        f"W_{gate}x": d[:, :, None] * cache_t["x"][:, None, :],  # eq. (12)
        f"W_{gate}h": d[:, :, None] * cache_t["h_prev"][:, None, :],  # eq. (13)
        f"b_{gate}": d,
    }
    if connection is not None:
        diagonal, cell_bias = connection.diagonal, connection.bias
        dhat = delta_hat(cell, cache_t, gate)
        c_read = _cell_read(cell, cache_t, gate)
        if diagonal:
            out[f"W_{gate}c"] = dhat * c_read  # eq. (21), diagonal: one weight per unit
        else:
            out[f"W_{gate}c"] = dhat[:, :, None] * c_read[:, None, :]  # eq. (14) / (21)
        if cell_bias:
            out[f"b_{gate}c"] = dhat
    return out


def local_term_norm(cell, cache_t, gate="i"):
    """Root-mean-square over the batch of ‖∂k_t/∂W_kc‖ for one sequence (a 0-d array).

    The norm of the outer product of :func:`weight_local_gradients` without forming it: for a
    full W_kc, ‖δ̂ ⊗ c‖_F = ‖δ̂‖ ‖c‖ per sequence (eq. 14 / 21); for a diagonal one, ‖δ̂ ⊙ c‖.
    """
    dhat = delta_hat(cell, cache_t, gate)
    c_read = _cell_read(cell, cache_t, gate)
    xp = array_module(dhat)
    if cell.params[f"W_{gate}c"].ndim == 1:  # a diagonal read: one weight per unit
        per_seq = ((dhat * c_read) ** 2).sum(axis=1)
    else:
        per_seq = (dhat * dhat).sum(axis=1) * (c_read * c_read).sum(axis=1)
    return xp.sqrt(per_seq.mean())


__all__ = [
    "Comparison",
    "Diagnosis",
    "compare",
    "delta_hat",
    "diagnose",
    "fit_loglog",
    "local_term_norm",
    "LogLogFit",
    "Regime",
    "REGIMES",
    "regime_cells",
    "run_regime",
    "takeaway",
    "gate_derivative",
    "gate_preactivation",
    "weight_local_gradients",
]

