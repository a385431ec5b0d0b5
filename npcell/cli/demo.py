"""``npcell demo`` (what ``make demo`` runs).

1. A float64 gradient check of the LSTM, peephole and WMC cells, printed as tables.
2. Forward + backward over a long adding-problem sequence, timed, with the norm of the gradient
   reaching the first input (does it vanish?).
3. The diagnose figure: lstm vs peephole vs wmc on a long adding sequence at PyTorch's init
   (the null case: ‖c‖ stays O(1), so tanh(W_kc c) ~ W_kc c and the three cells agree).
4. The paper's regime (section 3.3), ``npcell diagnose --regime flooding``: the same weights with
   gates half open, so that a positive peephole term W_fc c pushes f towards 1 and c floods;
   the tanh of the Working Memory Connections caps that push (eq. 7-9, 14-15).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy

from ..cells import make_cell
from ..diagnostics import REGIMES, compare, run_regime
from ..gradcheck import gradcheck
from ..plots import comparison_figure, save_figure
from ..sequence import backward, forward
from ..tasks.adding import make_batch
from .diagnose import slope_table

KINDS = ("lstm", "peephole", "wmc")


def add_cli_arguments(parser):
    parser.add_argument("--out", default="figures", help="directory for the figures")
    parser.add_argument("--T", type=int, default=400, help="length of the long adding sequence")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)


def cli_main(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = numpy.random.default_rng(args.seed)

    print("== 1. Gradient check (float64, central differences, every entry) ==\n")
    all_ok = True
    for kind in KINDS:
        cell = make_cell(kind, 3, 4, seed=args.seed)
        x = rng.standard_normal((6, 2, 3))
        report = gradcheck(cell, x, mode="full")
        all_ok &= report.ok
        print(report, end="\n\n")

    print(f"== 2. Forward + backward over an adding sequence, T={args.T}, B=32, "
          f"H={args.hidden} ==\n")
    x, _ = make_batch(args.T, 32, rng)
    for kind in KINDS:
        cell = make_cell(kind, 2, args.hidden, seed=args.seed, forget_bias=1.0)
        start = time.perf_counter()
        h, state, cache = forward(cell, x)
        dh = numpy.zeros_like(h)
        dh[-1] = h[-1]  # the loss 0.5*||h_T||^2 reads only the last step, as in the adding task
        grads, dx, dstate0 = backward(cell, dh, cache)
        seconds = time.perf_counter() - start
        flow = numpy.linalg.norm(dx.reshape(args.T, -1), axis=1)
        print(f"  {kind:<9} {seconds * 1e3:7.1f} ms  |dL/dx_T| = {flow[-1]:.2e}  "
              f"|dL/dx_1| = {flow[0]:.2e}  (ratio {flow[0] / max(flow[-1], 1e-300):.1e})")

    print("\n== 3. Diagnose: lstm vs peephole vs wmc on the adding problem (PyTorch's init) ==\n")
    x, y = make_batch(args.T, 32, numpy.random.default_rng(args.seed))
    cells = [make_cell(kind, 2, args.hidden, seed=args.seed) for kind in KINDS]
    result = compare(cells, x, y, task=f"adding T={args.T}", seed=args.seed)
    path = save_figure(comparison_figure(result, caption=REGIMES["pytorch-init"].claim),
                       out / "demo_diagnose_adding.png")
    print(f"  {result.takeaway()}\n  wrote {path}")

    print("\n== 4. The paper's regime: a cell state that grows (npcell diagnose --regime "
          "flooding) ==\n")
    result = run_regime("flooding", KINDS, seed=args.seed)
    print("  " + slope_table(result).replace("\n", "\n  "))
    path = save_figure(comparison_figure(result), out / "demo_growing_cell.png")
    print(f"  {result.takeaway()}\n  wrote {path}")
    print("\ngradcheck:", "PASS" if all_ok else "FAIL")
    return 0 if all_ok else 1
