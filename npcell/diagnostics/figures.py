"""Matplotlib views of a :class:`~npcell.diagnostics.Diagnosis` (what ``diag.plot()`` draws).

Every panel is a function ``name(diag_or_diags, ax=None, ...) -> Axes``: it draws on ``ax`` (or on
a new ``plt.subplots()`` figure), labels its axes, adds a legend and a short title, and returns
the Axes. matplotlib is imported when a panel is first drawn, as pandas' ``.plot`` does, so
``import npcell`` stays light. Nothing here calls ``plt.show()``; close figures you are done with.

Panels:

* :func:`cell_norm` -- ‖c_t‖ over t on a log axis (mean over the batch solid, max dashed where
  it differs from the mean).
* :func:`grad_flow` -- ‖dL/dh_t‖ (and ‖dL/dc_t‖) over t on a log axis.
* :func:`saturation_summary` -- % of units saturated over t per (cell, gate); series that are
  equal (e.g. every gate at 0%) are one line whose legend names them all.
* :func:`saturation` -- one gate's saturation map: time by unit, colour bar = fraction of batch.
* :func:`weight_grad_vs_cell_norm` -- log-log per-step ‖dL/dW_kc‖ (or the eq. 14 / 21 term
  alone) against the ‖c‖ it read, with the fitted slope where the fit is good; over t instead
  when ‖c‖ spans less than a decade (against a flat ‖c‖ the points would pile into one column).

Figures: :func:`diagnosis_figure` (one cell) and :func:`comparison_figure` (several, e.g.
``npcell.compare`` or a named regime). The style ``npcell.styles.npcell`` is applied inside
each call only.
"""

from __future__ import annotations

import functools
import textwrap

import numpy

from ..errors import ConfigError
from .fits import MIN_FIT_DECADES, fit_loglog
from .local_terms import PAPER_GATES
from .takeaway import takeaway

STYLE = "npcell.styles.npcell"
GATE_STYLES = {"i": "-", "f": "--", "o": ":", "g": "-."}
# The paper's three cells keep one colour in every figure; other kinds take the next free one.
KIND_COLORS = {"lstm": "#1f77b4", "peephole": "#d62728", "wmc": "#2ca02c"}
OTHER_COLORS = ("#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf", "#bcbd22")
# Later cells draw thinner lines and other markers, so a cell that agrees with an earlier one
# shows through instead of hiding under it.
WIDTHS = (2.6, 1.7, 1.0, 0.8)
MARKERS = ("o", "x", "+", "1")
SAME_COLOR = "0.35"  # a line that stands for several equal series
INFORMATIVE_MAP = 0.02  # a saturation map whose entries vary less than this is not drawn
MAX_SHOWN = 1.02  # draw max ‖c‖ only where it exceeds the mean by more than 2%
CAPTION_WIDTH = 170  # characters per line of a figure's title


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


def _width(n) -> float:
    return WIDTHS[min(n, len(WIDTHS) - 1)]


