"""Measure gradcheck's promise: with default settings it never fails a correct backward.

Draws random correct cases (every cell kind and structural option, random shapes, seeds and
parameter scales, float64 and float32, the fused path on and off, fast and full mode), runs
``npcell.gradcheck`` with its defaults, and counts the failures (each one a false fail: npcell's
own backward is correct). tests/test_gradcheck_promise.py runs a few hundred of these cases in
``make test``; this script runs thousands::

    python scripts/gradcheck_false_fails.py --cases 2000 --seed 0

It prints one line per failing case and a summary by kind and dtype, with the worst margin
(max relative error / tol; a pass is <= 1).
"""

from __future__ import annotations

import argparse
import collections
import time
import warnings

import numpy as np

import npcell
from npcell.engine import fused_pair

WRITES, QUERIES = ("prev_h", "prelim"), ("new_A", "old_A")
COMBOS = [
    ("lstm", {}), ("lstm", {"forget_bias": 1.0}),
    ("peephole", {"diagonal": True}), ("peephole", {"diagonal": False}),
    *[("wmc", {"diagonal": d, "cell_bias": b}) for d in (False, True) for b in (False, True)],
    ("gru", {"reset_after": False}), ("gru", {"reset_after": True}),
    ("ulstm", {"use_o": True}), ("ulstm", {"use_o": False}),
    *[("fw_rnn", {"S": S, "fw_write": w, "fw_query": q})
      for S in (1, 2) for w in WRITES for q in QUERIES],
    *[("fw_lstm", {"variant": "A", "fw_write": w, "fw_query": q}) for w in WRITES for q in QUERIES],
    *[("fw_lstm", {"variant": "B", "fw_query": q}) for q in QUERIES],
    ("ln_lstm", {"ln_style": "tf"}), ("ln_lstm", {"ln_style": "ba2016"}),
    ("teaching", {"candidate_act": "tanh"}), ("teaching", {"candidate_act": "sigmoid"}),
]


def random_case(rng):
    """One random correct case: (description, cell, x, state, gradcheck keywords)."""
    kind, options = COMBOS[rng.integers(len(COMBOS))]
    T, B, X, H = (int(rng.integers(1, n + 1)) for n in (6, 3, 4, 6))
    seed = int(rng.integers(2**20))
    dtype = "float32" if rng.random() < 0.3 else "float64"
    cell = npcell.make_cell(kind, X, H, seed=seed, **options)
    if rng.random() < 0.5:  # move every parameter off its init (gains 1, W_hh = 0.05 I, ...)
        cell.set_params({n: rng.uniform(-1.0, 1.0, p.shape) for n, p in cell.params.items()})
    x = rng.standard_normal((T, B, X))
    state = {n: 0.7 * rng.standard_normal(s) for n, s in cell.state_shapes(B).items()}
    if dtype == "float32":
        cell = cell.astype("float32")
        x = x.astype("float32")
        state = {n: v.astype("float32") for n, v in state.items()}
    fused = bool(rng.random() < 0.5) if fused_pair(cell) is not None else None
    mode = "full" if rng.random() < 0.3 else "fast"
    name = (f"{kind}{options or ''} T={T} B={B} X={X} H={H} seed={seed} {dtype} "
            f"fused={fused} mode={mode}")
    return name, cell, x, state, dict(mode=mode, fused=fused, seed=seed)


def run(cases, seed=0, verbose=True):
    """Run ``cases`` random correct cases; returns (failures, cases and worst error / tol by
    (kind, dtype), settled
    rows by how)."""
    rng = np.random.default_rng(seed)
    counts = collections.Counter()
    worst = collections.defaultdict(float)
    failures = []
    settled = collections.Counter()  # rows settled by the complex step / called kinks
    for _ in range(cases):
        name, cell, x, state, kw = random_case(rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the float32 notice
            report = npcell.gradcheck(cell, x, state, **kw)
        key = (cell.kind, cell.dtype.name)
        counts[key] += 1
        worst[key] = max(worst[key], max((r.max_rel_error / r.tol for r in report.rows
                                          if not r.settled), default=0.0))
        settled["complex step"] += sum("complex step agrees" in r.hint for r in report.rows)
        settled["kink"] += sum(r.settled == "kink" for r in report.rows)
        settled["float64 twin"] += sum(r.settled == "float64" for r in report.rows)
        if not report.ok:
            failures.append((name, report))
            if verbose:
                print("FALSE FAIL", name)
                print(report)
    return failures, counts, worst, settled


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    failures, counts, worst, settled = run(args.cases, args.seed)
    print(f"\n{sum(counts.values())} random correct cases, {len(failures)} false fails, "
          f"{time.perf_counter() - start:.0f} s")
    print(f"rows that central differences failed and the check settled: by the complex step "
          f"{settled['complex step']}, float32 rows by their float64 twin "
          f"{settled['float64 twin']}, at a kink (no verdict) {settled['kink']}")
    print(f"{'kind':<10}{'dtype':<9}{'cases':>7}{'worst error/tol':>17}  (rows not settled)")
    for key in sorted(counts):
        print(f"{key[0]:<10}{key[1]:<9}{counts[key]:>7}{worst[key]:>17.2e}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
