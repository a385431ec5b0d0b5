"""``python benchmarks/bench.py``: time npcell against PyTorch in the same process and report
ratios (``make bench`` runs the full set).

This is benchmark code of the source checkout, beside the PyTorch twins it times npcell against
(benchmarks/torch_baselines.py); neither is in the wheel, whose ``npcell bench`` says where the
benchmarks went.

What is timed: one forward + backward over a (T, B, X) sequence with dL/dh = a fixed random
(T, B, H) array, including dx and the weight gradients, for npcell and for its PyTorch baseline
on the same shapes, dtype and device:

* ``lstm`` vs ``torch.nn.LSTM``, ``gru`` vs ``torch.nn.GRU`` (PyTorch form, ``reset_after=True``);
* ``peephole``, ``wmc``, ``ulstm`` (PyTorch has none) vs a plain PyTorch autograd loop of the
  same equations, written the way a user would: packed gate weights, one step per iteration
  (the thing a user would otherwise write);
* the GEMM floor: the same GEMMs npcell issues (input projection, the recurrent GEMMs of each
  step forward and back, the weight-gradient GEMMs), alone, on preallocated outputs. Its share
  of npcell's time says how much is left above the hardware limit of this BLAS.

Each number is the median of ``repeats`` runs after ``warmup`` runs; npcell and the baseline
alternate run by run so both see the same machine load. Thread counts are pinned (BLAS via
threadpoolctl when installed, ``torch.set_num_threads``) and written into the JSON with the
machine, the library versions and the load average. The first warm-up also checks that both
implementations compute the same h (max |difference| goes into the JSON).

Outputs: ``OUT/bench_<device>.json`` (everything) and ``OUT/bench_<device>.md`` (the table of
ratios). ``--quick`` shrinks shapes and repeats so a smoke test runs in seconds; ``make bench``
runs the full set (several minutes on one core). ``--device gpu`` times npcell on CuPy (plain
and fused-kernel paths) against PyTorch CUDA (``nn.LSTM`` with cuDNN, and the eager loop).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy

from npcell import backend, engine
from npcell.cells import CELLS, make_cell
from npcell.engine.cpu import loops as cpu_kernels
from npcell.engine.device import device_for
from npcell.errors import NpcellError, UsageError
from npcell.sequence import backward, estimate_cache_bytes, forward

# name -> (B, T, X, H)
SHAPES = {
    "adding": (128, 200, 2, 128),
    "charlm": (32, 150, 50, 512),
    "smnist": (128, 784, 1, 128),
    "latency": (1, 1000, 2, 32),
}
QUICK_SHAPES = {
    "adding": (16, 20, 2, 16),
    "charlm": (8, 10, 10, 32),
    "smnist": (16, 40, 1, 16),
    "latency": (1, 50, 2, 8),
}
MAIN_SHAPES = ("adding", "charlm", "smnist")
KINDS = ("lstm", "gru", "peephole", "wmc", "ulstm")
KERNEL_KINDS = {"cpu": ("lstm", "peephole", "wmc"), "gpu": ("lstm",)}  # with fused gate kernels
CELL_OPTIONS = {"gru": {"reset_after": True}}  # the form nn.GRU computes


# ============================================================================================
# Environment: threads, machine, synchronisation
# ============================================================================================
def pin_threads(n: int) -> dict:
    """Pin BLAS/OpenMP threads (npcell.backend.limit_blas_threads) and torch's; return what
    was set."""
    info = {"requested": n, **backend.limit_blas_threads(n), "torch": None}
    torch = _torch()
    if torch is not None:
        torch.set_num_threads(n)
        info["torch"] = torch.get_num_threads()
    return info


def machine_info() -> dict:
    torch = _torch()
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "torch": getattr(torch, "__version__", None),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    return info


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


class Device:
    """Where a run happens: 'cpu' (NumPy + torch CPU) or 'gpu' (CuPy + torch CUDA)."""

    def __init__(self, name: str):
        self.name = name
        self.backend = "numpy" if name == "cpu" else "cupy"
        self.xp = backend.xp_for(self.backend)
        self.torch_device = "cpu" if name == "cpu" else "cuda"

    def sync(self):
        device_for(self.xp.zeros(1)).sync()  # npcell's device: a stream wait on CuPy
        if self.name == "gpu":
            torch = _torch()
            if torch is not None and torch.cuda.is_available():
                torch.cuda.synchronize()

    def info(self) -> dict:
        if self.name == "cpu":
            return {"device": "cpu"}
        cupy = self.xp
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = props.get("name", b"unknown GPU")
        name = name.decode() if isinstance(name, bytes) else str(name)
        return {"device": "gpu", "gpu": name, "cupy": cupy.__version__}


# ============================================================================================
# Timing
# ============================================================================================
def median_times(runners: dict, *, repeats: int, warmup: int, sync) -> dict:
    """Median wall time and median CPU time of each zero-argument callable, interleaved run by
    run: ``{name: (wall_s, cpu_s)}``. CPU time (``time.process_time``, all threads of this
    process) is what the work costs; on an oversubscribed machine wall time also counts the
    waits for a free core, so both are recorded."""
    for _ in range(warmup):
        for run in runners.values():
            run()
            sync()
    wall = {name: [] for name in runners}
    cpu = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            sync()
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            sync()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name]))
            for name in runners}


def npcell_runner(cell, x, dh):
    """forward + backward through the public API (the driver validates shapes as users get)."""
    def run():
        _, _, cache = forward(cell, x)
        backward(cell, dh, cache)

    return run


# ============================================================================================
# PyTorch baselines: benchmarks/torch_baselines.py, beside this file
# ============================================================================================
BASELINES_PATH = Path(__file__).resolve().with_name("torch_baselines.py")


@functools.cache
def torch_baselines():
    """The module of PyTorch twins (benchmarks/torch_baselines.py, this file's neighbour); None
    when torch is missing: the benchmark then times npcell alone."""
    if _torch() is None or not BASELINES_PATH.is_file():
        return None
    spec = importlib.util.spec_from_file_location("npcell_torch_baselines", BASELINES_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ============================================================================================
# GEMM floor and cache size
# ============================================================================================
def gemm_floor_runner(kind, B, T, X, H, dtype, xp, *, input_gemms=True):
    """The GEMMs npcell's fused lstm/peephole/wmc path issues, alone (None for other kinds).

    ``input_gemms=False``: without the three over the input (x W_x^T, dW_x, dx), which the
    CPU kernels' loops do step by step for small X (cpu_kernels.SmallInput)."""
    if kind not in ("lstm", "peephole", "wmc"):
        return None
    rng = numpy.random.default_rng(0)

    def arr(*shape):
        return xp.asarray(rng.standard_normal(shape) * 0.1, dtype=dtype)

    x, W_x, W_h = arr(T * B, X), arr(4 * H, X), arr(4 * H, H)
    W_hT = xp.ascontiguousarray(W_h.T)  # as the fused forward multiplies by it
    h, out4, da, out1 = arr(B, H), arr(B, 4 * H), arr(B, 4 * H), arr(B, H)
    flat, hs = arr(T * B, 4 * H), arr(T * B, H)
    full_reads = kind == "wmc"  # the default WMC reads the cell with full (H, H) matrices
    if full_reads:
        W_if, W_o, out2, dz2 = arr(2 * H, H), arr(H, H), arr(B, 2 * H), arr(B, 2 * H)
        dz_flat2, dz_flat1 = arr(T * B, 2 * H), arr(T * B, H)

    def run():
        if input_gemms:
            x @ W_x.T  # input projection of all T steps
        for _ in range(T):
            xp.matmul(h, W_hT, out=out4)  # recurrent GEMM, forward
            if full_reads:
                xp.matmul(h, W_if.T, out=out2)
                xp.matmul(h, W_o.T, out=out1)
        for _ in range(T):
            xp.matmul(da, W_h, out=out1)  # recurrent GEMM, backward
            if full_reads:
                xp.matmul(dz2, W_if, out=out1)
                xp.matmul(out1, W_o, out=h)
        flat.T @ hs  # dW_h
        if input_gemms:
            flat.T @ x  # dW_x
            flat @ W_x  # dx
        if full_reads:
            dz_flat2.T @ hs
            dz_flat1.T @ hs

    return run


# ============================================================================================
# One case and the whole run
# ============================================================================================
def bench_case(kind, shape_name, B, T, X, H, dtype, device: Device, *, repeats, warmup,
               with_torch=True, fused_kernels=False) -> dict:
    """Time one (kind, shape, dtype) case; return a flat record for the JSON."""
    options = CELL_OPTIONS.get(kind, {})
    cell = make_cell(kind, X, H, dtype=dtype, seed=0, backend=device.backend, **options)
    rng = numpy.random.default_rng(1)
    x_host = rng.standard_normal((T, B, X)).astype(dtype)
    dh_host = rng.standard_normal((T, B, H)).astype(dtype)
    xp = device.xp
    x, dh = xp.asarray(x_host), xp.asarray(dh_host)
    record = dict(kind=kind, shape=shape_name, B=B, T=T, X=X, H=H, dtype=dtype,
                  device=device.name, fused_kernels=fused_kernels)
    runners = {"npcell": npcell_runner(cell, x, dh)}
    baselines = torch_baselines() if with_torch else None
    if baselines is not None:
        torch_run, torch_h = baselines.torch_baseline(cell, x_host, dh_host, device)
        runners["torch"] = torch_run
        modules = baselines.TORCH_MODULE_KINDS
        record["baseline"] = ("torch.nn." + modules[kind] if kind in modules
                              else "torch autograd loop")
        h_np = backend.to_numpy(forward(cell, x)[0])
        record["parity_max_abs_diff"] = float(numpy.abs(h_np - torch_h()).max())
        if device.name == "gpu" and kind == "lstm":  # cuDNN's nn.LSTM and the eager loop
            loop_run, loop_h = baselines.torch_baseline(cell, x_host, dh_host, device,
                                                        eager_loop=True)
            runners["torch_loop"] = loop_run
            record["loop_parity_max_abs_diff"] = float(numpy.abs(h_np - loop_h()).max())
    small_input = (fused_kernels and device.name == "cpu" and cpu_kernels.available()
                   and cpu_kernels.loops_take_input(B, X, H))  # no input GEMMs then
    floor = gemm_floor_runner(kind, B, T, X, H, dtype, xp, input_gemms=not small_input)
    if floor is not None:
        runners["gemm_floor"] = floor
    with engine.use_fused_kernels(fused_kernels):
        both = median_times(runners, repeats=repeats, warmup=warmup, sync=device.sync)
    times = {name: wall for name, (wall, _) in both.items()}
    cpu = {name: c for name, (_, c) in both.items()}
    record["npcell_cpu_s"] = cpu["npcell"]
    record["us_per_step_cpu"] = cpu["npcell"] / T * 1e6
    if "torch" in cpu:
        record["torch_cpu_s"] = cpu["torch"]
        record["ratio_cpu"] = cpu["npcell"] / cpu["torch"]
    if "gemm_floor" in cpu:
        record["gemm_share_cpu"] = cpu["gemm_floor"] / cpu["npcell"]
    record["npcell_s"] = times["npcell"]
    record["us_per_step"] = times["npcell"] / T * 1e6
    if "torch" in times:
        record["torch_s"] = times["torch"]
        record["ratio_npcell_over_torch"] = times["npcell"] / times["torch"]
    if "torch_loop" in times:
        record["torch_loop_s"] = times["torch_loop"]
        record["ratio_npcell_over_torch_loop"] = times["npcell"] / times["torch_loop"]
    if "gemm_floor" in times:
        record["gemm_floor_s"] = times["gemm_floor"]
        record["gemm_share"] = times["gemm_floor"] / times["npcell"]
    _, _, cache = forward(cell, x)
    theory = estimate_cache_bytes(cell, T, B)  # the memory guard's formula (npcell.checks)
    record["cache_bytes"] = int(cache.nbytes)
    record["cache_theory_bytes"] = theory
    record["cache_ratio"] = cache.nbytes / theory
    return record


def run_benchmarks(*, device="cpu", quick=False, kinds=KINDS, shapes=None, dtypes=None,
                   repeats=None, warmup=None, threads=1, with_torch=True,
                   paths=("plain", "kernels"), progress=print):
    """Run every requested case; return the JSON-ready dict (``meta`` + ``results``).

    ``paths``: time the plain path, the fused gate kernels (where the device has them for
    the kind: KERNEL_KINDS), or both side by side (default)."""
    dev = Device(device)
    table = QUICK_SHAPES if quick else SHAPES
    shapes = list(shapes or table)
    dtypes = list(dtypes or ("float32", "float64"))
    repeats = repeats or (1 if quick else 5)
    warmup = warmup if warmup is not None else 1
    kinds = [k for k in kinds if k in CELLS]
    meta = dict(machine=machine_info(), threads=pin_threads(threads), device=dev.info(),
                quick=quick, repeats=repeats, warmup=warmup, timer="median of time.perf_counter",
                started=time.strftime("%Y-%m-%d %H:%M:%S"))
    results = []
    # The plain path always; beside it the fused gate kernels (CuPy, or Numba on the CPU).
    variants = [False] if "plain" in paths else []
    if "kernels" in paths and (device == "gpu" or cpu_kernels.available()):
        variants.append(True)
    for shape_name in shapes:
        B, T, X, H = table[shape_name]
        for kind in kinds:
            if shape_name == "latency" and kind not in ("lstm",):
                continue  # the latency case is about the per-step overhead of the LSTM loop
            for dtype in dtypes:
                for fused_kernels in variants:
                    if fused_kernels and kind not in KERNEL_KINDS[device]:
                        continue
                    rec = bench_case(kind, shape_name, B, T, X, H, dtype, dev, repeats=repeats,
                                     warmup=warmup, with_torch=with_torch,
                                     fused_kernels=fused_kernels)
                    results.append(rec)
                    progress(_one_line(rec))
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    meta["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return {"meta": meta, "results": results}


def _one_line(r):
    ratio = r.get("ratio_npcell_over_torch")
    share = r.get("gemm_share")
    return (f"{r['kind']:>8} {r['shape']:>8} {r['dtype']:>7}"
            f"{' fused' if r['fused_kernels'] else ''}: npcell {r['npcell_s'] * 1e3:9.2f} ms"
            + (f"  torch {r['torch_s'] * 1e3:9.2f} ms  ratio {ratio:5.2f}"
               f" (CPU time {r['ratio_cpu']:5.2f})" if ratio else "")
            + (f"  GEMM share {share:4.0%}" if share else ""))


def markdown_table(data) -> str:
    """The ratios as a markdown table (npcell time / baseline time: below 1 is faster)."""
    m = data["meta"]
    lines = [
        f"npcell vs PyTorch, forward + backward, device {m['device'].get('device')}"
        f"{' (' + m['device']['gpu'] + ')' if 'gpu' in m['device'] else ''}, "
        f"threads {m['threads']['requested']}, median of {m['repeats']} after {m['warmup']} "
        f"warm-up; {m['machine']['processor']}, {m['machine']['cpu_count']} CPUs, "
        f"load average {m['machine']['load_average']}.",
        "",
        "| kind | shape (B, T, X, H) | dtype | path | npcell ms | baseline | baseline ms "
        "| ratio | ratio (CPU time) | us/step (CPU) | GEMM floor ms | GEMM share (CPU) "
        "| cache / theory |",
        "|---|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in data["results"]:
        def f(key, scale=1.0, fmt="{:.2f}", r=r):
            return fmt.format(r[key] * scale) if r.get(key) is not None else "-"

        lines.append(
            f"| {r['kind']} | {r['shape']} ({r['B']}, {r['T']}, {r['X']}, {r['H']}) "
            f"| {r['dtype']} | {'fused kernels' if r['fused_kernels'] else 'plain'} "
            f"| {f('npcell_s', 1e3, '{:.1f}')} | {r.get('baseline', '-')} "
            f"| {f('torch_s', 1e3, '{:.1f}')} | {f('ratio_npcell_over_torch')} "
            f"| {f('ratio_cpu')} | {f('us_per_step_cpu', 1, '{:.1f}')} "
            f"| {f('gemm_floor_s', 1e3, '{:.1f}')} "
            f"| {f('gemm_share_cpu', 100, '{:.0f}%')} | {f('cache_ratio', 1, '{:.3f}')} |"
        )
    loops = [r for r in data["results"] if r.get("torch_loop_s") is not None]
    if loops:
        lines += ["", "PyTorch eager autograd loop of the same LSTM equations (beside cuDNN):", "",
                  "| shape | dtype | path | npcell ms | eager loop ms | ratio |",
                  "|---|---|---|---:|---:|---:|"]
        for r in loops:
            lines.append(
                f"| {r['shape']} | {r['dtype']} "
                f"| {'fused kernels' if r['fused_kernels'] else 'plain'} "
                f"| {r['npcell_s'] * 1e3:.1f} | {r['torch_loop_s'] * 1e3:.1f} "
                f"| {r['ratio_npcell_over_torch_loop']:.2f} |")
    return "\n".join(lines) + "\n"


def write_results(data, out_dir, name) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{name}.json", out / f"{name}.md"
    json_path.write_text(json.dumps(data, indent=1) + "\n")
    md_path.write_text(markdown_table(data))
    return json_path, md_path


# ============================================================================================
# Scaling plot: time vs T, H, B
# ============================================================================================
SCALING_BASE = dict(B=32, T=100, X=16, H=128)
SCALING_AXES = {"T": [25, 50, 100, 200, 400], "H": [32, 64, 128, 256, 512],
                "B": [1, 8, 32, 128, 256]}


def run_scaling(*, dtype="float32", repeats=3, quick=False, progress=print) -> dict:
    """lstm fwd+bwd time (npcell, nn.LSTM, GEMM floor) along T, H and B around SCALING_BASE."""
    dev = Device("cpu")
    axes = {k: v[:2] for k, v in SCALING_AXES.items()} if quick else SCALING_AXES
    base = dict(B=4, T=10, X=4, H=8) if quick else SCALING_BASE
    rows = []
    for axis, values in axes.items():
        for value in values:
            s = {**base, axis: value}
            rec = bench_case("lstm", f"{axis}={value}", s["B"], s["T"], s["X"], s["H"], dtype,
                             dev, repeats=repeats, warmup=1)
            rec["axis"] = axis
            rows.append(rec)
            progress(_one_line(rec))
    return {"base": base, "dtype": dtype, "rows": rows}


def plot_scaling(scaling, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, axis in zip(axes, ("T", "H", "B")):
        rows = [r for r in scaling["rows"] if r["axis"] == axis]
        xs = [r[axis] for r in rows]
        for key, label, style in (("npcell_s", "npcell", "o-"), ("torch_s", "torch nn.LSTM", "s--"),
                                  ("gemm_floor_s", "GEMM floor", "^:")):
            if all(key in r for r in rows):
                ax.plot(xs, [r[key] * 1e3 for r in rows], style, label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(axis)
        ax.set_ylabel("forward + backward (ms)")
        others = ", ".join(f"{k}={v}" for k, v in scaling["base"].items() if k != axis)
        ax.set_title(f"vs {axis} ({others})", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"lstm, {scaling['dtype']}, CPU, 1 thread "
                 "(made by: python benchmarks/bench.py --scaling --figures figures)", fontsize=10)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


# ============================================================================================
# Command line: python benchmarks/bench.py [options]
# ============================================================================================
def build_parser():
    parser = argparse.ArgumentParser(
        prog="benchmarks/bench.py",
        description="time npcell against PyTorch (ratios, JSON + markdown)")
    parser.add_argument("--out", default="benchmarks/results", help="directory for JSON + md")
    parser.add_argument("--quick", action="store_true",
                        help="tiny shapes, one repeat: a smoke test of a few seconds")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                        help="cpu: NumPy vs torch CPU; gpu: CuPy vs torch CUDA")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), metavar="KIND")
    parser.add_argument("--shapes", nargs="+", default=None, choices=list(SHAPES),
                        metavar="SHAPE", help=f"subset of {list(SHAPES)}")
    parser.add_argument("--dtypes", nargs="+", default=None, choices=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (median)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed runs first")
    parser.add_argument("--threads", type=int, default=1, help="BLAS and torch threads")
    parser.add_argument("--no-torch", action="store_true", help="time npcell alone")
    parser.add_argument("--paths", nargs="+", choices=("plain", "kernels"),
                        default=["plain", "kernels"],
                        help="the plain path, the fused gate kernels, or both (default)")
    parser.add_argument("--scaling", action="store_true",
                        help="also time the lstm along T, H, B and plot it (--figures)")
    parser.add_argument("--figures", default="figures", help="where the scaling plot goes")
    return parser


def run_cli(args) -> int:
    unknown = [k for k in args.kinds if k not in CELLS]
    if unknown:
        raise UsageError(f"unknown cell kind(s) {unknown}; expected some of {sorted(CELLS)}")
    if args.threads < 1:
        raise UsageError(f"--threads must be >= 1; got {args.threads}")
    if not args.no_torch and _torch() is None:
        print("bench: torch is not installed; timing npcell alone "
              "(pip install npcell[crosscheck] for the ratios)", file=sys.stderr)
    with_torch = not args.no_torch and torch_baselines() is not None
    data = run_benchmarks(device=args.device, quick=args.quick, kinds=args.kinds,
                          shapes=args.shapes, dtypes=args.dtypes, repeats=args.repeats,
                          warmup=args.warmup, threads=args.threads, paths=args.paths,
                          with_torch=with_torch)
    name = f"bench_{args.device}" + ("_quick" if args.quick else "")
    json_path, md_path = write_results(data, args.out, name)
    print(f"wrote {json_path} and {md_path}")
    if args.scaling:
        scaling = run_scaling(quick=args.quick, repeats=1 if args.quick else 3)
        scaling_path = Path(args.out) / ("scaling" + ("_quick" if args.quick else "") + ".json")
        scaling_path.write_text(json.dumps(scaling, indent=1) + "\n")
        fig = plot_scaling(scaling, Path(args.figures) / (
            "performance_scaling" + ("_quick" if args.quick else "") + ".png"))
        print(f"wrote {scaling_path} and {fig}")
    return 0


def main(argv=None) -> int:
    """Run the benchmarks; a bad option or argument is one line on stderr and exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        return run_cli(args)
    except NpcellError as err:
        print(f"bench: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
