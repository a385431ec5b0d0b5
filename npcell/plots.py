"""Matplotlib views of a :class:`~npcell.diagnostics.Diagnosis` and of training runs.

Every panel is a function ``name(diag_or_diags, ax=None, ...) -> Axes``: it draws on ``ax`` (or on
a new ``plt.subplots()`` figure), labels its axes, adds a legend and a title naming the cell and
the task, and returns the Axes. Nothing here calls ``plt.show()``; close figures you are done with.

Panels:

* :func:`cell_norm` -- ‖c_t‖ over t (mean over the batch solid, max dashed), several diagnoses.
* :func:`saturation` -- one gate's saturation map: time by unit, colour bar = fraction of batch.
* :func:`weight_grad_vs_cell_norm` -- per-step ‖dL/dW_kc‖ against the ‖c‖ it read, one marker
  per connection block and one colour per cell: eq. (14) (WMC) against eq. (21) (peephole).
* :func:`grad_flow` -- ‖dL/dh_t‖ (and ‖dL/dc_t‖) over t on a log axis.
* :func:`learning_curves` -- loss / metric against step for run directories, mean ± standard
  error over seeds (the ``npcell plot-run`` command).

Figures: :func:`diagnosis_figure` (``Diagnosis.plot()``) and :func:`comparison_figure`
(``npcell.compare``). The style ``npcell.styles.npcell`` is applied inside each call only.
"""

from __future__ import annotations

import functools
import json
import math
import os

import numpy

from .errors import ConfigError

STYLE = "npcell.styles.npcell"
CONNECTION_MARKERS = {"W_ic": "o", "W_fc": "s", "W_oc": "^"}
# The paper's three cells keep one colour in every figure; other kinds take the next free one.
KIND_COLORS = {"lstm": "#1f77b4", "peephole": "#d62728", "wmc": "#2ca02c"}
OTHER_COLORS = ("#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf", "#bcbd22")


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
    from .diagnostics import Diagnosis

    if isinstance(diags, Diagnosis):
        return [diags]
    diags = list(diags)
    if not diags or not all(isinstance(d, Diagnosis) for d in diags):
        raise ConfigError("expected a Diagnosis or a non-empty list of Diagnosis objects")
    return diags


def _who(diags) -> str:
    """'wmc on adding T=400' or 'lstm, peephole, wmc on adding T=400' for titles."""
    tasks = sorted({d.task for d in diags})
    return f"{', '.join(d.label for d in diags)} on {' / '.join(tasks)}"


