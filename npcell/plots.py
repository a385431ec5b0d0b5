"""Matplotlib views of a :class:`~npcell.diagnostics.Diagnosis` and of training runs.

Every panel is a function ``name(diag_or_diags, ax=None, ...) -> Axes``: it draws on ``ax`` (or on
a new ``plt.subplots()`` figure), labels its axes, adds a legend and a short title, and returns
the Axes. Nothing here calls ``plt.show()``; close figures you are done with. This module reads
:mod:`npcell.diagnostics`; diagnostics never imports it.

Panels:

* :func:`cell_norm` -- ‖c_t‖ over t on a log axis (mean over the batch solid, max dashed).
* :func:`grad_flow` -- ‖dL/dh_t‖ (and ‖dL/dc_t‖) over t on a log axis.
* :func:`saturation_summary` -- % of units saturated over t, one line per (cell, gate) that is
  ever saturated; the gates that never are are named in the legend title.
* :func:`saturation` -- one gate's saturation map: time by unit, colour bar = fraction of batch.
* :func:`weight_grad_vs_cell_norm` -- log-log per-step ‖dL/dW_kc‖ (or the eq. 14 / 21 term
  alone) against the ‖c‖ it read, for one gate, with the fitted slope in the legend.
* :func:`learning_curves` -- loss / metric against step for run directories, mean ± standard
  error over seeds (the ``npcell plot-run`` command).

Figures: :func:`diagnosis_figure` (one cell) and :func:`comparison_figure` (several, e.g.
``npcell.compare`` or a named regime); :func:`save_figure` writes one. The style
``npcell.styles.npcell`` is applied inside each call only.
"""

from __future__ import annotations

import functools
import os

import numpy

from .diagnostics import (
    MIN_FIT_DECADES,
    PAPER_GATES,
    Comparison,
    Diagnosis,
    fit_loglog,
    takeaway,
)
from .errors import ConfigError
from .training import rundir

STYLE = "npcell.styles.npcell"
GATE_STYLES = {"i": "-", "f": "--", "o": ":", "g": "-."}
# The paper's three cells keep one colour in every figure; other kinds take the next free one.
KIND_COLORS = {"lstm": "#1f77b4", "peephole": "#d62728", "wmc": "#2ca02c"}
OTHER_COLORS = ("#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf", "#bcbd22")
INFORMATIVE_MAP = 0.02  # a saturation map whose entries vary less than this is not drawn


def _colors(diags) -> list[str]:
    """One colour per diagnosis: fixed for lstm / peephole / wmc (the first diagnosis of each
    kind), the others from OTHER_COLORS in order. Explicit hex, so saving the figure outside the
    style context keeps them."""
    used, out, spare = set(), [], iter(OTHER_COLORS * 4)
    for d in diags:
        color = KIND_COLORS.get(d.kind)
        if color is None or color in used:
            color = next(c for c in spare if c not in used)
        used.add(color)
        out.append(color)
    return out


