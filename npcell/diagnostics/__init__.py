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

``diagnose(cell, x).plot()`` draws it (a matplotlib Figure). One idea per module:

* :mod:`~npcell.diagnostics.measure` -- :func:`diagnose` and :func:`compare`;
* :mod:`~npcell.diagnostics.result` -- :class:`Diagnosis` and :class:`Comparison`;
* :mod:`~npcell.diagnostics.local_terms` -- the paper's eq. 10-15 / 19-21 on one cached step;
* :mod:`~npcell.diagnostics.fits` -- log-log fits, and when a slope may be quoted;
* :mod:`~npcell.diagnostics.regimes` -- named settings that each show one claim of the paper;
* :mod:`~npcell.diagnostics.takeaway` -- the one line a figure's title carries;
* :mod:`~npcell.diagnostics.figures` -- the panels and figures (matplotlib loaded when drawn).

:mod:`npcell.plots` re-exports the figures; nothing here imports it. docs/diagnostics.md has
the measured numbers. Shapes: x (T, B, X) time-major, h and c (B, H) per step.
"""

from .fits import MIN_FIT_DECADES, MIN_FIT_R2, LogLogFit, fit_loglog
from .local_terms import (
    PAPER_GATES,
    PAPER_KINDS,
    delta_hat,
    gate_derivative,
    gate_preactivation,
    local_term_norm,
    weight_local_gradients,
)
from .measure import DEFAULT_THRESHOLD, TANH_GATE_NAMES, compare, diagnose
from .regimes import REGIMES, Regime, regime_cells, run_regime
from .result import FORMAT_VERSION, Comparison, Diagnosis
from .takeaway import takeaway

__all__ = [
    "Comparison",
    "DEFAULT_THRESHOLD",
    "Diagnosis",
    "FORMAT_VERSION",
    "LogLogFit",
    "MIN_FIT_DECADES",
    "MIN_FIT_R2",
    "PAPER_GATES",
    "PAPER_KINDS",
    "REGIMES",
    "Regime",
    "TANH_GATE_NAMES",
    "compare",
    "delta_hat",
    "diagnose",
    "fit_loglog",
    "gate_derivative",
    "gate_preactivation",
    "local_term_norm",
    "regime_cells",
    "run_regime",
    "takeaway",
    "weight_local_gradients",
]
