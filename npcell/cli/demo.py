"""``npcell demo`` (what ``make demo`` runs).

1. A float64 gradient check of the LSTM, peephole and WMC cells, printed as tables.
2. Forward + backward over a long adding-problem sequence, timed, with the norm of the gradient
   reaching the first input (does it vanish?).
3. The diagnose figure: lstm vs peephole vs wmc on a long adding sequence (cell norm, gate
   saturation, weight-gradient growth with the cell norm, gradient flow over t).
4. The paper's regime (section 3.3): the same three cells with gates opened so that c_t grows
   every step. The peephole's cell term W_kc c grows with ||c|| (eq. 21) and saturates its gates;
   the tanh of the Working Memory Connections bounds it (eq. 14-15).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy

from ..cells import make_cell
from ..diagnostics import compare, diagnose_figure
from ..gradcheck import gradcheck
from ..sequence import backward, forward
from ..tasks.adding import make_batch

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

    print("\n== 3. Diagnose: lstm vs peephole vs wmc on the adding problem ==\n")
    path = diagnose_figure(KINDS, T=args.T, batch=32, out_path=out / "demo_diagnose_adding.png",
                           seed=args.seed)
    print(f"  wrote {path}")

    print("\n== 4. The paper's regime: a cell state that grows every step ==\n")
    path = growing_cell_figure(T=args.T, hidden=args.hidden, seed=args.seed,
                               out_path=out / "demo_growing_cell.png")
    print(f"  wrote {path}")
    print("\ngradcheck:", "PASS" if all_ok else "FAIL")
    return 0 if all_ok else 1


def growing_cell_figure(T=400, hidden=64, seed=0, out_path="figures/demo_growing_cell.png"):
    """lstm, peephole and wmc with the same LSTM weights and gates biased open (b_i = b_f = 4,
    b_g = 1), so c_t gains about i*g ~ 0.7 per step: the setting of the paper's eq. (21)."""
    import matplotlib.pyplot as plt

    rng = numpy.random.default_rng(seed)
    x, y = make_batch(T, 16, rng)
    cells = []
    for kind in KINDS:
        cell = make_cell(kind, 2, hidden, seed=seed)  # same seed: the same LSTM weights
        cell.params["b_i"][...] = 4.0  # input gate open
        cell.params["b_f"][...] = 4.0  # forget gate open: c_t keeps what it has
        cell.params["b_g"][...] = 1.0  # a positive candidate: c_t drifts upwards
        cells.append(cell)
    result = compare(cells, x, y, task=f"adding T={T}, gates open")
    for diag in result:
        print("  " + diag.summary().replace("\n", "\n  "))
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    result.figure.savefig(out_path, dpi=110, metadata={"Software": None})
    plt.close(result.figure)
    return out_path