def _styled(func):
    """Run a plotting function inside the npcell style context (never globally)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        import matplotlib.pyplot as plt  # first drawn here: import npcell stays light

        with plt.style.context(STYLE):
            return func(*args, **kwargs)

    return wrapper


def _axes(ax):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    return ax


def _is_diagnosis(obj) -> bool:
    # duck-typed: this module sits below result.py (Diagnosis.plot calls it), so it cannot
    # import the class without a cycle
    return hasattr(obj, "state_norm_mean") and hasattr(obj, "saturation")


def _as_list(diags):
    if _is_diagnosis(diags):
        return [diags]
    diags = list(diags)
    if not diags or not all(_is_diagnosis(d) for d in diags):
        raise ConfigError("expected a Diagnosis or a non-empty list of Diagnosis objects")
    return diags


def log_safe(values):
    """A float copy of ``values`` with every entry <= 0 set to NaN, for a log axis."""
    values = numpy.asarray(values, dtype=float).copy()
    values[values <= 0] = numpy.nan  # a log axis cannot show 0; leave a gap instead
    return values


# ============================================================================================
# Panels
# ============================================================================================
@_styled
def cell_norm(diags, ax=None, *, show_max=True, log=True):
    """‖c_t‖ over t: mean over the batch (solid) and max (dashed) for each diagnosis.

    The max is drawn only where it exceeds the mean by more than 2% (else it would hide under
    it; the legend says so). Cells without a c show ‖h_t‖ instead. ``log``: log y axis.
    """
    diags = _as_list(diags)
    ax = _axes(ax)
    colors = _colors(diags)
    for n, d in enumerate(diags):
        mem = d.memory_state
        t = numpy.arange(d.T)
        distinct = show_max and numpy.any(d.cell_norm_max > MAX_SHOWN * d.cell_norm_mean)
        note = "" if distinct or not show_max else " (max within 2%)"
        ax.plot(t, d.cell_norm_mean, color=colors[n], linewidth=_width(n),
                label=f"{d.label}: mean ‖{mem}_t‖{note}")
        if distinct:
            ax.plot(t, d.cell_norm_max, color=colors[n], linestyle="--", linewidth=0.9,
                    label=f"{d.label}: max ‖{mem}_t‖")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("time step t")
    mems = sorted({d.memory_state for d in diags})
    ax.set_ylabel(" / ".join(f"‖{m}_t‖" for m in mems) + " (L2 over units)")
    ax.set_title("cell-state norm")
    ax.legend(loc="best", fontsize=7)
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
            ax.plot(t, log_safe(d.dstate_norm[name]), color=colors[n], linewidth=_width(n),
                    linestyle=styles.get(name, ":"), label=f"{d.label}: ‖dL/d{name}_t‖")
        if dx:
            ax.plot(t, log_safe(d.dx_norm), color=colors[n], linestyle=":",
                    label=f"{d.label}: ‖dL/dx_t‖")
    ax.set_yscale("log")
    ax.set_xlabel("time step t")
    ax.set_ylabel("gradient norm")
    ax.set_title("gradient flow back in time")
    ax.legend(loc="best", fontsize=7)
    return ax


def _merge_equal(series):
    """[(cell label, gate, colour, style, values)] -> [(legend label, colour, style, values)]:
    series with equal values become one line (grey when it stands for several cells), so no
    line hides another one exactly like it."""
    groups = {}
    for label, gate, color, style, values in series:
        groups.setdefault((values.shape, values.tobytes()), []).append(
            (label, gate, color, style, values))
    out = []
    for members in groups.values():
        label, gate, color, style, values = members[0]
        if len(members) == 1:
            out.append((f"{label}: {gate}", color, style, values))
            continue
        cells = {}
        for m in members:
            cells.setdefault(m[0], []).append(m[1])
        names = "; ".join(f"{cell} {', '.join(gates)}" for cell, gates in cells.items())
        if not values.any():
            names = f"never saturated: {names}"
        out.append((names, color if len(cells) == 1 else SAME_COLOR, "-", values))
    return out


@_styled
def saturation_summary(diags, ax=None):
    """% of (unit, sequence) pairs saturated at each step, one line per cell and gate.

    Colour = cell, line style = gate (i solid, f dashed, o dotted, g dash-dot). Equal series
    (every gate that never saturates sits at 0%; two gates pinned at 100%) are one line whose
    legend names them all.
    """
    diags = _as_list(diags)
    ax = _axes(ax)
    colors = _colors(diags)
    series = [(d.label, gate, colors[n], GATE_STYLES.get(gate, "-"), 100.0 * sat.mean(axis=1))
              for n, d in enumerate(diags) for gate, sat in d.saturation.items()]
    for label, color, style, percent in _merge_equal(series):
        ax.plot(numpy.arange(percent.size), percent, color=color, linestyle=style, label=label)
    ax.set_ylim(-3, 103)
    ax.set_xlabel("time step t")
    ax.set_ylabel("% saturated")
    ax.set_title(f"saturated gate units (tau={diags[0].threshold:g})")
    if ax.get_lines():
        ax.legend(loc="best", fontsize=7)
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
    """'slope 0.97 (R² 1.00, 2.1 decades)' for a good log-log fit, else 'no slope (why)'."""
    try:
        return fit_loglog(x, y).label()
    except ConfigError:
        return "no fit"


def _decades(x) -> float:
    x = numpy.asarray(x, dtype=float)
    x = x[numpy.isfinite(x) & (x > 0)]
    return float(numpy.log10(x.max() / x.min())) if x.size else 0.0


@_styled
def weight_grad_vs_cell_norm(diags, ax=None, *, gate="i", what="full", against=None):
    """Log-log: per-step ‖dL/dW_kc‖ (``what='full'``) or the eq. 14 / 21 term alone
    (``what='term'``, :attr:`Diagnosis.term_norm`) against the ‖c‖ that W_kc read, gate k.

    Gates i and f read c_{t-1}, gate o reads c_t. One colour per diagnosis; the legend gives
    each fitted slope where the fit is good (see :meth:`LogLogFit.label`). eq. (21) predicts
    slope 1 for the peephole's term; eq. (14)-(15) predict WMC's falls away once tanh(W_kc c)
    saturates. ``against``: 'c' or 't'; by default 'c' when every cell's ‖c‖ spans at least a
    decade, else 't' (the values over time, log y), since against a flat ‖c‖ decades of y
    would pile into one column. Cells without the weight draw nothing.
    """
    if what not in ("full", "term"):
        raise ConfigError(f"what must be 'full' or 'term'; got {what!r}")
    if gate not in PAPER_GATES:
        raise ConfigError(f"gate must be one of {PAPER_GATES}; got {gate!r}")
    if against not in (None, "c", "t"):
        raise ConfigError(f"against must be 'c' or 't'; got {against!r}")
    diags = _as_list(diags)
    ax = _axes(ax)
    colors = _colors(diags)
    name = f"W_{gate}c"
    table = "grad_step_norm" if what == "full" else "term_norm"
    drawn = [(n, d) for n, d in enumerate(diags) if d.has_cell and name in getattr(d, table)]
    if against is None:
        flat = any(_decades(d.cell_read_norm(name)) < MIN_FIT_DECADES for _, d in drawn)
        against = "t" if flat else "c"
    ys = [getattr(d, table)[name] for _, d in drawn]
    for k, (n, d) in enumerate(drawn):
        x, y = d.cell_read_norm(name), ys[k]
        label = f"{d.label}: {fit_label(x, y)}"
        if against == "c":
            ax.plot(x, log_safe(y), MARKERS[k % len(MARKERS)], ms=2.5, color=colors[n],
                    alpha=0.7, markerfacecolor="none", label=label)
        else:
            ax.plot(numpy.arange(d.T), log_safe(y), color=colors[n], linewidth=_width(k),
                    label=label)
    read = "‖c_t‖" if gate == "o" else "‖c_t-1‖"
    if ax.get_lines():
        if against == "c" or _decades(numpy.concatenate(ys)) > 1.0:
            ax.set_yscale("log")  # over t, a log axis only where the values span decades
        if against == "c":
            ax.set_xscale("log")
        ax.legend(loc="best", fontsize=7)
    else:
        ax.text(0.5, 0.5, f"no {name} (lstm-like cells)", transform=ax.transAxes,
                ha="center", va="center")
    over = " over t (‖c‖ spans < 1 decade)" if against == "t" else ""
    ax.set_xlabel("time step t" if against == "t" else f"{read} (batch mean)")
    if what == "full":
        ax.set_ylabel(f"‖dL/d{name}‖ at step t")
        ax.set_title(f"per-step ‖dL/d{name}‖{over}")
    else:
        ax.set_ylabel(f"‖∂{gate}_t/∂{name}‖ (rms)")
        ax.set_title(f"eq. 14/21 term, gate {gate}{over}")
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
            if fit is not None and fit.quotable and fit.slope > 0.5:
                notes.append(f"{d.label}: ‖dL/d{name}‖ ~ ‖c‖^{fit.slope:.1f} although its "
                             f"term is bounded per unit: {why}; units whose {name} row is "
                             "nearly orthogonal to c keep tanh linear")
    return notes


def _title(diags, caption, regime) -> str:
    """Who, on what; the claim and how the regime was built; what the data says."""
    tasks = " / ".join(sorted({d.task for d in diags}))
    lines = [f"{', '.join(d.label for d in diags)} on {tasks}"]
    if caption or regime is not None:
        lines.append(caption or f"regime {regime.name}: {regime.claim}")
    if regime is not None and regime.note:
        lines.append(f"construction: {regime.note}")
    lines += _shape_note(diags)
    lines.append("data: " + takeaway(diags))
    return "\n".join(textwrap.fill(line, CAPTION_WIDTH) for line in lines)


def _shape_note(diags) -> list[str]:
    """When the cells read c through W_kc of different shapes, the line that says so: the
    term of a full (H, H) W_kc is a norm over H² entries, a diagonal one's over H."""
    shapes = {d.label: "diagonal (H)" if d.options.get("diagonal") else "full (H, H)"
              for d in diags if d.term_norm}
    if len(set(shapes.values())) < 2:
        return []
    root = numpy.sqrt(max(d.hidden_size for d in diags))
    return ["W_kc shapes differ: " + ", ".join(f"{k} {v}" for k, v in shapes.items())
            + f"; their term norms differ by about sqrt(H) = {root:.0f} from shape alone"]


