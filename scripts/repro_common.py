"""Shared machinery of the reproduction scripts (scripts/repro_*.py).

* :func:`run_sweep` trains every (cell, seed) config through ``npcell.training.sweep`` (joblib
  worker processes, or a Dask cluster with ``--cluster ADDRESS``) and returns each run's metrics
  plus its steps/s.
* :func:`plot_curves` draws test metric against epoch, one line per cell, mean +- standard error
  over seeds as a shaded band (the WMC paper's Figure 3 style).
* :func:`record_result` writes one row of ``docs/results.md`` (replacing the row with the same
  experiment id), with the exact command, wall time, our number and the paper's.

These scripts are slow by design and are not part of ``make test``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shlex
import sys
import time
from pathlib import Path

from npcell.training.rundir import mean_and_stderr  # the one mean +- standard error

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results.md"
FIGURES = ROOT / "figures"

RESULTS_HEADER = """# Reproductions

Each row is written by a script in `scripts/` (`repro_*.py`) when it finishes; the command in the
row re-creates the row and the figure. "Wall" is the script's wall time on the machine named in
the row. Where a CPU cannot run the paper's setup the row says how it was scaled down; numbers
from scaled-down runs are *not* comparable one-to-one with the paper's, only the ordering and the
qualitative behaviour are.

| experiment | command | machine | wall | ours | paper | scale-down and notes |
|---|---|---|---|---|---|---|
"""


def run_sweep(configs, out_root, *, n_jobs=1, cluster=None):
    """Train ``configs`` into ``out_root/<cell>-s<seed>`` through npcell.training.sweep (joblib
    worker processes, or the Dask cluster at ``cluster``); one BLAS thread per run."""
    from npcell.training.sweep import run_sweep as sweep

    return sweep(configs, out_root, n_jobs=n_jobs, threads=1, cluster=cluster)


def run_sweep_named(configs, out_root, names, *, n_jobs=1, cluster=None):
    """:func:`run_sweep` with one run directory name per config (``out_root/<name>``)."""
    from npcell.training.sweep import run_sweep as sweep

    return sweep(configs, out_root, n_jobs=n_jobs, threads=1, cluster=cluster, names=names)


def eval_curves(runs, split="test", key="metric"):
    """{cell: (epochs, values (n_seeds, n_epochs))} from run_sweep results."""
    import numpy

    by_cell: dict = {}
    for run in runs:
        rows = [r for r in run["history"] if r["split"] == split]
        by_cell.setdefault(run["cell"], []).append(([r["epoch"] for r in rows],
                                                    [r[key] for r in rows]))
    out = {}
    for cell, curves in by_cell.items():
        n = min(len(e) for e, _ in curves)
        out[cell] = (curves[0][0][:n], numpy.array([v[:n] for _, v in curves]))
    return out


def plot_curves(curves, *, title, ylabel, path, baseline=None, baseline_label="baseline",
                xlabel="epoch", command="", logy=False):
    """One line per cell (mean over seeds) with a +-1 standard-error band, drawn by npcell's one
    multi-seed plotter (npcell.plots.seed_curves); saved to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from npcell.plots import seed_curves

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    seed_curves({f"{cell} (n={values.shape[0]})": (epochs, values)
                 for cell, (epochs, values) in curves.items()}, ax, band_alpha=0.25)
    if baseline is not None:
        ax.axhline(baseline, color="grey", ls="--", lw=1, label=baseline_label)
    if logy:  # MSE spans orders of magnitude: the untrained model, the plateau, the solution
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    if command:
        fig.text(0.01, 0.005, f"made by: {command}", fontsize=6, color="grey")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path


def command_line() -> str:
    """The command that is running, as a user would type it from the repository root."""
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(ROOT)
    except ValueError:
        pass
    return " ".join(["python", shlex.quote(str(script))] + [shlex.quote(a) for a in sys.argv[1:]])


def machine() -> str:
    return f"{os.cpu_count()}-core {platform.machine()} CPU"


