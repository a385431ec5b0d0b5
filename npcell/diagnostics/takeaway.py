"""The one line a figure's title carries, computed from the diagnoses (never typed by hand)."""

from __future__ import annotations


def takeaway(diagnoses) -> str:
    """One line computed from the diagnoses: the eq. 14 / 21 slopes, ‖c‖ reached, saturation.

    e.g. "W_ic term ~ ‖c‖^0.90 (peephole, R² 0.99), wmc no slope (R² 0.92: not a line);
    ‖c_T‖ peephole 260, wmc 241; ...". A slope is quoted only where its fit is
    :attr:`~npcell.diagnostics.LogLogFit.quotable`.
    """
    diagnoses = list(diagnoses)
    parts = [_slopes(diagnoses), _cell_norms(diagnoses), _saturation(diagnoses)]
    parts = [p for p in parts if p]
    return "; ".join(parts) if parts else "no cell-state measurements"


def _slopes(diagnoses) -> str:
    fits = [(d.label, d.loglog_slopes().get("W_ic", {}).get("term")) for d in diagnoses]
    fits = [(label, fit) for label, fit in fits if fit is not None]
    if not fits:
        return ""
    reasons = {fit.label() for _, fit in fits if not fit.quotable}
    if len(reasons) == 1 and not any(fit.quotable for _, fit in fits):
        return f"W_ic term: {reasons.pop()}"  # one reason for every cell: say it once
    return "W_ic term " + ", ".join(
        f"~ ‖c‖^{fit.slope:.2f} ({label}, R² {fit.r2:.2f})" if fit.quotable
        else f"{label} {fit.label()}" for label, fit in fits)


def _cell_norms(diagnoses) -> str:
    with_cell = [d for d in diagnoses if d.has_cell]
    if not with_cell:
        return ""
    return "‖c_T‖ " + ", ".join(f"{d.label} {d.cell_norm_mean[-1]:.3g}" for d in with_cell)


def _saturation(diagnoses) -> str:
    sat = [(d.label, max(((100.0 * s.mean(), g) for g, s in d.saturation.items()
                          if d.gate_activation.get(g) == "sigmoid"), default=None))
           for d in diagnoses]
    sat = [(label, v) for label, v in sat if v is not None]
    if not sat:
        return ""
    if all(pct == 0.0 for _, (pct, _) in sat):
        return "no gate unit saturates"
    return "most saturated gate " + ", ".join(f"{label} {g} {pct:.0f}%"
                                             for label, (pct, g) in sat)
