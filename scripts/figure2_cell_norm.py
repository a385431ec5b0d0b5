"""The idea of the WMC paper's Figure 2: ‖c_t‖ over t in the first training iterations.

The paper (section 3.3) plots the norm of the cell state of lstm, peephole and wmc cells during
the first iterations of sequential MNIST: the peephole's cell "floods" its gates and grows,
the WMC's stays regular. This script trains each cell for a few SGD steps with the paper's
sMNIST recipe (hidden 128, SGD lr 1e-2, momentum 0.9, Nesterov, gradient norm clipped to 1.0,
batch 128) on the sequential 8x8 digits (64 steps of one pixel, scikit-learn's bundled copy) or
on sMNIST (784 steps) when you pass the IDX files, and records on one fixed batch, at several
iterations:

* ‖c_t‖ over t (mean over the batch; the paper's Figure 2);
* the per-step ‖dL/dW_ic‖ against ‖c_{t-1}‖ under the task's own cross-entropy loss
  (eq. 21 for the peephole, eq. 14 for the WMC).

The figure this repository ships was made with (about 7 minutes on a busy 2-core CPU)::

    python scripts/figure2_cell_norm.py --out figures/figure2_cell_norm_digits.png

sMNIST instead (slower: 784 steps; no download, point it at your IDX files)::

    python scripts/figure2_cell_norm.py --mnist-dir ~/data/mnist --iterations 20 \\
        --out figures/figure2_cell_norm_smnist.png

Every run is seeded (--seed), so the figure is reproducible.
"""

from __future__ import annotations

import argparse
import sys

import numpy

import npcell
from npcell.training import SequenceModel
from npcell.training.layers import softmax_cross_entropy
from npcell.training.optim import SGD, clip_grad_norm

KINDS = ("lstm", "peephole", "wmc")


def make_task(args):
    if args.mnist_dir:
        from npcell.tasks.mnist import MnistTask

        return MnistTask(args.mnist_dir, seed=args.seed), "sMNIST (784 steps)"
    from npcell.tasks.digits import DigitsTask

    return DigitsTask(seed=args.seed), "sequential 8x8 digits (64 steps)"


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


def run_kind(kind, task, args, record_at):
    """Train one cell kind; return {iteration: Diagnosis on the fixed probe batch}."""
    model = SequenceModel(task, kind, args.hidden, dtype="float64", seed=args.seed)
    optimizer = SGD(model.params, lr=args.lr, momentum=0.9, nesterov=True)
    rng = numpy.random.default_rng(args.seed)
    n_train = task.size("train")
    probe = task.batch("valid", numpy.arange(args.batch))  # the same sequences every time
    probe_loss = cross_entropy_on_last_step(model, probe.y)
    records = {}
    for it in range(max(record_at) + 1):
        if it in record_at:
            records[it] = npcell.diagnose(model.cell, probe.x, loss=probe_loss,
                                          task=f"{task.name}, iteration {it}")
        batch = task.batch("train", rng.choice(n_train, args.batch, replace=False), epoch=0)
        loss, _, grads = model.run(batch)
        clip_grad_norm(grads, 1.0)
        optimizer.step(grads)
    return records


def make_figure(results, task_name, record_at):
    import matplotlib.pyplot as plt

    from npcell import plots

    with plt.style.context(plots.STYLE):
        fig, axes = plt.subplots(2, len(KINDS), figsize=(4.3 * len(KINDS), 7.6),
                                 layout="constrained", sharey="row")
        shades = plt.get_cmap("viridis")(numpy.linspace(0.0, 0.85, len(record_at)))
        for col, kind in enumerate(KINDS):
            ax = axes[0, col]
            for shade, it in zip(shades, record_at):
                d = results[kind][it]
                ax.plot(numpy.arange(1, d.T + 1), d.cell_norm_mean, color=shade,
                        label=f"iteration {it}")
            ax.set_title(f"{kind}: ‖c_t‖ in the first iterations\n{task_name}")
            ax.set_xlabel("time step t")
            ax.set_ylabel("‖c_t‖ (mean over the batch)")
            ax.legend(loc="upper left")
            ax = axes[1, col]
            for shade, it in zip(shades, record_at):
                d = results[kind][it]
                if "W_ic" in d.grad_step_norm:
                    ax.scatter(d.state_norm("c", prev=True), d.grad_step_norm["W_ic"], s=8,
                               color=shade, alpha=0.7, label=f"iteration {it}")
            if kind == "lstm":
                ax.text(0.5, 0.5, "lstm has no W_ic", transform=ax.transAxes,
                        ha="center", va="center")
            else:
                ax.legend(loc="upper left")
            eq = {"peephole": "eq. (21)", "wmc": "eq. (14)"}.get(kind, "")
            ax.set_title(f"{kind}: per-step ‖dL/dW_ic‖ vs ‖c_t-1‖ {eq}\ncross-entropy at h_T")
            ax.set_xlabel("‖c_t-1‖ (mean over the batch)")
            ax.set_ylabel("‖dL/dW_ic at step t‖")
        fig.suptitle("Figure 2 idea (Landi et al. 2021): cell-state norm in early training")
    return fig


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mnist-dir", default=None, help="folder with the MNIST IDX files")
    parser.add_argument("--iterations", type=int, default=60,
                        help="SGD steps per cell (default 60)")
    parser.add_argument("--records", type=int, default=5,
                        help="how many iterations to record, evenly spaced (default 5)")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="figures/figure2_cell_norm_digits.png")
    args = parser.parse_args(argv)
    task, task_name = make_task(args)
    record_at = sorted({int(round(v)) for v in
                        numpy.linspace(0, args.iterations, args.records)})
    results = {}
    for kind in KINDS:
        results[kind] = run_kind(kind, task, args, record_at)
        first, last = results[kind][record_at[0]], results[kind][record_at[-1]]
        print(f"{kind:9s} ||c_T|| mean: iteration {record_at[0]} {first.cell_norm_mean[-1]:.3f}"
              f" -> iteration {record_at[-1]} {last.cell_norm_mean[-1]:.3f}; max over t and "
              f"iterations {max(r.cell_norm_max.max() for r in results[kind].values()):.3f}")
    fig = make_figure(results, task_name, record_at)
    from npcell.diagnostics import _save_figure

    _save_figure(fig, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
