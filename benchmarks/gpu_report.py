"""Collect the parts of benchmarks/gpu_check.sh into OUTDIR/summary.json and OUTDIR/summary.md.

    python3 benchmarks/gpu_report.py OUTDIR

Reads whatever the parts left (a part that timed out may have left a partial JSON, or none)
and says so; the markdown is what goes into docs/performance.md after a GPU run.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def _load(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _parts(out):
    lines = (out / "parts.tsv").read_text().splitlines()[1:] if (out / "parts.tsv").exists() else []
    return [dict(zip(("part", "status", "seconds"), line.split("\t"))) for line in lines]


def _tests(out):
    try:
        root = ET.parse(out / "gpu_tests.xml").getroot()
    except (OSError, ET.ParseError):
        return None
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    counts["failed"] = [case.get("classname", "") + "::" + case.get("name", "")
                        for case in suite.iter("testcase")
                        if case.find("failure") is not None or case.find("error") is not None]
    return counts


def _device(out, bench):
    if bench and bench.get("meta", {}).get("device", {}).get("gpu"):
        return bench["meta"]["device"]["gpu"]
    for line in (out / "versions.txt").read_text().splitlines() if (out / "versions.txt").exists() \
            else []:
        if line.startswith("device "):
            return line[len("device "):]
    return "unknown"


def _ms(value):
    return f"{value * 1e3:.2f}" if isinstance(value, (int, float)) else "-"


def _ratio(value):
    return f"{value:.2f}" if isinstance(value, (int, float)) else "-"


def markdown(summary) -> str:
    s = summary
    lines = [f"GPU check ({s['mode']}), device: {s['device']}.", "",
             "| part | status | seconds |", "|---|---|---:|"]
    lines += [f"| {p['part']} | {p['status']} | {p['seconds']} |" for p in s["parts"]]
    t = s["tests"]
    lines += ["", "GPU tests: " + (f"{t['passed']} passed, {t['failures'] + t['errors']} failed, "
                                   f"{t['skipped']} skipped" if t else "no result")]
    if t and t["failed"]:
        lines += [f"- FAILED {name}" for name in t["failed"]]
    g = s["gradcheck"]
    if g:
        lines += ["", "float64 full gradcheck on the GPU:", "",
                  "| kind | ElementwiseKernels | ok | max rel error | failing rows |",
                  "|---|---|---|---:|---|"]
        for r in g["results"]:
            failing = ", ".join(r.get("failing_rows", [])) or ("error" if "error" in r else "")
            lines.append(f"| {r['kind']} | {r['elementwise_kernels']} | {r['ok']} "
                         f"| {r.get('max_rel_error', float('nan')):.1e} | {failing} |")
    e = s["equality"]
    if e:
        lines += ["", "GPU vs CPU (max relative difference over h, state, every gradient):", "",
                  "| kind | dtype | ok | max rel diff | worst tensor |", "|---|---|---|---:|---|"]
        for r in e["results"]:
            lines.append(f"| {r['kind']} | {r['dtype']} | {r['ok']} "
                         f"| {r.get('max_rel_diff', float('nan')):.1e} "
                         f"| {r.get('worst_tensor', 'error')} |")
    k = s["kernels"]
    if k:
        lines += ["", "lstm: plain CuPy path vs ElementwiseKernels:", "",
                  "| shape (B, T, X, H) | dtype | ok | max rel diff | plain ms | kernels ms "
                  "| speed-up |", "|---|---|---|---:|---:|---:|---:|"]
        for r in k["results"]:
            lines.append(f"| {r['shape']} ({r['B']}, {r['T']}, {r['X']}, {r['H']}) | {r['dtype']} "
                         f"| {r['ok']} | {r.get('max_rel_diff', float('nan')):.1e} "
                         f"| {r.get('plain_ms', float('nan')):.2f} "
                         f"| {r.get('kernels_ms', float('nan')):.2f} "
                         f"| {_ratio(r.get('speedup'))} |")
    b = s["bench"]
    if b:
        m = b["meta"]
        lines += ["", f"npcell on CuPy vs torch {m.get('torch')} ({m.get('torch_device')}, cuDNN "
                      f"{m.get('cudnn')}), forward + backward, median of {m.get('repeats')} after "
                      f"{m.get('warmup')} warm-up; ratio = npcell time / baseline time (below 1: "
                      "npcell is faster):", "",
                  "| kind | shape (B, T, X, H) | dtype | path | npcell ms | baseline "
                  "| baseline ms | ratio | eager loop ms | ratio vs eager | max abs diff of h |",
                  "|---|---|---|---|---:|---|---:|---:|---:|---:|---:|"]
        for r in b["results"]:
            eager_ms = r.get("torch_loop_s")
            eager_ratio = r.get("ratio_npcell_over_torch_loop")
            if r.get("baseline") == "torch autograd loop":  # the baseline is the eager loop
                eager_ms, eager_ratio = r.get("torch_s"), r.get("ratio_npcell_over_torch")
            path = "ElementwiseKernels" if r.get("fused_kernels") else "plain"
            if "error" in r:
                lines.append(f"| {r['kind']} | {r['shape']} | {r['dtype']} | {path} "
                             "| error | | | | | | |")
                continue
            lines.append(
                f"| {r['kind']} | {r['shape']} ({r['B']}, {r['T']}, {r['X']}, {r['H']}) "
                f"| {r['dtype']} | {path} | {_ms(r.get('npcell_s'))} | {r.get('baseline', '-')} "
                f"| {_ms(r.get('torch_s'))} | {_ratio(r.get('ratio_npcell_over_torch'))} "
                f"| {_ms(eager_ms)} | {_ratio(eager_ratio)} "
                f"| {r.get('parity_max_abs_diff', float('nan')):.1e} |")
        if m.get("not_run"):
            lines += ["", f"Not run (time budget {m.get('budget_s')} s): "
                          + "; ".join(m["not_run"])]
    return "\n".join(lines) + "\n"


def main(out_dir):
    out = Path(out_dir)
    bench = _load(out / "bench_gpu.json")
    mode = (out / "mode.txt").read_text().strip() if (out / "mode.txt").exists() else "unknown"
    summary = {
        "mode": "GPU run" if mode == "gpu" else f"DRY RUN, no GPU ({mode})",
        "device": _device(out, bench),
        "parts": _parts(out),
        "tests": _tests(out),
        "gradcheck": _load(out / "gradcheck.json"),
        "equality": _load(out / "equality.json"),
        "kernels": _load(out / "kernels.json"),
        "bench": bench,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    (out / "summary.md").write_text(markdown(summary))
    print(f"wrote {out / 'summary.json'} and {out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 benchmarks/gpu_report.py OUTDIR")
    sys.exit(main(sys.argv[1]))