# ============================================================================================
# Panels
# ============================================================================================
@_styled
def cell_norm(diags, ax=None, *, show_max=True):
    """‖c_t‖ over t: mean over the batch (solid) and max (dashed) for each diagnosis.

    Cells without a c show ‖h_t‖ instead (the legend says which).
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
    ax.set_xlabel("time step t")
    ax.set_ylabel("‖c_t‖ (L2 over units, over the batch)")
    ax.set_title(f"cell-state norm: {_who(diags)}")
    ax.legend(loc="best")
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
    ax.set_title(f"{diag.label}: gate {gate} ({act}) saturation, tau={diag.threshold:g}, "
                 f"{100 * sat.mean():.0f}% overall\n{diag.task}")
    return ax


@_styled
def weight_grad_vs_cell_norm(diags, ax=None, *, params=None):
    """Per-step ‖dL/dW‖ of each cell-connection block against the ‖c‖ that block read.

    Gates i and f read c_{t-1}, gate o reads c_t. One colour per diagnosis, one marker per block.
    Peephole points lie on a line through the origin (eq. 21: the gradient is δ ⊗ c); WMC
    points level off once tanh(W_kc c) saturates (eq. 14-15). Cells without connection weights
    (lstm, gru, ...) contribute no points unless ``params`` names weights they have.
    """
    diags = _as_list(diags)
    ax = _axes(ax)
    colors = _colors(diags)
    plotted = 0
    for n, d in enumerate(diags):
        names = params if params is not None else d.connection_params()
        for name in names:
            if name not in d.grad_step_norm:
                continue
            mem = d.memory_state
            reads_now = name == "W_oc"
            x = d.state_norm(mem, "mean", prev=not reads_now)
            ax.scatter(x, d.grad_step_norm[name], s=10, color=colors[n], alpha=0.6,
                       marker=CONNECTION_MARKERS.get(name, "o"),
                       label=f"{d.label}: {name} vs " + (f"$\\|{mem}_t\\|$" if reads_now
                                                              else f"$\\|{mem}_{{t-1}}\\|$"))
            plotted += 1
    if not plotted:
        ax.text(0.5, 0.5, "no cell-connection weights\n(lstm-like cells)",
                transform=ax.transAxes, ha="center", va="center")
    else:
        ax.legend(loc="best")
    ax.set_xlabel("‖c‖ read at step t (mean over the batch)")
    ax.set_ylabel("‖dL/dW at step t‖ (Frobenius)")
    ax.set_title(f"eq. (14) vs eq. (21): per-step weight gradient\n{_who(diags)}")
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
            ax.plot(t, _positive(d.dstate_norm[name]), color=colors[n],
                    linestyle=styles.get(name, ":"), label=f"{d.label}: ‖dL/d{name}_t‖")
        if dx:
            ax.plot(t, _positive(d.dx_norm), color=colors[n], linestyle=":",
                    label=f"{d.label}: ‖dL/dx_t‖")
    ax.set_yscale("log")
    ax.set_xlabel("time step t")
    ax.set_ylabel("gradient norm (log scale)")
    ax.set_title(f"gradient flow back through time\n{_who(diags)}")
    ax.legend(loc="best")
    return ax


def _positive(values):
    values = numpy.asarray(values, dtype=float).copy()
    values[values <= 0] = numpy.nan  # a log axis cannot show 0; leave a gap instead
    return values


# ============================================================================================
# Figures
# ============================================================================================
@_styled
def diagnosis_figure(diag, *, gates=None, figsize=None):
    """The standard panel of one diagnosis: cell norm, gradient flow, eq. 14/21 scatter on top;
    one saturation map per gate below. Returns the Figure."""
    import matplotlib.pyplot as plt

    diag = _as_list(diag)[0]
    gates = list(gates or diag.saturation)
    ncols = max(3, len(gates))
    fig = plt.figure(figsize=figsize or (4.2 * ncols, 7.5), layout="constrained")
    top, bottom = fig.subfigures(2, 1) if gates else (fig, None)
    axes = top.subplots(1, 3)
    cell_norm(diag, ax=axes[0])
    grad_flow(diag, ax=axes[1])
    weight_grad_vs_cell_norm(diag, ax=axes[2])
    if gates:
        for ax, gate in zip(numpy.atleast_1d(bottom.subplots(1, len(gates))), gates):
            saturation(diag, gate, ax=ax)
    fig.suptitle(f"npcell diagnosis: {diag.label} on {diag.task}")
    return fig


@_styled
def comparison_figure(diags, *, gate="i", figsize=None):
    """Several diagnoses side by side: overlaid cell norm, gradient flow and eq. 14/21 scatter
    on top; the ``gate`` saturation map of each cell below. Returns the Figure."""
    import matplotlib.pyplot as plt

    diags = _as_list(diags)
    ncols = max(3, len(diags))
    fig = plt.figure(figsize=figsize or (4.2 * ncols, 7.5), layout="constrained")
    top, bottom = fig.subfigures(2, 1)
    axes = top.subplots(1, 3)
    cell_norm(diags, ax=axes[0])
    grad_flow(diags, ax=axes[1], states=("h",))
    weight_grad_vs_cell_norm(diags, ax=axes[2])
    for ax, d in zip(numpy.atleast_1d(bottom.subplots(1, len(diags))), diags):
        g = gate if gate in d.saturation else (next(iter(d.saturation), None))
        if g is None:
            ax.set_axis_off()
            ax.set_title(f"{d.label}: no gates")
        else:
            saturation(d, g, ax=ax)
    fig.suptitle(f"npcell diagnosis: {_who(diags)}")
    return fig


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


def group_runs(run_dirs) -> dict:
    """Group runs whose config.json is equal apart from 'seed': label -> list of (config, rows).

    The label lists the config entries that differ between groups (e.g. 'cell=wmc'), or the
    directory name when there is no config to tell them apart.
    """
    runs = [(d, *read_run(d)) for d in expand_run_dirs(run_dirs)]
    groups: dict[str, list] = {}
    keys: dict[str, dict] = {}
    for run_dir, config, rows in runs:
        base = {k: v for k, v in config.items() if k != "seed"}
        key = json.dumps(base, sort_keys=True, default=str) if config else run_dir
        groups.setdefault(key, []).append((config, rows))
        keys[key] = base
    varying = set()
    bases = list(keys.values())
    for base in bases:
        for k, v in base.items():
            if any(other.get(k) != v for other in bases):
                varying.add(k)
    labels = {}
    for key, base in keys.items():
        if base and varying:
            label = ", ".join(f"{k}={base[k]}" for k in sorted(varying) if k in base)
        elif base:
            label = str(base.get("cell", base.get("kind", os.path.basename(key))))
        else:
            label = os.path.basename(os.path.normpath(key))
        labels[label or key] = groups[key]
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
