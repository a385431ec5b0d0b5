"""What a figure must not do to a student reading it (issue 26), as checks on a matplotlib Figure.

figure_problems(fig) lists every fault it finds; tests/test_figures.py holds each demo and regime
figure to an empty list, and shows each check catching a figure built with that fault.
"""

import re

import numpy as np

from npcell.diagnostics import MIN_FIT_DECADES, MIN_FIT_R2

MAX_LINEAR_DECADES = 3  # a linear axis over more decades than this hides all but the largest
MAX_COLUMN_DECADES = 20  # y values this far apart within one x column are a smear, not a trend
COLUMN_WIDTH = 0.02  # decades of x that count as one column
# a quoted slope and the R² / decades the figure gives with it: "slope 0.97 (R² 1.00, 2.1
# decades)" in a legend, "‖c‖^0.90 (peephole, R² 0.99)" in a title
SLOPE = re.compile(r"(?:slope|‖c‖\^)\s*(-?[\d.]+)\s*\(([^)]*)\)")
R2 = re.compile(r"R² ([\d.]+)")
DECADES = re.compile(r"([\d.]+) decades")


def _finite_positive(values):
    values = np.asarray(values, dtype=float).ravel()
    return values[np.isfinite(values) & (values > 0)]


def _span(values) -> float:
    v = _finite_positive(values)
    return float(np.log10(v.max() / v.min())) if v.size > 1 else 0.0


def _texts(fig):
    out = [t.get_text() for t in fig.texts]  # the suptitle is one of them
    for ax in fig.axes:
        out += [ax.get_title()] + [t.get_text() for t in ax.texts]
        legend = ax.get_legend()
        if legend is not None:
            out += [t.get_text() for t in legend.get_texts()]
    return out


def slope_problems(fig) -> list[str]:
    """Every quoted slope comes with R² >= MIN_FIT_R2 (and, when given, enough decades)."""
    problems = []
    for text in _texts(fig):
        for match in SLOPE.finditer(text):
            r2 = R2.search(match.group(2))
            if r2 is None or float(r2.group(1)) < MIN_FIT_R2:
                problems.append(f"slope quoted without a good fit: {match.group(0)!r}")
            decades = DECADES.search(match.group(2))
            if decades is not None and float(decades.group(1)) < MIN_FIT_DECADES:
                problems.append(f"slope quoted over too few decades: {match.group(0)!r}")
    return problems


def axis_problems(ax) -> list[str]:
    """Linear axes over many decades, smeared columns, equal lines, repeated legend entries."""
    problems, title = [], ax.get_title() or ax.get_ylabel()
    lines = [line for line in ax.get_lines() if line.get_visible()]
    for axis, get in (("y", lambda line: line.get_ydata()), ("x", lambda line: line.get_xdata())):
        scale = ax.get_yscale() if axis == "y" else ax.get_xscale()
        span = _span(np.concatenate([get(line) for line in lines])) if lines else 0.0
        if scale == "linear" and span > MAX_LINEAR_DECADES:
            problems.append(f"{title}: {axis} spans {span:.0f} decades on a linear axis")
    if ax.get_xscale() == "log":
        for line in lines:
            x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
            keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
            bins = np.floor(np.log10(x[keep]) / COLUMN_WIDTH)
            for b in np.unique(bins):
                column = _span(y[keep][bins == b])
                if column > MAX_COLUMN_DECADES:
                    problems.append(f"{title}: {line.get_label()} smears {column:.0f} decades "
                                    "at one x")
                    break
    for a in range(len(lines)):
        for b in range(a):
            ya, yb = lines[a].get_ydata(), lines[b].get_ydata()
            if np.shape(ya) == np.shape(yb) and np.array_equal(ya, yb, equal_nan=True) and \
                    np.array_equal(lines[a].get_xdata(), lines[b].get_xdata()):
                problems.append(f"{title}: {lines[a].get_label()!r} hides under "
                                f"{lines[b].get_label()!r}")
    legends = [child for child in ax.get_children() if type(child).__name__ == "Legend"]
    if len(legends) > 1:
        problems.append(f"{title}: {len(legends)} legends")
    for legend in legends:
        labels = [t.get_text() for t in legend.get_texts()]
        if len(set(labels)) != len(labels):
            problems.append(f"{title}: legend repeats an entry: {labels}")
    return problems


def is_empty(ax) -> bool:
    """No drawn data: no line with a finite point, no image, no filled area (text only)."""
    finite = any(np.isfinite(np.asarray(line.get_ydata(), float)).any()
                 for line in ax.get_lines())
    return not (finite or ax.images or ax.collections or ax.patches)


def figure_problems(fig) -> list[str]:
    problems = slope_problems(fig)
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        if ax.get_visible() and is_empty(ax):  # text-only panels count as empty
            problems.append(f"{ax.get_title() or 'a panel'}: empty (no data)")
        problems += axis_problems(ax)
    return problems
