"""Character-level language modelling in bits per character (WMC paper section 4.3, Table 2).

The paper trains on Penn Treebank (single-layer AWD-LSTM recipe, 512 hidden units, BPTT 150 and
300): LSTM 1.386, LSTM-PH 1.383, LSTM-WM 1.299 BPC at T = 150. PTB is not redistributable, so by
default this script uses the bundled public-domain tinyshakespeare corpus (1.1 M characters,
npcell/tasks/data); ``--text pydoc`` the standard library's help texts, ``--text FILE`` any
UTF-8 file. Numbers on another corpus are not
comparable to the paper's; the ordering of the cells is what to look at.

    python scripts/repro_charlm.py                               # CPU-sized
    python scripts/repro_charlm.py --text ptb.char.train.txt --hidden 512 --T 150 \
        --epochs 50 --steps-per-epoch 0 --seeds 0 1 2            # closer to the paper

Slow; not part of `make test`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parent))

import repro_common as rc  # noqa: E402

PAPER = ("PTB test BPC, 512 units, T=150: lstm 1.386, peephole 1.383, wmc 1.299 "
         "(fixed ~2.2M params: 1.334 / 1.339 / 1.299) (Table 2)")


def unigram_bpc(text, T) -> float:
    """Test BPC of the best context-free guess: the training part's character frequencies."""
    from npcell.tasks import make_task

    task = make_task("charlm", text=text, T=T)
    counts = numpy.bincount(task.batch("train", numpy.arange(task.size("train"))).y.ravel(),
                            minlength=task.num_outputs) + 1.0  # add-one: no infinite surprise
    test_y = task.batch("test", numpy.arange(task.size("test"))).y.ravel()
    return float(-numpy.log2(counts[test_y] / counts.sum()).mean())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    rc.common_arguments(p, cells=("lstm", "peephole", "wmc"), epochs=10, steps_per_epoch=50,
                        hidden=128)
    p.add_argument("--text", default="bundled",
                   help="'bundled' (tinyshakespeare), 'pydoc' or a file path")
    p.add_argument("--T", type=int, default=100)
    p.add_argument("--embedding", type=int, default=32)
    p.add_argument("--out", default="runs/repro_charlm")
    args = p.parse_args(argv)
    text = None if args.text == "bundled" else args.text
    corpus = "tinyshakespeare" if text is None else args.text
    base = dict(task="charlm", task_options={"text": text, "T": args.T}, batch=64,
                embedding=args.embedding, optimizer="adam", lr=2e-3, momentum=0.0,
                nesterov=False, clip=0.25, log_every=10, eval_splits=("valid", "test"))
    unigram = unigram_bpc(text, args.T)
    rc.compare_cells(args, experiment=f"char LM ({corpus}, T={args.T})", base_config=base,
                     metric_label="BPC", higher_is_better=False, paper=PAPER,
                     baseline=unigram, baseline_label=f"unigram, no context ({unigram:.2f})",
                     notes=f"text {corpus}, windows of T={args.T} from a zero state, "
                           f"embedding {args.embedding}, Adam 2e-3, batch 64;")


if __name__ == "__main__":
    main()
