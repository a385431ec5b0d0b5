"""Multi-seed adding-problem replication (issue 25, claims A and B): steps to solve, per seed.

The WMC paper (Fig. 3) says that on the adding problem at T=200 all three cells solve it and WMC
converges first, and that at T=400 only WMC leaves the 1/6 baseline (SGD-Nesterov, H=128). Here
every cell trains with fresh sequences at every step (no fixed training set), the test MSE is
measured every ``--eval-every`` steps on ``--n-test`` held-out sequences, and a run stops when its
test MSE falls below ``--stop-below`` (solved) or at ``--steps`` (the cap).

Per run it records the first step with test MSE < 0.1 and < 0.01 (``None``: never within the cap),
the last test MSE, steps/s and wall time, in ``OUT/summary.json``, and copies that file to
``docs/replication/<tag>.json`` where docs/results.md reads it. Claim A::

    python scripts/replicate_adding.py --T 200 --seeds 0 1 2 3 4 --jobs 2

Claim B (the paper's optimiser at the same size; T=400 with Adam)::

    python scripts/replicate_adding.py --T 200 --optimizer sgd --lr 1e-2 --seeds 0
    python scripts/replicate_adding.py --T 400 --cells lstm wmc --seeds 0

One BLAS thread per run; each run checkpoints every eval and resumes when started again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import repro_common as rc  # noqa: E402

THRESHOLDS = (0.1, 0.01)


def run_row(run, cap):
    tests = [r for r in run["history"] if r["split"] == "test"]
    steps, mse = [r["step"] for r in tests], [r["metric"] for r in tests]
    return {"cell": run["cell"], "seed": run["seed"],
            **{f"steps_below_{t:g}": rc.first_epoch_below(steps, mse, t) for t in THRESHOLDS},
            "last_step": tests[-1]["step"], "last_test_mse": tests[-1]["metric"],
            "min_test_mse": min(r["metric"] for r in tests), "cap": cap,
            "steps_per_s": run["steps_per_s"], "wall_s": run["wall_s"]}


def collect(configs, out_root):
    """The sweep's rows read from its run directories (metrics.jsonl), for runs that exist."""
    from npcell.training import rundir
    from npcell.training.sweep import run_dirs

    rows = []
    for config, directory in zip(configs, run_dirs(configs, out_root)):
        history = rundir.read_metrics(directory)
        if not history:
            continue
        wall, last_step = history[-1]["wall_s"], history[-1]["step"]
        rows.append({"cell": config.cell, "seed": config.seed, "history": history,
                     "steps_per_s": last_step / wall if wall else 0.0, "wall_s": wall})
    return rows


def write_summary(args, tag, setup, rows, wall_s, launch_commit):
    """``OUT/<tag>/summary.json`` and ``SUMMARY_DIR/<tag>.json``: per-run rows plus what a
    results row must record (command, commit, dtype, BLAS threads, seeds, wall and CPU time)."""
    summary = {"command": rc.command_line(), "commit": launch_commit, "dtype": args.dtype,
               "blas_threads": 1, "seeds": args.seeds, "machine": rc.machine(),
               "wall_s": wall_s, "cpu_s": sum(r["wall_s"] for r in rows), "setup": setup,
               "runs": rows}
    for path in (Path(args.out) / tag / "summary.json", Path(args.summary_dir) / f"{tag}.json"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--T", type=int, default=200)
    p.add_argument("--cells", nargs="+", default=["lstm", "peephole", "wmc"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--optimizer", default="adam", choices=["sgd", "adam"])
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--steps", type=int, default=20_000, help="the cap on optimiser steps")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--n-test", type=int, default=512)
    p.add_argument("--stop-below", type=float, default=0.01,
                   help="stop a run once its test MSE is below this (0: never stop early)")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--jobs", type=int, default=1, help="joblib worker processes")
    p.add_argument("--cluster", metavar="ADDRESS", help="a dask.distributed scheduler")
    p.add_argument("--out", default="runs/replicate_adding")
    p.add_argument("--tag", help="name of the summary (default: adding_T<T>_<optimizer>)")
    p.add_argument("--collect", action="store_true",
                   help="train nothing: summarise the run directories as they are (partial "
                        "runs say how far they got)")
    p.add_argument("--summary-dir", default=str(rc.ROOT / "docs" / "replication"),
                   help="where <tag>.json goes (docs/results.md reads docs/replication)")
    args = p.parse_args(argv)

    from npcell.training import TrainConfig

    if args.steps % args.eval_every:
        p.error(f"--steps must be a multiple of --eval-every; got {args.steps} and "
                f"{args.eval_every}")
    tag = args.tag or f"adding_T{args.T}_{args.optimizer}"
    momentum = dict(momentum=0.9, nesterov=True) if args.optimizer == "sgd" else dict(
        momentum=0.0, nesterov=False)
    configs = [
        TrainConfig(task="adding",
                    task_options={"T": args.T, "n_train": args.batch * args.eval_every,
                                  "n_test": args.n_test, "fresh": True},
                    cell=cell, hidden=args.hidden, batch=args.batch, optimizer=args.optimizer,
                    lr=args.lr, clip=1.0, epochs=args.steps // args.eval_every,
                    steps_per_epoch=args.eval_every, dtype=args.dtype, seed=seed,
                    log_every=args.eval_every, stop_below=args.stop_below or None, **momentum)
        for seed in args.seeds for cell in args.cells
    ]
    t0 = time.perf_counter()
    launch_commit = rc.commit()  # the code that trains, even if the checkout moves on meanwhile
    if args.collect:
        runs = collect(configs, Path(args.out) / tag)
    else:
        runs = rc.run_sweep(configs, Path(args.out) / tag, n_jobs=args.jobs, cluster=args.cluster)
    rows = [run_row(r, args.steps) for r in runs]
    setup = {k: getattr(args, k) for k in ("T", "hidden", "batch", "optimizer", "lr", "steps",
                                           "eval_every", "n_test", "stop_below")}
    write_summary(args, tag, setup, rows, time.perf_counter() - t0, launch_commit)
    for r in rows:
        print(f"{r['cell']:>9} seed {r['seed']}: < 0.1 at {r['steps_below_0.1']}, "
              f"< 0.01 at {r['steps_below_0.01']}, last MSE {r['last_test_mse']:.4f} "
              f"(step {r['last_step']}), {r['steps_per_s']:.1f} steps/s")


if __name__ == "__main__":
    main()
