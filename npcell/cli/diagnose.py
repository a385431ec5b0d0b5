"""``npcell diagnose --cell lstm,peephole,wmc --T 400``: diagnose cells on a task and plot them."""

from __future__ import annotations

import os

import numpy

from ..cells import CELLS, make_cell
from ..diagnostics import DEFAULT_THRESHOLD, _save_figure, compare
from ..errors import ConfigError
from ..tasks.adding import make_batch


def add_cli_arguments(parser):
    parser.add_argument("--cell", default="lstm,peephole,wmc",
                        help="comma-separated cell kinds (default: lstm,peephole,wmc)")
    parser.add_argument("--task", default="adding", choices=["adding"],
                        help="task whose batch is diagnosed (default: adding)")
    parser.add_argument("--T", type=int, default=400, help="sequence length (default 400)")
    parser.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--hidden", type=int, default=64, help="hidden size H (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights and data")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help=f"saturation threshold tau (default {DEFAULT_THRESHOLD})")
    parser.add_argument("--out", default=None,
                        help="figure path (default figures/diagnose_<task>_T<T>.png)")
    parser.add_argument("--save", default=None, metavar="DIR",
                        help="also write one Diagnosis .npz per cell into DIR")


def cli_main(args) -> int:
    kinds = [k.strip() for k in args.cell.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in CELLS]
    if unknown:
        raise ConfigError(f"unknown cell kind(s) {unknown}; expected some of {sorted(CELLS)}")
    for name in ("T", "batch", "hidden"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name} must be a positive int; got {getattr(args, name)}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be a non-negative int; got {args.seed}")
    x, y = make_batch(args.T, args.batch, numpy.random.default_rng(args.seed))
    cells = [make_cell(kind, x.shape[-1], args.hidden, seed=args.seed) for kind in kinds]
    result = compare(cells, x, y, task=f"{args.task} T={args.T}", threshold=args.threshold,
                     seed=args.seed)
    out = args.out or f"figures/diagnose_{args.task}_T{args.T}.png"
    _save_figure(result.figure, out)
    print(result.summary())
    if args.save:
        os.makedirs(args.save, exist_ok=True)
        for d in result:
            print("wrote", d.save(os.path.join(args.save, f"diagnosis_{d.kind}.npz")))
    print(f"wrote {out}")
    return 0
