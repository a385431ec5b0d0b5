"""Reproduce the WMC paper's adding problem (section 4.1, Fig. 3 top): lstm vs peephole vs wmc.

Paper setup: T = 200 and 400, H = 128, SGD Nesterov lr 1e-2 momentum 0.9, batch 128, gradient
norm clipped to 1.0, 200 epochs, test MSE every epoch (baseline 1/6). The paper does not say how
many sequences make an epoch; here ``--n-train`` and ``--steps-per-epoch`` choose it.

The full setup is days of CPU time; the defaults are the scaled-down run recorded in
docs/results.md. The paper's setup is::

    python scripts/repro_adding.py --T 200 --epochs 200 --steps-per-epoch 78 --n-train 10000 \
        --seeds 0 1 2 --jobs 2

Slow; not part of `make test`. Each run directory resumes after Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import repro_common as rc  # noqa: E402

PAPER = {
    200: "all three solve it; wmc converges first, final MSE similar (Fig. 3, no table)",
    400: "wmc solves it around epoch 145; lstm and peephole stay at the 1/6 baseline (Fig. 3)",
}


def _when(epoch, args) -> str:
    """'at step 1,200 (ep 12)' or 'not within 2,500 steps' for the mean curve's first crossing."""
    if epoch is None:
        return f"not within {args.epochs * args.steps_per_epoch:,} steps"
    return f"at step {epoch * args.steps_per_epoch:,} (ep {epoch})"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--T", type=int, default=100)
    p.add_argument("--cells", nargs="+", default=["lstm", "peephole", "wmc"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--steps-per-epoch", type=int, default=100)
    p.add_argument("--n-train", type=int, default=12_800)
    p.add_argument("--n-test", type=int, default=512)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"],
                   help="sgd: the paper's SGD-Nesterov (momentum 0.9); adam: a faster scale-down")
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--jobs", type=int, default=1, help="joblib worker processes")
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="run the sweep on the dask.distributed scheduler at ADDRESS")
    p.add_argument("--out", default="runs/repro_adding")
    args = p.parse_args(argv)

    from npcell.tasks.adding import BASELINE_MSE
    from npcell.training import TrainConfig

    t0 = time.perf_counter()
    configs = [
        TrainConfig(task="adding",
                    task_options={"T": args.T, "n_train": args.n_train, "n_test": args.n_test},
                    cell=cell, hidden=args.hidden, batch=128, optimizer=args.optimizer, lr=args.lr,
                    momentum=0.9, nesterov=True, clip=1.0, epochs=args.epochs,
                    steps_per_epoch=args.steps_per_epoch, dtype=args.dtype, seed=seed,
                    log_every=25)
        for seed in args.seeds for cell in args.cells
    ]
    tag = f"T{args.T}" + ("" if args.optimizer == "sgd" else f"_{args.optimizer}")
    runs = rc.run_sweep(configs, Path(args.out) / tag, n_jobs=args.jobs,
                        cluster=args.cluster)
    wall = time.perf_counter() - t0
    curves = rc.eval_curves(runs)
    command = rc.command_line()
    figure = rc.FIGURES / f"adding_{tag}.png"
    rc.plot_curves(curves, title=f"Adding T={args.T}, H={args.hidden}, {args.optimizer} "
                   f"lr {args.lr:g}: test MSE\n"
                   f"({len(args.seeds)} seed(s), {args.steps_per_epoch} steps of 128 per epoch)",
                   ylabel="test MSE", path=figure, baseline=BASELINE_MSE,
                   baseline_label="predict 1 (1/6)", command=command, logy=True)
    rc.record_figure(figure, command)

    summary, ours = {}, []
    for cell, (epochs, values) in curves.items():
        mean, se = rc.mean_and_stderr(values)
        below_01 = rc.first_epoch_below(epochs, mean, 0.1)
        below_001 = rc.first_epoch_below(epochs, mean, 0.01)
        sps = [r["steps_per_s"] for r in runs if r["cell"] == cell]
        summary[cell] = {"final_mse": float(mean[-1]), "final_se": float(se[-1]),
                         "best_mse": float(mean.min()),
                         "first_epoch_below_0.1": below_01, "first_epoch_below_0.01": below_001,
                         "steps_per_s": sum(sps) / len(sps)}
        ours.append(f"{cell}: final {mean[-1]:.4f}, MSE < 0.1 {_when(below_01, args)}, "
                    f"< 0.01 {_when(below_001, args)}, {summary[cell]['steps_per_s']:.2f} steps/s")
    order = sorted(summary, key=lambda c: (summary[c]["first_epoch_below_0.1"] or 10**9,
                                           summary[c]["final_mse"]))
    tie = rc.no_separation([s["final_mse"] for s in summary.values()],
                           [s["final_se"] for s in summary.values()])
    if all(summary[c]["first_epoch_below_0.1"] is None for c in summary):
        verdict = ("no cell reached test MSE 0.1; final MSE "
                   + (tie if tie is not None and len(order) > 1 else f"order {' < '.join(order)}"))
    elif order[0] == "wmc":
        verdict = f"wmc converges first (order {' < '.join(order)})"
    else:
        verdict = f"wmc does NOT converge first: order {' < '.join(order)}"
    rc.write_summary(Path(args.out) / tag / "summary.json",
                     {"command": command, "wall_s": wall, "cells": summary, "verdict": verdict})
    notes = (f"T={args.T} (paper 200/400), {args.epochs} epochs x {args.steps_per_epoch} steps "
             f"of 128 = {args.epochs * args.steps_per_epoch * 128:,} sequences seen (fixed set of "
             f"{args.n_train:,}), test {args.n_test}, seeds {args.seeds}, {args.dtype}, "
             f"joblib n_jobs={args.jobs}, optimizer {args.optimizer} lr {args.lr:g}; {verdict}; "
             f"figure {figure.relative_to(rc.ROOT)}")
    if rc.all_finished_before(runs):
        print("every run was already finished: figure redrawn, the results row kept")
    else:
        rc.record_result(f"adding T={args.T} ({args.optimizer})", command=command, wall_s=wall,
                         ours="; ".join(ours),
                         paper=PAPER.get(args.T, f"paper: T=200/400 only (T=200: {PAPER[200]})"),
                         notes=notes)
    print(verdict)
    for cell, s in summary.items():
        print(cell, s)
    print(f"wall {wall / 60:.1f} min; figure {figure}")


if __name__ == "__main__":
    main()
