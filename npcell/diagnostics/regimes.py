"""Named regimes: each sets up lstm / peephole / wmc so that one claim of the paper shows.

A regime is constructed, not found: its ``construction`` says what was set by hand, and every
figure of it prints that line under the claim (``npcell diagnose --regime NAME``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy

from ..cells import make_cell
from ..errors import ConfigError
from ..tasks.adding import make_batch
from .local_terms import PAPER_GATES, PAPER_KINDS
from .measure import DEFAULT_THRESHOLD, compare
from .result import Comparison


@dataclass(frozen=True)
class Regime:
    """A diagnosis setting: an adding-problem batch and cells with chosen biases and W_kc.

    ``biases`` sets whole bias vectors (e.g. b_f = 5: the forget gate starts open).
    ``connection`` gives, per cell kind, how W_ic, W_fc, W_oc are drawn: ``None`` keeps the
    cell's own init (PyTorch's U(+-1/sqrt(H))), ``("sign", m)`` sets every entry to +-m with a
    random sign; ``diagonal`` forces the W_kc shape of both connected cells.
    """

    name: str
    claim: str
    T: int
    hidden: int
    batch: int
    biases: dict = field(default_factory=dict)
    connection: dict = field(default_factory=dict)
    diagonal: bool | None = None
    note: str = ""
    kinds: tuple = PAPER_KINDS  # the cells the regime shows by default


REGIMES = {
    "eq21-vs-eq14": Regime(
        "eq21-vs-eq14",
        claim="eq. (21) vs (14): the peephole's term grows as ‖c‖, WMC's falls once tanh saturates",
        T=300, hidden=16, batch=16, biases={"b_i": 0.0, "b_f": 5.0, "b_g": 1.0},
        connection={"peephole": ("sign", 0.01), "wmc": ("sign", 1.0)}, diagonal=True,
        kinds=("peephole", "wmc"),
        note="b_f = 5 and b_g = 1 make c grow every step; each cell gets its own "
             "W_kc by construction, entries +-m: the peephole's m = 0.01 keeps its sigmoid "
             "linear, WMC's m = 1 saturates tanh from ‖c‖ ~ 3 (with one shared W_kc the "
             "peephole's gate saturates and its term goes flat)"),
    "flooding": Regime(
        "flooding",
        claim="same weights, gates half open: the peephole's W_fc c feeds f back and c floods; "
              "WMC's tanh caps the push",
        T=400, hidden=64, batch=16, biases={"b_i": 2.0, "b_f": 2.0, "b_g": 1.0},
        note="PyTorch's init for every weight; b_f = 2 lets c reach ~ i g / (1 - f) ~ 5 per "
             "unit, where a positive w_fc c already pushes f towards 1"),
    "pytorch-init": Regime(
        "pytorch-init",
        claim="at PyTorch's init the cells agree: ‖c‖ = O(1), so tanh(W_kc c) ~ W_kc c",
        T=400, hidden=64, batch=32, diagonal=False,
        note="the null case, PyTorch's init for every weight; peephole and WMC both read c "
             "through a full (H, H) W_kc of the same draw, so tanh is their only difference"),
}


def regime_cells(name, kinds=None, *, seed=0):
    """(cells, x, y, task text) for regime ``name``: one cell per kind (default: the regime's
    own), all with the same LSTM weights (one seed)."""
    if name not in REGIMES:
        raise ConfigError(f"unknown regime {name!r}; expected one of {sorted(REGIMES)}")
    regime = REGIMES[name]
    kinds = regime.kinds if kinds is None else tuple(kinds)
    x, y = make_batch(regime.T, regime.batch, numpy.random.default_rng(seed))
    cells = []
    for kind in kinds:
        options = {}
        if regime.diagonal is not None and kind in ("peephole", "wmc"):
            options["diagonal"] = regime.diagonal
        cell = make_cell(kind, x.shape[-1], regime.hidden, seed=seed, **options)
        for bias, value in regime.biases.items():
            cell.params[bias][...] = value
        rule = regime.connection.get(kind)
        if rule is not None:
            rng = numpy.random.default_rng([seed, 21])
            for gate in PAPER_GATES:
                w = cell.params[f"W_{gate}c"]
                w[...] = rule[1] * rng.choice([-1.0, 1.0], size=w.shape)  # +-m, random sign
        cells.append(cell)
    return cells, x, y, f"{name}, adding T={regime.T}"


def run_regime(name, kinds=None, *, seed=0, threshold=DEFAULT_THRESHOLD) -> Comparison:
    """Diagnose ``kinds`` (default: the regime's) in regime ``name``, labelled by kind; the
    Comparison carries the regime."""
    cells, x, y, task = regime_cells(name, kinds, seed=seed)
    result = compare(cells, x, y, task=task, threshold=threshold, seed=seed,
                     labels=[cell.kind for cell in cells])
    result.regime = REGIMES[name]
    return result

