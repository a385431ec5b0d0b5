"""``npcell diagnose``: diagnose cells on an adding batch, or in a named regime, and plot them.

    npcell diagnose --cell lstm,peephole,wmc --T 400          # PyTorch's init, adding T=400
    npcell diagnose --regime eq21-vs-eq14                     # one claim of the paper
    npcell diagnose --list-regimes

Besides the figure it prints each cell's summary, the log-log slopes of the eq. (14) / (21)
terms and of the full per-step ‖dL/dW_kc‖ against ‖c‖ (see docs/diagnostics.md), and the
one-line takeaway the figure carries.
"""

from __future__ import annotations

import os

import numpy

from ..cells import CELLS, make_cell
from ..diagnostics import DEFAULT_THRESHOLD, PAPER_KINDS, REGIMES, compare, run_regime
from ..errors import ConfigError
from ..plots import comparison_figure, save_figure
from ..tasks.adding import make_batch


def add_cli_arguments(parser):
    parser.add_argument("--cell", default=None,
                        help="comma-separated cell kinds (default: lstm,peephole,wmc; with "
                             "--regime, the regime's own)")
    parser.add_argument("--regime", default=None, choices=sorted(REGIMES), metavar="NAME",
                        help="a named setting that shows one claim of the paper "
                             f"({', '.join(sorted(REGIMES))}); sets T, batch and hidden")
    parser.add_argument("--list-regimes", action="store_true",
                        help="print the regimes and their claims, and exit")
    parser.add_argument("--task", default="adding", choices=["adding"],
                        help="task whose batch is diagnosed (default: adding)")
    parser.add_argument("--T", type=int, default=None, help="sequence length (default 400)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default 32)")
    parser.add_argument("--hidden", type=int, default=None, help="hidden size H (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights and data")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help=f"saturation threshold tau (default {DEFAULT_THRESHOLD})")
    parser.add_argument("--out", default=None,
                        help="figure path (default figures/diagnose_<regime or task_T>.png)")
    parser.add_argument("--save", default=None, metavar="DIR",
                        help="also write one Diagnosis .npz per cell into DIR")


def slope_table(result) -> str:
    """The log-log slopes against ‖c‖ of every cell that reads c, as printable lines."""
    lines = ["log-log slope against the ‖c‖ read (term = eq. 14/21 alone, full = dL/dW_kc):"]
    for d in result:
        for name, fits in d.loglog_slopes().items():
            # a slope only where the fit carries it (LogLogFit.quotable); else why not
            cells = "; ".join(f"{what} {fit if fit.quotable else fit.label()}"
                              for what, fit in fits.items())
            lines.append(f"  {d.label:<22} {name}: {cells}")
    return "\n".join(lines) if len(lines) > 1 else "no cell reads c: no slopes"


def cli_main(args) -> int:
    if args.list_regimes:
        for name, regime in REGIMES.items():
            print(f"{name:<14} {regime.claim}\n{'':<14} (T={regime.T}, H={regime.hidden}, "
                  f"B={regime.batch}; {regime.note})")
        return 0
    kinds = [k.strip() for k in (args.cell or ",".join(PAPER_KINDS)).split(",") if k.strip()]
    unknown = [k for k in kinds if k not in CELLS]
    if unknown:
        raise ConfigError(f"unknown cell kind(s) {unknown}; expected some of {sorted(CELLS)}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be a non-negative int; got {args.seed}")
    if args.regime:
        given = [f"--{n}" for n in ("T", "batch", "hidden") if getattr(args, n) is not None]
        if given:
            raise ConfigError(f"--regime {args.regime} fixes T, batch and hidden; got {given}")
        outside = [k for k in kinds if k not in PAPER_KINDS]
        if outside:
            raise ConfigError(f"regimes set up {list(PAPER_KINDS)}; got {outside}")
        result = run_regime(args.regime, kinds if args.cell else None, seed=args.seed,
                            threshold=args.threshold)
        out = args.out or f"figures/diagnose_{args.regime}.png"
    else:
        defaults = {"T": 400, "batch": 32, "hidden": 64}
        T, batch, hidden = (defaults[n] if getattr(args, n) is None else getattr(args, n)
                            for n in ("T", "batch", "hidden"))
        for name, value in (("T", T), ("batch", batch), ("hidden", hidden)):
            if value < 1:
                raise ConfigError(f"--{name} must be a positive int; got {value}")
        x, y = make_batch(T, batch, numpy.random.default_rng(args.seed))
        cells = [make_cell(kind, x.shape[-1], hidden, seed=args.seed) for kind in kinds]
        result = compare(cells, x, y, task=f"{args.task} T={T}", threshold=args.threshold,
                         seed=args.seed)
        out = args.out or f"figures/diagnose_{args.task}_T{T}.png"
    save_figure(comparison_figure(result), out)
    print(result.summary())
    print(slope_table(result))
    print("takeaway:", result.takeaway())
    if args.save:
        os.makedirs(args.save, exist_ok=True)
        for d in result:
            print("wrote", d.save(os.path.join(args.save, f"diagnosis_{d.kind}.npz")))
    print(f"wrote {out}")
    return 0
