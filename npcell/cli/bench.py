"""``npcell bench``: time npcell against PyTorch in the same process (npcell.bench)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..bench import (
    BASELINES_PATH,
    KINDS,
    SHAPES,
    _torch,
    plot_scaling,
    run_benchmarks,
    run_scaling,
    torch_baselines,
    write_results,
)
from ..cells import CELLS
from ..errors import UsageError


def add_cli_arguments(parser):
    parser.add_argument("--out", default="benchmarks/results", help="directory for JSON + md")
    parser.add_argument("--quick", action="store_true",
                        help="tiny shapes, one repeat: a smoke test of a few seconds")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                        help="cpu: NumPy vs torch CPU; gpu: CuPy vs torch CUDA")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), metavar="KIND")
    parser.add_argument("--shapes", nargs="+", default=None, choices=list(SHAPES),
                        metavar="SHAPE", help=f"subset of {list(SHAPES)}")
    parser.add_argument("--dtypes", nargs="+", default=None, choices=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (median)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed runs first")
    parser.add_argument("--threads", type=int, default=1, help="BLAS and torch threads")
    parser.add_argument("--no-torch", action="store_true", help="time npcell alone")
    parser.add_argument("--paths", nargs="+", choices=("plain", "kernels"),
                        default=["plain", "kernels"],
                        help="the plain path, the fused gate kernels, or both (default)")
    parser.add_argument("--scaling", action="store_true",
                        help="also time the lstm along T, H, B and plot it (--figures)")
    parser.add_argument("--figures", default="figures", help="where the scaling plot goes")


def cli_main(args) -> int:
    unknown = [k for k in args.kinds if k not in CELLS]
    if unknown:
        raise UsageError(f"unknown cell kind(s) {unknown}; expected some of {sorted(CELLS)}")
    if args.threads < 1:
        raise UsageError(f"--threads must be >= 1; got {args.threads}")
    if not args.no_torch and _torch() is None:
        print("npcell bench: torch is not installed; timing npcell alone "
              "(pip install npcell[crosscheck] for the ratios)", file=sys.stderr)
    elif not args.no_torch and torch_baselines() is None:
        print(f"npcell bench: no PyTorch baselines at {BASELINES_PATH} (they live in the source "
              "checkout's benchmarks/, not in the wheel); timing npcell alone", file=sys.stderr)
    data = run_benchmarks(device=args.device, quick=args.quick, kinds=args.kinds,
                          shapes=args.shapes, dtypes=args.dtypes, repeats=args.repeats,
                          warmup=args.warmup, threads=args.threads, paths=args.paths,
                          with_torch=not args.no_torch and torch_baselines() is not None)
    name = f"bench_{args.device}" + ("_quick" if args.quick else "")
    json_path, md_path = write_results(data, args.out, name)
    print(f"wrote {json_path} and {md_path}")
    if args.scaling:
        scaling = run_scaling(quick=args.quick, repeats=1 if args.quick else 3)
        scaling_path = Path(args.out) / ("scaling" + ("_quick" if args.quick else "") + ".json")
        scaling_path.write_text(json.dumps(scaling, indent=1) + "\n")
        fig = plot_scaling(scaling, Path(args.figures) / (
            "performance_scaling" + ("_quick" if args.quick else "") + ".png"))
        print(f"wrote {scaling_path} and {fig}")
    return 0
