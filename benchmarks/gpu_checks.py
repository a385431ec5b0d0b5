"""The Python parts of benchmarks/gpu_check.sh, one per call so each gets its own time limit.

    python3 benchmarks/gpu_checks.py PART OUTDIR [--dry-run] [--budget-s S]

PART is one of

* ``gradcheck``: float64 full gradcheck of every cell kind on the GPU (default path, and the
  plain-LSTM ElementwiseKernels) -> OUTDIR/gradcheck.json
* ``equality``: GPU vs CPU, same weights and inputs, forward (h, final state) and every gradient
  (dL/dW, dx, dstate0), float64 and float32, every kind -> OUTDIR/equality.json
* ``kernels``: the plain CuPy path vs the ElementwiseKernels for lstm at the bench shapes:
  max difference of every output and gradient, and the time of each -> OUTDIR/kernels.json
* ``bench``: npcell on CuPy vs torch CUDA (nn.LSTM / nn.GRU with cuDNN, and the eager autograd
  loop for lstm, peephole, wmc, ulstm) at the bench shapes plus H=512 and H=1024
  -> OUTDIR/bench_gpu.json (rewritten after every case, so a timeout keeps what was measured)

Every JSON is rewritten as results arrive. Exit status 1 when a check fails (the bench fails
only on an exception). ``--dry-run`` (no GPU): tests/fake_cupy.py stands in for CuPy, torch runs
on the CPU, shapes are tiny: everything but the device itself is exercised.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np

import npcell
from npcell import bench, engine
from npcell.backend import to_numpy

REPO = Path(__file__).resolve().parent.parent
PARTS = ("gradcheck", "equality", "kernels", "bench")


def _setup(dry_run):
    """The cupy module to use: real CuPy, or the CPU double for a dry run."""
    if dry_run:
        sys.path.insert(0, str(REPO / "tests"))
        import fake_cupy

        return fake_cupy.install()
    import cupy

    if not cupy.is_available():
        raise SystemExit("gpu_checks: cupy.is_available() is False; use --dry-run on a CPU")
    return cupy


class Results:
    """A list of records written to OUTDIR/NAME.json after every append."""

    def __init__(self, out, name, meta):
        self.path = Path(out) / f"{name}.json"
        self.data = {"meta": meta, "results": []}
        self.write()

    def add(self, record):
        self.data["results"].append(record)
        self.write()
        print(json.dumps({k: v for k, v in record.items() if k != "report"}), flush=True)

    def write(self):
        self.path.write_text(json.dumps(self.data, indent=1, default=str) + "\n")


def _host(a):
    return to_numpy(a).astype(np.float64)


def _max_rel_diff(a, b) -> float:
    """max |a - b| / max(max |b|, 1e-30): one number per tensor, scale-free."""
    a, b = _host(a), _host(b)
    return float(np.abs(a - b).max(initial=0.0) / max(float(np.abs(b).max(initial=0.0)), 1e-30))


def _compare(out, ref) -> dict:
    """{tensor name: max relative difference} over h, final state, grads, dx, dstate0."""
    (h, state, grads, dx, d0), (h_r, state_r, grads_r, dx_r, d0_r) = out, ref
    diffs = {"h": _max_rel_diff(h, h_r), "dx": _max_rel_diff(dx, dx_r)}
    diffs.update({f"state_T[{k}]": _max_rel_diff(state[k], state_r[k]) for k in state_r})
    diffs.update({f"dstate0[{k}]": _max_rel_diff(d0[k], d0_r[k]) for k in d0_r})
    diffs.update({f"dL/d{k}": _max_rel_diff(grads[k], grads_r[k]) for k in grads_r})
    return diffs


def _run(cell, x, dh, fused=None):
    h, state, cache = npcell.forward(cell, x, fused=fused)
    grads, dx, d0 = npcell.backward(cell, dh, cache)
    return h, state, grads, dx, d0


def _case(kind, T, B, X, H, dtype, seed=0):
    rng = np.random.default_rng(seed)
    cpu = npcell.make_cell(kind, X, H, dtype=dtype, seed=seed, backend="numpy")
    x = rng.standard_normal((T, B, X)).astype(dtype)
    dh = rng.standard_normal((T, B, H)).astype(dtype)
    return cpu, cpu.to("cupy"), x, dh


def _guarded(results, base, fn):
    """Run one check; an exception becomes a failed record, and the part goes on."""
    start = time.perf_counter()
    try:
        record = dict(base, **fn())
    except Exception:  # noqa: BLE001 - record it and go on to the next case
        record = dict(base, ok=False, error=traceback.format_exc(limit=6))
    record["seconds"] = round(time.perf_counter() - start, 3)
    results.add(record)
    return record["ok"]


# ============================================================================================
def part_gradcheck(cp, out, dry_run, budget_s):

    results = Results(out, "gradcheck", {"what": "float64 full gradcheck on the GPU"})
    ok = True
    for kind in sorted(npcell.CELLS):
        for kernels_on in ([False, True] if kind == "lstm" else [False]):
            def check(kind=kind, kernels_on=kernels_on):
                _, gpu, x, _ = _case(kind, T=3, B=2, X=2, H=4, dtype="float64")
                with engine.use_fused_kernels(kernels_on):
                    report = npcell.gradcheck(gpu, cp.asarray(x), mode="full")
                failing = [r.name for r in report.rows if not r.ok]
                return {"ok": bool(report.ok), "max_rel_error": float(report.max_rel_error),
                        "failing_rows": failing, "report": str(report)}

            ok &= _guarded(results, {"kind": kind, "elementwise_kernels": kernels_on}, check)
    return ok


TOLERANCE = {"float64": 1e-9, "float32": 2e-3}  # max relative difference, GPU vs CPU


def part_equality(cp, out, dry_run, budget_s):
    results = Results(out, "equality", {"what": "GPU vs CPU: forward and every gradient",
                                        "tolerance": TOLERANCE})
    ok = True
    T, B, X, H = (6, 3, 3, 8) if dry_run else (40, 16, 8, 64)
    for dtype in ("float64", "float32"):
        for kind in sorted(npcell.CELLS):
            def check(kind=kind, dtype=dtype):
                cpu, gpu, x, dh = _case(kind, T, B, X, H, dtype)
                diffs = _compare(_run(gpu, cp.asarray(x), cp.asarray(dh)), _run(cpu, x, dh))
                worst = max(diffs, key=diffs.get)
                return {"ok": diffs[worst] <= TOLERANCE[dtype], "max_rel_diff": diffs[worst],
                        "worst_tensor": worst, "diffs": diffs}

            ok &= _guarded(results, {"kind": kind, "dtype": dtype, "shape": [T, B, X, H]},
                           check)
    return ok


def part_kernels(cp, out, dry_run, budget_s):
    results = Results(out, "kernels", {"what": "lstm: plain CuPy path vs ElementwiseKernels",
                                       "tolerance": TOLERANCE})
    sync = cp.cuda.Device().synchronize
    ok = True
    for dtype in ("float64", "float32"):
        for name, (B, T, X, H) in (bench.QUICK_SHAPES if dry_run else bench.SHAPES).items():
            def check(dtype=dtype, B=B, T=T, X=X, H=H):
                _, gpu, x, dh = _case("lstm", T, B, X, H, dtype)
                x, dh = cp.asarray(x), cp.asarray(dh)
                times, outputs = {}, {}
                for label, on in (("plain", False), ("kernels", True)):
                    with engine.use_fused_kernels(on):
                        outputs[label] = _run(gpu, x, dh)  # warm-up (and compile)
                        runs = []
                        for _ in range(1 if dry_run else 3):
                            sync()
                            start = time.perf_counter()
                            _run(gpu, x, dh)
                            sync()
                            runs.append(time.perf_counter() - start)
                        times[label] = float(np.median(runs))
                diffs = _compare(outputs["kernels"], outputs["plain"])
                worst = max(diffs, key=diffs.get)
                return {"ok": diffs[worst] <= TOLERANCE[dtype], "max_rel_diff": diffs[worst],
                        "worst_tensor": worst, "plain_ms": times["plain"] * 1e3,
                        "kernels_ms": times["kernels"] * 1e3,
                        "speedup": times["plain"] / times["kernels"]}

            ok &= _guarded(results, {"kind": "lstm", "shape": name, "B": B, "T": T, "X": X,
                                     "H": H, "dtype": dtype}, check)
    return ok


# The bench shapes plus the wide ones the issue asks for (the adding shape at H=512 and 1024).
WIDE_SHAPES = {"adding-H512": (128, 200, 2, 512), "adding-H1024": (128, 200, 2, 1024)}
DRY_WIDE_SHAPES = {"adding-H512": (8, 6, 2, 24), "adding-H1024": (8, 6, 2, 32)}
BENCH_KINDS = ("lstm", "peephole", "wmc", "gru", "ulstm")


def bench_plan(dry_run):
    """(kind, shape name, (B, T, X, H), dtype, elementwise kernels) in the order they run:
    float32 first (the fast path people use), the LSTM first in each shape; float64 after, as
    far as the time budget goes."""
    shapes = dict(bench.QUICK_SHAPES if dry_run else bench.SHAPES)
    shapes.update(DRY_WIDE_SHAPES if dry_run else WIDE_SHAPES)
    plan = []
    for dtype in ("float32", "float64"):
        for name, shape in shapes.items():
            for kind in BENCH_KINDS:
                if name == "latency" and kind != "lstm":
                    continue  # the latency case is about the per-step overhead of the loop
                plan.append((kind, name, shape, dtype, False))
                if kind == "lstm":
                    plan.append((kind, name, shape, dtype, True))
    return plan


def part_bench(cp, out, dry_run, budget_s):
    device = bench.Device("gpu")
    torch = bench._torch()
    torch_cuda = torch is not None and torch.cuda.is_available()
    if not torch_cuda:
        if not dry_run:
            raise SystemExit("gpu_checks bench: torch has no CUDA here")
        device.torch_device = "cpu"  # the dry run: the baselines' code path on the CPU
    meta = dict(machine=bench.machine_info(), threads=bench.pin_threads(1), device=device.info(),
                quick=dry_run, repeats=1 if dry_run else 3, warmup=1,
                timer="median of time.perf_counter, device synchronised around each run",
                torch=getattr(torch, "__version__", None),
                cudnn=torch.backends.cudnn.version() if torch_cuda else None,
                torch_device=device.torch_device, budget_s=budget_s,
                started=time.strftime("%Y-%m-%d %H:%M:%S"), not_run=[])
    results = Results(out, "bench_gpu", meta)
    start = time.perf_counter()
    last = 0.0
    for kind, name, (B, T, X, H), dtype, kernels_on in bench_plan(dry_run):
        elapsed = time.perf_counter() - start
        if elapsed + 1.5 * last > budget_s:  # the next case would likely not finish in time
            meta["not_run"].append(f"{kind} {name} {dtype}{' kernels' if kernels_on else ''}")
            results.write()
            continue
        t0 = time.perf_counter()
        try:
            record = bench.bench_case(kind, name, B, T, X, H, dtype, device,
                                      repeats=meta["repeats"], warmup=meta["warmup"],
                                      fused_kernels=kernels_on)
        except Exception:  # noqa: BLE001 - record it and go on
            record = dict(kind=kind, shape=name, B=B, T=T, X=X, H=H, dtype=dtype,
                          fused_kernels=kernels_on, error=traceback.format_exc(limit=6))
        last = time.perf_counter() - t0
        record["case_seconds"] = round(last, 2)
        results.add(record)
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    results.write()
    (Path(out) / "bench_gpu.md").write_text(bench.markdown_table(results.data))
    return not any("error" in r for r in results.data["results"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=PARTS)
    parser.add_argument("out")
    parser.add_argument("--dry-run", action="store_true",
                        help="no GPU: the CPU double of CuPy, torch on the CPU, tiny shapes")
    parser.add_argument("--budget-s", type=float, default=200.0,
                        help="bench: start no case that would end after this many seconds")
    args = parser.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    cp = _setup(args.dry_run)
    part = globals()[f"part_{args.part}"]
    return 0 if part(cp, args.out, args.dry_run, args.budget_s) else 1


if __name__ == "__main__":
    sys.exit(main())
