"""Matplotlib views of training runs, and the diagnosis figures re-exported.

The diagnosis panels and figures (cell_norm, grad_flow, saturation_summary, saturation,
weight_grad_vs_cell_norm, comparison_figure, diagnosis_figure, ...) live in
:mod:`npcell.diagnostics.figures` (what ``diag.plot()`` draws) and are importable from here as
before. This module adds :func:`save_figure` and the learning curves of run directories
(:func:`learning_curves`, the ``npcell plot-run`` command). It imports
:mod:`npcell.diagnostics`; diagnostics never imports it. Nothing here calls ``plt.show()``.
"""

from __future__ import annotations

import os

import numpy

from .diagnostics.figures import (  # noqa: F401 - re-exported: npcell.plots.X as before
    GATE_STYLES,
    INFORMATIVE_MAP,
    KIND_COLORS,
    OTHER_COLORS,
    STYLE,
    _axes,
    _styled,
    cell_norm,
    comparison_figure,
    diagnosis_figure,
    fit_label,
    grad_flow,
    growth_notes,
    informative_gates,
    log_safe,
    saturation,
    saturation_summary,
    weight_grad_vs_cell_norm,
)
from .errors import ConfigError
from .training import rundir


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