@_styled
def comparison_figure(diags, *, caption=None, figsize=None):
    """Several diagnoses side by side. Top row: ‖c_t‖, ‖dL/dh_t‖, saturation summary. When
    some cell reads c: the eq. 14 / 21 term per gate (row 2) and the full per-step ‖dL/dW_kc‖
    per gate (row 3), log-log with fitted slopes. ``caption``: a line under the title (default:
    a regime's claim; a regime's construction follows it); the takeaway line is computed from
    the data. Returns the Figure."""
    import matplotlib.pyplot as plt

    regime = getattr(diags, "regime", None)
    diags = _as_list(diags)
    rows = 3 if any(d.term_norm for d in diags) else 1
    fig, axes = plt.subplots(rows, 3, figsize=figsize or (13.5, 3.6 * rows + 1.3),
                             layout="constrained", squeeze=False)
    cell_norm(diags, ax=axes[0, 0])
    grad_flow(diags, ax=axes[0, 1], states=("h",))
    saturation_summary(diags, ax=axes[0, 2])
    if rows == 3:
        for col, gate in enumerate(PAPER_GATES):
            weight_grad_vs_cell_norm(diags, ax=axes[1, col], gate=gate, what="term")
            weight_grad_vs_cell_norm(diags, ax=axes[2, col], gate=gate, what="full")
    fig.suptitle(_title(diags, caption, regime), fontsize=9)
    notes = growth_notes(diags)
    if notes:
        fig.supxlabel("\n".join(textwrap.fill(n, CAPTION_WIDTH) for n in notes), fontsize=7)
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
        if not ax.has_data():
            ax.remove()  # no empty panels
    fig.suptitle(_title([diag], None, None), fontsize=9)
    return fig


__all__ = [
    "cell_norm",
    "comparison_figure",
    "diagnosis_figure",
    "fit_label",
    "grad_flow",
    "growth_notes",
    "informative_gates",
    "log_safe",
    "saturation",
    "saturation_summary",
    "weight_grad_vs_cell_norm",
]