def _styled(func):
    """Run a plotting function inside the npcell style context (never globally)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        import matplotlib.pyplot as plt

        with plt.style.context(STYLE):
            return func(*args, **kwargs)

    return wrapper


def _axes(ax):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    return ax


def _as_list(diags):
    if isinstance(diags, Diagnosis):
        return [diags]
    diags = list(diags)
    if not diags or not all(isinstance(d, Diagnosis) for d in diags):
        raise ConfigError("expected a Diagnosis or a non-empty list of Diagnosis objects")
    return diags


def log_safe(values):
    """A float copy of ``values`` with every entry <= 0 set to NaN, for a log axis."""
    values = numpy.asarray(values, dtype=float).copy()
    values[values <= 0] = numpy.nan  # a log axis cannot show 0; leave a gap instead
    return values


def save_figure(fig, out_path, *, dpi=110) -> str:
    """Write ``fig`` to ``out_path`` (folders made as needed) and close it; returns the path.

    PNGs are written without matplotlib's 'Software' tag, so a regenerated figure differs from
    the committed one only when its pixels do.
    """
    import matplotlib.pyplot as plt

    out_path = str(out_path)
    directory = os.path.dirname(out_path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    fig.savefig(out_path, dpi=dpi,
                metadata={"Software": None} if out_path.endswith(".png") else None)
    plt.close(fig)
    return out_path


# ============================================================================================
# Panels
# ============================================================================================
@_styled
def cell_norm(diags, ax=None, *, show_max=True, log=True):
    """‖c_t‖ over t: mean over the batch (solid) and max (dashed) for each diagnosis.

    Cells without a c show ‖h_t‖ instead (the legend says which). ``log``: log y axis.
    """
    diags = _as_list(diags)
    ax = _axes(ax)
    colors = _colors(diags)
    for n, d in enumerate(diags):
        mem = d.memory_state
        t = numpy.arange(d.T)
        ax.plot(t, d.cell_norm_mean, color=colors[n], label=f"{d.label}: mean ‖{mem}_t‖")
        if show_max:
            ax.plot(t, d.cell_norm_max, color=colors[n], linestyle="--", linewidth=0.9,
                    label=f"{d.label}: max ‖{mem}_t‖")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("time step t")
    mems = sorted({d.memory_state for d in diags})
    ax.set_ylabel(" / ".join(f"‖{m}_t‖" for m in mems) + " (L2 over units)")
    ax.set_title("cell-state norm")
    ax.legend(loc="best")
    return ax


@_styled
def grad_flow(diags, ax=None, *, states=("h", "c"), dx=False):
    """‖dL/dh_t‖ (solid) and ‖dL/dc_t‖ (dashed) over t on a log axis; ``dx=True`` adds
    ‖dL/dx_t‖ (dotted). Zeros (e.g. dL/dc at the last step) are left out of the log plot."""
    diags = _as_list(diags)
    ax = _axes(ax)
    styles = {"h": "-", "c": "--", "A": "-."}
    colors = _colors(diags)
    for n, d in enumerate(diags):
        t = numpy.arange(d.T)
        for name in states:
            if name not in d.dstate_norm:
                continue
            ax.plot(t, log_safe(d.dstate_norm[name]), color=colors[n],
                    linestyle=styles.get(name, ":"), label=f"{d.label}: ‖dL/d{name}_t‖")
        if dx:
            ax.plot(t, log_safe(d.dx_norm), color=colors[n], linestyle=":",
                    label=f"{d.label}: ‖dL/dx_t‖")
    ax.set_yscale("log")
    ax.set_xlabel("time step t")
    ax.set_ylabel("gradient norm")
    ax.set_title("gradient flow back in time")
    ax.legend(loc="best")
    return ax


@_styled
def saturation_summary(diags, ax=None):
    """% of (unit, sequence) pairs saturated at each step, one line per cell and gate.

    Colour = cell, line style = gate (i solid, f dashed, o dotted, g dash-dot). A gate that is
    never saturated draws no line; the legend title lists those.
    """
    diags = _as_list(diags)
    ax = _axes(ax)
    colors = _colors(diags)
    never = {}
    for n, d in enumerate(diags):
        for gate, sat in d.saturation.items():
            percent = 100.0 * sat.mean(axis=1)  # (T,): over units (and the batch, inside)
            if not percent.any():
                never.setdefault(d.label, []).append(gate)
                continue
            ax.plot(numpy.arange(d.T), percent, color=colors[n],
                    linestyle=GATE_STYLES.get(gate, "-"), label=f"{d.label}: {gate}")
    ax.set_ylim(-3, 103)
    ax.set_xlabel("time step t")
    ax.set_ylabel("% saturated")
    ax.set_title(f"saturated gate units (tau={diags[0].threshold:g})")
    if not ax.get_lines():
        # nothing to plot: say so in the panel's place instead of drawing empty axes
        ax.set_axis_off()
        ax.text(0.5, 0.5, f"no gate unit is ever saturated\n(tau={diags[0].threshold:g}: "
                "within tau of 0 or 1)", transform=ax.transAxes, ha="center", va="center")
        return ax
    ax.legend(loc="upper left", fontsize=7)
    if never:
        ax.text(0.98, 0.5, "never saturated:\n" + "\n".join(
            f"{label}: {', '.join(gates)}" for label, gates in never.items()),
            transform=ax.transAxes, ha="right", va="center", fontsize=7)
    return ax


@_styled
def saturation(diag, gate=None, ax=None, *, colorbar=True):
    """Heat map of one gate's saturation: time step (x) by unit (y), colour = fraction of the
    batch within tau of an asymptote. ``gate`` defaults to the input gate when there is one."""
    diag = _as_list(diag)[0]
    if not diag.saturation:
        raise ConfigError(f"the {diag.kind} diagnosis has no gate saturation maps")
    if gate is None:
        gate = "i" if "i" in diag.saturation else next(iter(diag.saturation))
    if gate not in diag.saturation:
        raise ConfigError(
            f"the {diag.kind} cell has no gate {gate!r}; its gates are {list(diag.saturation)}"
        )
    ax = _axes(ax)
    sat = diag.saturation[gate]  # (T, H)
    image = ax.imshow(sat.T, aspect="auto", origin="lower", vmin=0.0, vmax=1.0,
                      interpolation="nearest", extent=(-0.5, sat.shape[0] - 0.5,
                                                       -0.5, sat.shape[1] - 0.5))
    if colorbar:
        bar = ax.figure.colorbar(image, ax=ax)
        bar.set_label("fraction of batch saturated")
    ax.grid(False)  # grid lines would hide cells of the map
    act = diag.gate_activation.get(gate, "?")
    ax.set_xlabel("time step t")
    ax.set_ylabel("unit")
    ax.set_title(f"{diag.label}: {gate} ({act}), {100 * sat.mean():.0f}% saturated")
    return ax


def informative_gates(diag) -> list[str]:
    """The gates whose saturation map is worth drawing: its entries are not all (nearly) one
    value, so the map shows where and when units saturate rather than a solid block."""
    return [g for g, sat in diag.saturation.items() if numpy.ptp(sat) > INFORMATIVE_MAP]


def fit_label(x, y) -> str:
    """'slope 0.97 (R² 1.00)' for a log-log fit, or why there is none."""
    try:
        fit = fit_loglog(x, y)
    except ConfigError:
        return "no fit"
    if fit.span < MIN_FIT_DECADES:
        return f"‖c‖ spans {fit.span:.1f} decades: no slope"
    return f"slope {fit.slope:.2f} (R² {fit.r2:.2f})"


@_styled
def weight_grad_vs_cell_norm(diags, ax=None, *, gate="i", what="full"):
    """Log-log: per-step ‖dL/dW_kc‖ (``what='full'``) or the eq. 14 / 21 term alone
    (``what='term'``, :attr:`Diagnosis.term_norm`) against the ‖c‖ that W_kc read, gate k.

    Gates i and f read c_{t-1}, gate o reads c_t. One colour per diagnosis; the legend gives
    each fitted slope. eq. (21) predicts slope 1 for the peephole's term; eq. (14)-(15) predict
    WMC's falls away once tanh(W_kc c) saturates. Cells without the weight draw nothing.
    """
    if what not in ("full", "term"):
        raise ConfigError(f"what must be 'full' or 'term'; got {what!r}")
    if gate not in PAPER_GATES:
        raise ConfigError(f"gate must be one of {PAPER_GATES}; got {gate!r}")
    diags = _as_list(diags)
    ax = _axes(ax)
    colors = _colors(diags)
    name = f"W_{gate}c"
    for n, d in enumerate(diags):
        table = d.grad_step_norm if what == "full" else d.term_norm
        if name not in table or not d.has_cell:
            continue
        x, y = d.cell_read_norm(name), table[name]
        ax.plot(x, log_safe(y), ".", ms=3, color=colors[n], alpha=0.7,
                label=f"{d.label}: {fit_label(x, y)}")
    read = "‖c_t‖" if gate == "o" else "‖c_t-1‖"
    if ax.get_lines():
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(loc="best", fontsize=7)
    else:
        ax.text(0.5, 0.5, f"no {name} (lstm-like cells)", transform=ax.transAxes,
                ha="center", va="center")
    ax.set_xlabel(f"{read} (batch mean)")
    if what == "full":
        ax.set_ylabel(f"‖dL/d{name}‖ at step t")
        ax.set_title(f"per-step ‖dL/d{name}‖")
    else:
        ax.set_ylabel(f"‖∂{gate}_t/∂{name}‖ (rms)")
        ax.set_title(f"eq. 14/21 term, gate {gate}")
    return ax


# ============================================================================================
# Figures
# ============================================================================================
def growth_notes(diags) -> list[str]:
    """When WMC's per-step f- or o-read gradient grows with ‖c‖, one sentence saying why."""
    notes = []
    for d in diags:
        if d.kind != "wmc":
            continue
        fits = d.loglog_slopes()
        for name, why in (
            ("W_fc", "dL/df_t = dL/dc_t ⊙ c_t-1 (eq. 4) brings a second factor of c"),
            ("W_oc", "dL/do_t = dL/dh_t ⊙ tanh(c_t) stays bounded, so its growth is "
                     "dL/dh_t's"),
        ):
            fit = fits.get(name, {}).get("full")
            if (fit is not None and fit.span >= MIN_FIT_DECADES and fit.slope > 0.5
                    and fit.r2 >= 0.5):
                notes.append(f"{d.label}: ‖dL/d{name}‖ ~ ‖c‖^{fit.slope:.1f} although its "
                             f"term is bounded per unit: {why}; units whose {name} row is "
                             "nearly orthogonal to c keep tanh linear")
    return notes


