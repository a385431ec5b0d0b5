"""``npcell stepper``: write the BPTT stepper of a cell as one self-contained HTML page.

    npcell stepper --cell wmc --T 12 --out page.html
    npcell stepper --cell wmc --T 12 --student wmc.py --out check.html   # check mode
    npcell stepper --cell wmc --compare lstm peephole --out compare.html

The input is seeded standard-normal noise x (T, B, X) times ``--x-scale``; the loss reads the
last step (``--loss last``) or every step (``--loss every``).
"""

from __future__ import annotations

from pathlib import Path

import numpy

from ..cells import make_cell
from ..errors import UsageError
from ..stepper import stepper
from ..stepper.record import REFERENCE


def add_cli_arguments(parser):
    kinds = sorted(REFERENCE)
    parser.add_argument("--cell", choices=kinds, default="wmc", help="the cell to walk")
    parser.add_argument("--compare", nargs="*", choices=kinds, default=[], metavar="KIND",
                        help="other cells on the same input, side by side (lstm, peephole, wmc)")
    parser.add_argument("--T", type=int, default=12, help="sequence length")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--input", type=int, default=3, help="input size X")
    parser.add_argument("--hidden", type=int, default=8, help="hidden size H")
    parser.add_argument("--x-scale", type=float, default=1.0, help="scale of the random input")
    parser.add_argument("--loss", choices=("last", "every"), default="last",
                        help="the loss reads h at the last step, or at every step")
    parser.add_argument("--mode", choices=("backward", "forward"), default="backward")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--student", default=None, metavar="FILE",
                        help="a student's file from `npcell exercises new CELL`: check mode")
    parser.add_argument("--out", required=True, help="the HTML file to write")


def cli_main(args) -> int:
    for name in ("T", "batch", "input", "hidden"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1; got {getattr(args, name)}")
    out = Path(args.out)
    if not out.parent.is_dir():
        raise UsageError(f"--out: folder {out.parent} does not exist")
    kinds = [args.cell] + [k for k in dict.fromkeys(args.compare) if k != args.cell]
    cells = [make_cell(k, args.input, args.hidden, seed=args.seed) for k in kinds]
    rng = numpy.random.default_rng(args.seed)
    x = args.x_scale * rng.standard_normal((args.T, args.batch, args.input))
    view = stepper(cells, x, student=args.student, loss=args.loss, seed=args.seed,
                   mode=args.mode)
    view.save_html(out)
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB): {view!r}")
    if view.check is not None:
        print(view.check.line())
    return 0
