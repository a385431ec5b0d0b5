"""``npcell plot-run RUN_DIR ...``: learning curves of one or more run directories."""

from __future__ import annotations

from ..plots import learning_curves, save_figure


def add_cli_arguments(parser):
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="run directories (metrics.jsonl + config.json) or their parent")
    parser.add_argument("--key", default="loss", help="what to plot: loss (default) or metric")
    parser.add_argument("--split", default=None,
                        help="comma-separated splits to show (default: every split present)")
    parser.add_argument("--x", default="step", choices=["step", "epoch"], help="x axis")
    parser.add_argument("--log", action="store_true", help="log-scale y axis")
    parser.add_argument("--out", default="figures/learning_curves.png", help="figure path")


def cli_main(args) -> int:
    splits = [s for s in args.split.split(",") if s] if args.split else None
    ax = learning_curves(args.run_dirs, key=args.key, splits=splits, x=args.x, log=args.log)
    save_figure(ax.figure, args.out)
    print(f"wrote {args.out}")
    return 0