def _connection_rows(diags):
    return any(d.term_norm for d in diags)


@_styled
def comparison_figure(diags, *, caption=None, figsize=None):
    """Several diagnoses side by side. Top row: ‖c_t‖, ‖dL/dh_t‖, saturation summary. When
    some cell reads c: the eq. 14 / 21 term per gate (row 2) and the full per-step ‖dL/dW_kc‖
    per gate (row 3), log-log with fitted slopes. ``caption``: a line under the title (a
    regime's claim); the takeaway line is computed from the data. Returns the Figure."""
    import matplotlib.pyplot as plt

    regime = diags.regime if isinstance(diags, Comparison) else None
    diags = _as_list(diags)
    rows = 3 if _connection_rows(diags) else 1
    fig, axes = plt.subplots(rows, 3, figsize=figsize or (13.5, 3.6 * rows + 1.0),
                             layout="constrained", squeeze=False)
    cell_norm(diags, ax=axes[0, 0])
    grad_flow(diags, ax=axes[0, 1], states=("h",))
    saturation_summary(diags, ax=axes[0, 2])
    if rows == 3:
        for col, gate in enumerate(PAPER_GATES):
            weight_grad_vs_cell_norm(diags, ax=axes[1, col], gate=gate, what="term")
            weight_grad_vs_cell_norm(diags, ax=axes[2, col], gate=gate, what="full")
    caption = caption or (f"regime {regime.name}: {regime.claim}" if regime else None)
    tasks = " / ".join(sorted({d.task for d in diags}))
    lines = [f"{', '.join(d.label for d in diags)} on {tasks}"]
    if caption:
        lines.append(caption)
    lines.append("data: " + takeaway(diags))
    fig.suptitle("\n".join(lines), fontsize=9)
    notes = growth_notes(diags)
    if notes:
        fig.supxlabel("\n".join(notes), fontsize=7)
    return fig


