"""Reproduce the WMC paper's copying task (section 4.1, Fig. 3 centre): lstm vs peephole vs wmc.

Paper setup: Arjovsky's copying memory with T = 100 and 200, H = 128, SGD Nesterov lr 1e-2
momentum 0.9, batch 128, clip 1.0, 500 epochs, test accuracy every epoch. Our convention and the
memoryless baseline 10 ln 8 / (T + 20) are documented in npcell/tasks/copying.py. Accuracy is
measured on the 10 answer steps (chance: 1/8).

The paper's setup (days of CPU)::

    python scripts/repro_copy.py --T 200 --hidden 128 --epochs 500 --steps-per-epoch 0 \
        --seeds 0 1 2 --jobs 2

Slow; not part of `make test`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import repro_common as rc  # noqa: E402

PAPER = {
    100: "wmc best final accuracy and convergence (Fig. 3, no table)",
    200: "wmc ahead of peephole by ~25 and of lstm by ~40 accuracy points (Fig. 3, text)",
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    rc.common_arguments(p, cells=("lstm", "peephole", "wmc"), epochs=20, steps_per_epoch=50,
                        hidden=64)
    p.add_argument("--T", type=int, default=100)
    p.add_argument("--n-train", type=int, default=6_400)
    p.add_argument("--n-test", type=int, default=512)
    p.add_argument("--out", default="runs/repro_copy")
    args = p.parse_args(argv)
    base = dict(task="copy", task_options={"T": args.T, "n_train": args.n_train,
                                           "n_test": args.n_test},
                batch=128, optimizer="sgd", lr=1e-2, momentum=0.9, nesterov=True, clip=1.0,
                log_every=25)
    rc.compare_cells(args, experiment=f"copy T={args.T}", base_config=base,
                     metric_label="answer accuracy", higher_is_better=True, baseline=1 / 8,
                     baseline_label="chance (1/8)", paper=PAPER.get(args.T, PAPER[200]),
                     notes=f"T={args.T}, {args.n_train:,} training sequences;")


if __name__ == "__main__":
    main()
