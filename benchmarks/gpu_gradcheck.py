"""GPU checks for benchmarks/gpu_check.sh: float64 gradcheck of every cell kind on the GPU and a
GPU-vs-CPU equality check (same seed, same weights), both with and without the fused kernels.

Usage (repo root, PYTHONPATH=.): python3 benchmarks/gpu_gradcheck.py OUTDIR
Writes OUTDIR/gpu_gradcheck.json and OUTDIR/gpu_gradcheck.txt; exit 1 if anything fails.
"""

import json
import sys
import traceback
from pathlib import Path

import numpy as np

import npcell
from npcell import engine
from npcell.backend import to_numpy


def run_kind(kind, fused_kernels):
    import cupy

    rng = np.random.default_rng(0)
    T, B, X, H = 4, 3, 2, 5
    cpu = npcell.make_cell(kind, X, H, dtype="float64", seed=0, backend="numpy")
    gpu = cpu.to("cupy")
    x = rng.standard_normal((T, B, X))
    dh = rng.standard_normal((T, B, H))
    row = {"kind": kind, "fused_kernels": fused_kernels}
    with engine.use_fused_kernels(fused_kernels):
        report = npcell.gradcheck(gpu, cupy.asarray(x), mode="full")
        row["gradcheck_ok"] = bool(report.ok)
        row["gradcheck_max_rel_error"] = float(report.max_rel_error)
        row["gradcheck_report"] = str(report)
        diffs = {}
        h_c, _, cache_c = npcell.forward(cpu, x)
        g_c, dx_c, _ = npcell.backward(cpu, dh, cache_c)
        h_g, _, cache_g = npcell.forward(gpu, cupy.asarray(x))
        g_g, dx_g, _ = npcell.backward(gpu, cupy.asarray(dh), cache_g)
        diffs["h"] = float(np.abs(to_numpy(h_g) - h_c).max())
        diffs["dx"] = float(np.abs(to_numpy(dx_g) - dx_c).max())
        diffs["grads"] = max(float(np.abs(to_numpy(g_g[k]) - g_c[k]).max()) for k in g_c)
    row["gpu_vs_cpu_max_abs_diff"] = diffs
    row["gpu_equals_cpu"] = max(diffs.values()) < 1e-10
    return row


def main(out_dir):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, ok = [], True
    for kind in sorted(npcell.CELLS):
        for fused_kernels in ([False, True] if kind == "lstm" else [False]):
            try:
                row = run_kind(kind, fused_kernels)
            except Exception:  # noqa: BLE001 - record and go on to the next kind
                row = {"kind": kind, "fused_kernels": fused_kernels, "error":
                       traceback.format_exc(), "gradcheck_ok": False, "gpu_equals_cpu": False}
            ok &= row["gradcheck_ok"] and row["gpu_equals_cpu"]
            rows.append(row)
            print(f"{kind:>10} fused_kernels={fused_kernels!s:5} gradcheck "
                  f"{'ok' if row['gradcheck_ok'] else 'FAIL'} "
                  f"(max rel {row.get('gradcheck_max_rel_error', float('nan')):.1e}); "
                  f"GPU == CPU {row['gpu_equals_cpu']} {row.get('gpu_vs_cpu_max_abs_diff', '')}")
    (out / "gpu_gradcheck.json").write_text(json.dumps(rows, indent=1) + "\n")
    (out / "gpu_gradcheck.txt").write_text(
        "\n\n".join(f"== {r['kind']} fused_kernels={r['fused_kernels']}\n"
                    + r.get("gradcheck_report", r.get("error", "")) for r in rows) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 benchmarks/gpu_gradcheck.py OUTDIR")
    sys.exit(main(sys.argv[1]))