@_styled
def diagnosis_figure(diag, *, figsize=None):
    """One diagnosis: the comparison figure's rows for one cell, then the saturation maps of
    its informative gates only (see :func:`informative_gates`). Returns the Figure."""
    import matplotlib.pyplot as plt

    diag = _as_list(diag)[0]
    gates = informative_gates(diag)
    rows = (3 if diag.term_norm else 1) + (1 if gates else 0)
    ncols = max(3, len(gates))
    fig = plt.figure(figsize=figsize or (4.5 * ncols, 3.6 * rows + 1.0), layout="constrained")
    axes = fig.subplots(rows, ncols, squeeze=False)
    cell_norm(diag, ax=axes[0, 0])
    grad_flow(diag, ax=axes[0, 1])
    if diag.saturation:  # a cell without gates (fw_rnn) has nothing to summarise
        saturation_summary(diag, ax=axes[0, 2])
    row = 1
    if diag.term_norm:
        for col, gate in enumerate(PAPER_GATES):
            weight_grad_vs_cell_norm(diag, ax=axes[1, col], gate=gate, what="term")
            weight_grad_vs_cell_norm(diag, ax=axes[2, col], gate=gate, what="full")
        row = 3
    for col, gate in enumerate(gates):
        saturation(diag, gate, ax=axes[row, col])
    for ax in axes.ravel():
        if not ax.has_data() and not ax.texts:
            ax.remove()  # no empty panels (a panel that says "never saturated" stays)
    fig.suptitle(f"{diag.label} on {diag.task}\ndata: {takeaway([diag])}", fontsize=9)
    return fig


