"""Matplotlib views of training runs, and the diagnosis figures re-exported.

The diagnosis panels and figures (cell_norm, grad_flow, saturation_summary, saturation,
weight_grad_vs_cell_norm, comparison_figure, diagnosis_figure, ...) live in
:mod:`npcell.diagnostics.figures` (what ``diag.plot()`` draws) and are importable from here as
before. This module adds :func:`save_figure` and the learning curves of run directories
(:func:`learning_curves`, the ``npcell plot-run`` command). It imports
:mod:`npcell.diagnostics`; diagnostics never imports it. Nothing here calls ``plt.show()``.
"""

from __future__ import annotations

import json
import math
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
def read_run(run_dir) -> tuple[dict, list[dict]]:
    """(config, rows) of one run directory: ``config.json`` (optional) and ``metrics.jsonl``
    (one JSON object per line with keys step, epoch, split, loss and optionally metric)."""
    path = os.path.join(str(run_dir), "metrics.jsonl")
    if not os.path.isfile(path):
        raise ConfigError(f"{run_dir} is not a run directory: {path} does not exist")
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ConfigError(f"{path}, line {lineno}: not JSON ({err.msg})") from None
            missing = [k for k in ("step", "split", "loss") if k not in row]
            if missing:
                raise ConfigError(f"{path}, line {lineno}: missing key(s) {missing}")
            rows.append(row)
    config = {}
    config_path = os.path.join(str(run_dir), "config.json")
    if os.path.isfile(config_path):
        with open(config_path, encoding="utf-8") as fh:
            config = json.load(fh)
    return config, rows


def expand_run_dirs(paths) -> list[str]:
    """Run directories named directly, or the run subdirectories of a parent directory."""
    out = []
    for path in paths:
        path = str(path)
        if os.path.isfile(os.path.join(path, "metrics.jsonl")):
            out.append(path)
            continue
        subs = sorted(os.path.join(path, s) for s in os.listdir(path)) if os.path.isdir(
            path) else []
        runs = [s for s in subs if os.path.isfile(os.path.join(s, "metrics.jsonl"))]
        if not runs:
            raise ConfigError(f"{path} holds no metrics.jsonl and no run subdirectories")
        out.extend(runs)
    return out


def flatten_config(config, prefix="") -> dict:
    """Nested config dicts as dotted leaves: {'task_options': {'T': 50}} -> {'task_options.T': 50}.

    Lists become tuples so that every leaf can be compared and hashed."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_config(value, prefix=f"{name}."))
        else:
            out[name] = tuple(value) if isinstance(value, list) else value
    return out


def _short(value, width=16) -> str:
    text = str(value)
    return text if len(text) <= width else text[:width - 1] + "…"


def group_runs(run_dirs) -> dict:
    """Group runs whose config.json is equal apart from 'seed': label -> list of (config, rows).

    Only runs with *different* seeds are pooled (as seeds of one setting); a run whose seed
    another run of its setting already has is its own curve, named by its directory. Labels
    list only the (flattened) config entries that differ between the groups, e.g.
    'cell=wmc, lr=0.01'; with no config to tell runs apart, the directory name.
    """
    runs = [(d, *read_run(d)) for d in expand_run_dirs(run_dirs)]
    groups: dict[str, list] = {}  # key -> [(run_dir, config, rows)]
    bases: dict[str, dict] = {}
    for run_dir, config, rows in runs:
        base = {k: v for k, v in flatten_config(config).items() if k != "seed"}
        key = json.dumps(base, sort_keys=True, default=str) if config else run_dir
        members = groups.setdefault(key, [])
        if config and any(c.get("seed") == config.get("seed") for _, c, _ in members):
            key = f"{key}#{run_dir}"  # the same seed again: a repeat, not another seed
            members = groups.setdefault(key, [])
        members.append((run_dir, config, rows))
        bases[key] = base
    varying = sorted({k for base in bases.values() for k in base
                      if any(other.get(k) != base[k] for other in bases.values())})
    labels = {}
    for key, members in groups.items():
        base = bases[key]
        parts = [f"{k}={_short(base[k])}" for k in varying if k in base]
        label = ", ".join(parts)
        if "#" in key or not label:
            name = os.path.basename(os.path.normpath(members[0][0]))
            label = f"{label} [{name}]" if label else name
        labels[label] = [(config, rows) for _, config, rows in members]
    return labels


def mean_and_stderr(curves: list[dict]):
    """Curves as {x: value} per seed -> (x, mean, standard error) over the x all seeds share."""
    shared = sorted(set.intersection(*(set(c) for c in curves)))
    values = numpy.array([[c[x] for x in shared] for c in curves], dtype=float)  # (seeds, n)
    mean = values.mean(axis=0)
    if len(curves) > 1:
        stderr = values.std(axis=0, ddof=1) / math.sqrt(len(curves))
    else:
        stderr = numpy.zeros_like(mean)
    return numpy.array(shared, dtype=float), mean, stderr


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
            xs, mean, stderr = mean_and_stderr(curves)
            seeds = f", {len(curves)} seeds" if len(curves) > 1 else ""
            ax.plot(xs, mean, color=colors[n], linestyle=split_styles.get(split, "-."),
                    label=f"{label} ({split}{seeds})")
            if len(curves) > 1:
                ax.fill_between(xs, mean - stderr, mean + stderr, color=colors[n], alpha=0.2)
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
    "weight_grad_vs_cell_norm",
]
