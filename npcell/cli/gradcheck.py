"""``npcell gradcheck --cell lstm [--full] [--dtype float64]``: print reports; exit 1 on failure."""

from __future__ import annotations

import json

import numpy

from ..cells import CELLS, make_cell
from ..errors import check_int
from ..gradcheck import gradcheck


def add_cli_arguments(parser):
    parser.add_argument("--cell", default="lstm",
                        help=f"cell kind(s), comma-separated, or 'all' ({', '.join(CELLS)})")
    parser.add_argument("--full", action="store_true", help="check every entry, not directions")
    parser.add_argument("--samples", type=int, default=None,
                        help="with --full: this many seeded entries per tensor")
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--method", default="central", choices=["central", "complex"],
                        help="central differences, or the complex step (float64, exact)")
    parser.add_argument("--T", type=int, default=5, help="sequence length")
    parser.add_argument("--batch", type=int, default=3)
    parser.add_argument("--input-size", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the reports as JSON")


def cli_main(args) -> int:
    for name in ("T", "batch"):  # before numpy sees a negative size
        check_int(f"--{name}", getattr(args, name))
    kinds = list(CELLS) if args.cell == "all" else [k.strip() for k in args.cell.split(",")]
    reports = []
    for kind in kinds:
        cell = make_cell(kind, args.input_size, args.hidden, dtype=args.dtype, seed=args.seed)
        rng = numpy.random.default_rng(args.seed)
        x = cell.xp.asarray(rng.standard_normal((args.T, args.batch, args.input_size)),
                            dtype=cell.dtype)
        reports.append(gradcheck(cell, x, mode="full" if args.full else "fast",
                                 samples=args.samples, seed=args.seed, method=args.method))
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=1))
    else:
        print("\n\n".join(str(r) for r in reports))
    return 0 if all(r.ok for r in reports) else 1