def commit() -> str:
    """The short commit of the checkout that ran, with ``+dirty`` when npcell/ has edits."""
    import subprocess

    try:
        run = dict(capture_output=True, text=True, cwd=ROOT, check=True)
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], **run).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "npcell"], **run).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


RUN_TABLE_HEADER = "| experiment | command | machine | wall | ours | paper | scale-down and notes |"


def record_result(experiment, *, command, wall_s, ours, paper, notes):
    """Write (or replace) the row of ``experiment`` in the run table of docs/results.md (the
    table headed by RUN_TABLE_HEADER; tables before and after it stay as they are)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    text = RESULTS.read_text() if RESULTS.exists() else RESULTS_HEADER
    if not text.startswith("# Reproductions"):
        text = RESULTS_HEADER
    row = (f"| {experiment} | `{command}` | {machine()}, commit {commit()}, float32 unless "
           f"noted, 1 BLAS thread | {wall_s / 60:.1f} min | {ours} | {paper} | {notes} |")
    lines = [line for line in text.rstrip("\n").split("\n")
             if not line.startswith(f"| {experiment} |")]
    if RUN_TABLE_HEADER not in lines:
        lines += ["", *RESULTS_HEADER.split("\n")[-3:-1]]
    last_row = lines.index(RUN_TABLE_HEADER)
    while last_row + 1 < len(lines) and lines[last_row + 1].startswith("|"):
        last_row += 1
    lines.insert(last_row + 1, row)  # keep the table whole; prose below it stays below
    RESULTS.write_text("\n".join(lines) + "\n")


def all_finished_before(runs) -> bool:
    """True when the sweep trained nothing (every run was finished): a redraw, not a result."""
    return all(run.get("already_finished") for run in runs)


def record_figure(figure, command):
    """Name ``figure`` and the command that made it in figures/README.md (replacing its row)."""
    readme = FIGURES / "README.md"
    name = Path(figure).name
    lines = readme.read_text().rstrip("\n").split("\n")
    lines = [line for line in lines if not line.startswith(f"| `{name}` |")]
    last_row = max(i for i, line in enumerate(lines) if line.startswith("|"))
    lines.insert(last_row + 1, f"| `{name}` | `{command}` (docs/results.md) |")
    readme.write_text("\n".join(lines) + "\n")


def write_summary(path, payload):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n")


def first_epoch_below(epochs, values, threshold):
    """The first epoch whose value is below ``threshold`` (None if never)."""
    for e, v in zip(epochs, values):
        if v < threshold:
            return e
    return None


def first_epoch_above(epochs, values, threshold):
    for e, v in zip(epochs, values):
        if v > threshold:
            return e
    return None


def common_arguments(parser, *, cells, epochs, steps_per_epoch, hidden):
    """The flags every comparison script shares (defaults = the CPU-sized run)."""
    parser.add_argument("--cells", nargs="+", default=list(cells))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--hidden", type=int, default=hidden)
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--steps-per-epoch", type=int, default=steps_per_epoch,
                        help="cap on optimiser steps per epoch (0: the whole training set)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--jobs", type=int, default=1, help="joblib worker processes")
    parser.add_argument("--cluster", metavar="ADDRESS",
                        help="run the sweep on the dask.distributed scheduler at ADDRESS")
    parser.add_argument("--optimizer", choices=["sgd", "adam"], default=None,
                        help="override the paper's optimiser (a CPU-sized scale-down)")
    parser.add_argument("--lr", type=float, default=None, help="override the learning rate")
    return parser


def no_separation(finals, stderrs=(), tolerance=1e-3):
    """'no separation (final values within X)' when the cells' final values are closer together
    than the seeds' largest standard error or than ``tolerance``; else None (an order means
    something). X is the spread rounded up to 4 decimals."""
    finals = [float(v) for v in finals]
    spread = max(finals) - min(finals)
    if spread > max([tolerance, *map(float, stderrs)]):
        return None
    shown = max(math.ceil(spread * 1e4 - 1e-9), 1) / 1e4
    return f"no separation (final values within {shown:.4f})"


def compare_cells(args, *, experiment, base_config, metric_label, paper, higher_is_better,
                  baseline=None, baseline_label="baseline", split="test", notes=""):
    """Train ``args.cells`` x ``args.seeds`` from ``base_config`` (a TrainConfig dict without
    cell/seed), plot ``split``'s metric per epoch and record the row. Returns the summary."""
    from npcell.training import TrainConfig

    t0 = time.perf_counter()
    overrides = {k: v for k in ("optimizer", "lr") if (v := getattr(args, k, None)) is not None}
    if overrides:  # say so in the experiment's name, figure and results row
        base_config = dict(base_config, **overrides)
        experiment += " (" + ", ".join(f"{k} {v}" for k, v in overrides.items()) + ")"
    configs = []
    for seed in args.seeds:
        for cell in args.cells:
            values = dict(base_config, cell=cell, seed=seed, hidden=args.hidden,
                          epochs=args.epochs, dtype=args.dtype,
                          steps_per_epoch=args.steps_per_epoch or None)
            configs.append(TrainConfig(**values))
    slug = re.sub(r"[^a-z0-9]+", "_", experiment.lower()).strip("_")  # "copy T=100" -> copy_t_100
    runs = run_sweep(configs, Path(args.out) / slug, n_jobs=args.jobs, cluster=args.cluster)
    wall = time.perf_counter() - t0
    curves = eval_curves(runs, split=split)
    command = command_line()
    figure = FIGURES / f"{slug}.png"
    plot_curves(curves, title=f"{experiment}: {split} {metric_label} ({len(args.seeds)} seed(s))",
                ylabel=f"{split} {metric_label}", path=figure, baseline=baseline,
                baseline_label=baseline_label, command=command)
    record_figure(figure, command)
    summary, ours = {}, []
    for cell, (_, values) in curves.items():
        mean, se = mean_and_stderr(values)
        best = float(mean.max() if higher_is_better else mean.min())
        sps = [r["steps_per_s"] for r in runs if r["cell"] == cell]
        summary[cell] = {"final": float(mean[-1]), "final_se": float(se[-1]), "best": best,
                         "per_seed_final": values[:, -1].tolist(),
                         "steps_per_s": sum(sps) / len(sps)}
        ours.append(f"{cell}: {mean[-1]:.4f} ({summary[cell]['steps_per_s']:.2f} steps/s)")
    order = sorted(summary, key=lambda c: summary[c]["final"], reverse=higher_is_better)
    verdict = "final " + metric_label + " order (best first): " + " > ".join(order)
    first, second = summary[order[0]], summary[order[1]] if len(order) > 1 else None
    tie = no_separation([s["final"] for s in summary.values()],
                        [s["final_se"] for s in summary.values()])
    if tie is not None and len(order) > 1:
        verdict = f"final {metric_label}: {tie}"
    elif second is not None and abs(first["final"] - second["final"]) <= max(
            first["final_se"], second["final_se"], 1e-12):
        verdict += " (the top two are within one standard error: no separation)"
    write_summary(Path(args.out) / slug / "summary.json",
                  {"command": command, "wall_s": wall, "cells": summary, "verdict": verdict})
    scale = (f"H={args.hidden}, {args.epochs} epochs"
             + (f" x {args.steps_per_epoch} steps" if args.steps_per_epoch else "")
             + f", seeds {args.seeds}, {args.dtype}, joblib n_jobs={args.jobs}")
    if all_finished_before(runs):
        print(f"every run was already finished: figure redrawn, the row of {experiment!r} in "
              f"{RESULTS} kept (its wall time is the training's)")
    else:
        record_result(experiment, command=command, wall_s=wall, ours="; ".join(ours),
                      paper=paper,
                      notes=f"{scale}; {notes} {verdict}; figure {figure.relative_to(ROOT)}")
    print(verdict)
    for cell, s in summary.items():
        print(cell, s)
    print(f"wall {wall / 60:.1f} min; figure {figure}")
    return summary
