"""``npcell bench`` moved out of the wheel; this command says where it went.

The benchmarks time npcell against PyTorch twins of its cells, and those twins are benchmark
code of the source checkout (benchmarks/torch_baselines.py), not part of the wheel (DESIGN
section 7). So the benchmark runner lives beside them, in benchmarks/bench.py.
"""

from __future__ import annotations

import sys

MOVED = ("npcell bench moved out of the wheel, next to the PyTorch twins it times npcell "
         "against: from a source checkout run `python benchmarks/bench.py --quick` (or "
         "`make bench` for the full set; --help lists the options)")


def add_cli_arguments(parser):
    parser.set_defaults(_any_arguments=True)  # whatever follows, the answer is where it went


def cli_main(args) -> int:
    print(MOVED, file=sys.stderr)
    return 2
