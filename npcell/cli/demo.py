"""``npcell demo`` (what ``make demo`` runs).

1. A float64 gradient check of the LSTM, peephole and WMC cells, printed as tables.
2. Forward + backward over a long adding-problem sequence, timed after one untimed warm-up call
   (the first call compiles the fused kernels), with the norm of the gradient reaching the
   first input (does it vanish?).
3. The diagnose figure: lstm vs peephole vs wmc on a long adding sequence at PyTorch's init,
   ``npcell diagnose --regime pytorch-init`` (the null case: ‖c‖ stays O(1), so
   tanh(W_kc c) ~ W_kc c and the three cells agree).
4. The paper's regime (section 3.3), ``npcell diagnose --regime flooding``: the same weights with
   gates half open, so that a positive peephole term W_fc c pushes f towards 1 and c floods;
   the tanh of the Working Memory Connections caps that push (eq. 7-9, 14-15).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy

from ..cells import make_cell
from ..diagnostics import run_regime
from ..gradcheck import gradcheck
from ..plots import comparison_figure, save_figure
from ..sequence import backward, forward
from ..tasks.adding import make_batch
from .diagnose import slope_table

KINDS = ("lstm", "peephole", "wmc")


def add_cli_arguments(parser):
    parser.add_argument("--out", default="figures", help="directory for the figures")
    parser.add_argument("--T", type=int, default=400,
                        help="length of the step-2 sequence (steps 3 and 4 use their regimes' "
                             "settings)")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)


def forward_backward(cell, x):
    """(seconds, dx) of one forward + backward, with the loss 0.5 ||h_T||^2 read only at the
    last step, as in the adding task."""
    start = time.perf_counter()
    h, _, cache = forward(cell, x)
    dh = numpy.zeros_like(h)
    dh[-1] = h[-1]
    _, dx, _ = backward(cell, dh, cache)
    return time.perf_counter() - start, dx


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
        first = forward_backward(cell, x)[0]  # warm-up: the first call compiles the kernels
        seconds, dx = forward_backward(cell, x)
        flow = numpy.linalg.norm(dx.reshape(args.T, -1), axis=1)
        print(f"  {kind:<9} {seconds * 1e3:7.1f} ms (first call {first * 1e3:.0f} ms)  "
              f"|dL/dx_T| = {flow[-1]:.2e}  |dL/dx_1| = {flow[0]:.2e}  "
              f"(ratio {flow[0] / max(flow[-1], 1e-300):.1e})")
    print("  (timed after one warm-up call: the first call also compiles the fused kernels)")

    print("\n== 3. Diagnose: lstm vs peephole vs wmc on the adding problem (PyTorch's init) ==\n")
    result = run_regime("pytorch-init", KINDS, seed=args.seed)
    path = save_figure(comparison_figure(result), out / "demo_diagnose_adding.png")
    print(f"  {result.takeaway()}\n  wrote {path}")

    print("\n== 4. The paper's regime: a cell state that grows (npcell diagnose --regime "
          "flooding) ==\n")
    result = run_regime("flooding", KINDS, seed=args.seed)
    print("  " + slope_table(result).replace("\n", "\n  "))
    path = save_figure(comparison_figure(result), out / "demo_growing_cell.png")
    print(f"  {result.takeaway()}\n  wrote {path}")
    print("\ngradcheck:", "PASS" if all_ok else "FAIL")
    return 0 if all_ok else 1
