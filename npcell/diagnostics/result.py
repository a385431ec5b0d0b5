"""What :func:`~npcell.diagnostics.diagnose` returns: :class:`Diagnosis` (one cell, one
sequence) and :class:`Comparison` (several cells on the same sequence), with their views,
file round trip and ``.plot()`` (the figures of :mod:`npcell.diagnostics.figures`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy

from ..errors import ConfigError
from . import figures
from .fits import fit_loglog
from .takeaway import takeaway

FORMAT_VERSION = 1


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

    def plot(self, **kwargs):
        """The standard figure of this diagnosis (a matplotlib Figure; see
        :func:`npcell.diagnostics.figures.diagnosis_figure` for the keyword arguments)."""
        return figures.diagnosis_figure(self, **kwargs)

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


def _ratio(a, b) -> str:
    return f"{a / b:.3g}" if b != 0 else "inf"


@dataclass
class Comparison:
    """Several diagnoses of the same sequence, with their side-by-side figure."""

    diagnoses: list
    regime: object = None  # the Regime (npcell.diagnostics.regimes) that set the cells up

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

    def plot(self, **kwargs):
        """The side-by-side figure (a matplotlib Figure; see
        :func:`npcell.diagnostics.figures.comparison_figure` for the keyword arguments)."""
        return figures.comparison_figure(self, **kwargs)