# ============================================================================================
# Learning curves of run directories (npcell plot-run)
# ============================================================================================
# Reading and grouping run directories is npcell.training.rundir's job; these names stay here
# for callers of npcell.plots.
read_run, expand_run_dirs, flatten_config, group_runs = (
    rundir.read_run, rundir.expand_run_dirs, rundir.flatten_config, rundir.group_runs)


def mean_and_stderr(curves: list[dict]):
    """Curves as {x: value} per seed -> (x, mean, standard error) over the x all seeds share."""
    xs, values = rundir.align_curves(curves)
    return (xs, *rundir.mean_and_stderr(values))


@_styled
def seed_curves(curves, ax=None, *, colors=None, linestyle="-", band_alpha=0.2):
    """The one multi-seed plotter: ``curves`` maps a label to (x (n,), values (n_seeds, n));
    each label is its mean over seeds with a +-1 standard-error band (shaded, with two or more
    seeds). Returns the Axes."""
    ax = _axes(ax)
    for n, (label, (xs, values)) in enumerate(curves.items()):
        values = numpy.atleast_2d(numpy.asarray(values, dtype=float))
        mean, stderr = rundir.mean_and_stderr(values)
        color = None if colors is None else colors[n % len(colors)]
        (line,) = ax.plot(xs, mean, color=color, linestyle=linestyle, label=label)
        if values.shape[0] > 1:
            ax.fill_between(xs, mean - stderr, mean + stderr, color=line.get_color(),
                            alpha=band_alpha)
    return ax


@_styled
def learning_curves(run_dirs, ax=None, *, key="loss", splits=None, x="step", log=False):
    """Loss (or ``key='metric'``) against ``x`` ('step' or 'epoch') for run directories.

    Runs of the same config and different seeds are one curve: mean ± standard error (shaded).
    One colour per group, one line style per split (train solid, val dashed, test dotted).
    """
    ax = _axes(ax)
    groups = group_runs(run_dirs)
    split_styles = {"train": "-", "val": "--", "valid": "--", "test": ":"}
    palette = tuple(KIND_COLORS.values()) + OTHER_COLORS
    colors = [palette[n % len(palette)] for n in range(len(groups))]
    drawn = 0
    for n, (label, runs) in enumerate(groups.items()):
        present = sorted({r["split"] for _, rows in runs for r in rows})
        for split in (splits or present):
            curves = []
            for _, rows in runs:
                curve = {r[x]: r[key] for r in rows
                         if r["split"] == split and r.get(key) is not None and x in r}
                if curve:
                    curves.append(curve)
            if not curves:
                continue
            seeds = f", {len(curves)} seeds" if len(curves) > 1 else ""
            seed_curves({f"{label} ({split}{seeds})": rundir.align_curves(curves)}, ax,
                        colors=[colors[n]], linestyle=split_styles.get(split, "-."))
            drawn += 1
    if not drawn:
        raise ConfigError(f"no rows with key {key!r} (splits {splits or 'any'}) in {run_dirs}")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(key + (" (mean ± s.e. over seeds)" if any(len(r) > 1 for r in
                                                            groups.values()) else ""))
    ax.set_title(f"learning curves: {key} over {x}")
    ax.legend(loc="best")
    return ax


__all__ = [
    "cell_norm",
    "comparison_figure",
    "diagnosis_figure",
    "grad_flow",
    "learning_curves",
    "saturation",
    "seed_curves",
    "weight_grad_vs_cell_norm",
]
