"""Training: a cell + readout model, a loop with progress bar, metrics log, checkpoints, resume.

::

    from npcell.training import TrainConfig, train
    config = TrainConfig(task="adding", task_options={"T": 200}, cell="wmc", hidden=128,
                         batch=128, lr=1e-2, momentum=0.9, nesterov=True, clip=1.0, epochs=20)
    result = train(config, "runs/wmc-adding-200-s0")

or from the shell ``npcell train --preset wmc-adding-200 --out runs/wmc-s0 --seed 0``.

A run directory (npcell.training.rundir owns its files) holds

* ``config.json``: the :class:`TrainConfig` as a dict (``"seed"`` included) plus the preset name;
* ``metrics.jsonl``: one JSON object per line with keys ``step`` (optimiser steps so far),
  ``epoch``, ``split`` (``"train"`` or an evaluation split), ``loss``, ``metric`` (the task's
  metric, absent for train lines of MSE tasks where it equals the loss) and ``wall_s``;
  evaluation lines are written at epoch 0 (before training) and after every epoch;
* ``metrics.csv``: the same rows as CSV;
* ``checkpoint.npz``: parameters, optimiser state and loop position (the format of
  npcell.training.checkpoint), written after every epoch, every ``checkpoint_every`` steps, when
  Ctrl-C stops the run and when ``max_minutes`` (``--max-minutes``) runs out.

The folder is created only once the task and model have been built, so a run that fails to start
(a bad option, a missing data file) leaves no empty folder behind.

Progress: a tqdm bar when stderr is a terminal; otherwise (nohup, a log file, a batch job) one
line every ``log_seconds`` seconds, e.g.
``wmc on adding: step 1200/20000 (6%) epoch 2/200 loss 0.1671 test mse 0.1655 14.2 steps/s
ETA 22 min``.

Calling :func:`train` again on the same directory resumes from the checkpoint. Data order and
initial weights are functions of ``seed`` only, so a resumed run repeats the uninterrupted
run's losses bit for bit (a test holds this in float64).
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy

from ..backend import resolve_dtype, to_numpy
from ..cells import make_cell
from ..errors import CheckpointError, ConfigError, NonFiniteError, check_real
from ..sequence import backward, forward
from ..tasks import make_task
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .layers import Embedding, Linear, check_tokens, mse_loss, one_hot, softmax_cross_entropy
from .optim import clip_grad_norm, make_optimizer
from .progress import ProgressLines, format_duration, progress_mode, tqdm  # noqa: F401
from .rundir import RunDir, read_metrics

LN2 = math.log(2.0)


# ============================================================================================
# The model: (embedding | one-hot) -> cell -> linear readout -> loss
# ============================================================================================
class SequenceModel:
    """A recurrent cell with a linear readout, built for a task.

    Token inputs are fed one-hot (``embedding=0``) or through an :class:`Embedding` of that
    width. ``params`` is a flat dict ``'cell/W_ix'``, ``'readout/W'``, ``'embedding/E'`` whose
    arrays *are* the layers' arrays, so an optimiser updating it in place updates the model.
    """

    def __init__(self, task, cell_kind, hidden, *, embedding=0, dtype="float32", seed=0,
                 cell_options=None):
        self.task = task
        self.dtype = resolve_dtype(dtype)
        seeds = numpy.random.SeedSequence(seed).generate_state(3)  # cell, readout, embedding
        self.embedding = None
        if task.inputs == "tokens" and embedding:
            self.embedding = Embedding(task.input_size, embedding, dtype=self.dtype,
                                       seed=int(seeds[2]))
            cell_input = embedding
        else:
            cell_input = task.input_size
        self.cell = make_cell(cell_kind, cell_input, hidden, dtype=self.dtype, seed=int(seeds[0]),
                              **(cell_options or {}))
        self.readout = Linear(hidden, task.num_outputs, dtype=self.dtype, seed=int(seeds[1]))
        self.params = {}
        for prefix, layer in self._layers():
            for name, p in layer.params.items():
                self.params[f"{prefix}/{name}"] = p

    def _layers(self):
        out = [("cell", self.cell), ("readout", self.readout)]
        if self.embedding is not None:
            out.append(("embedding", self.embedding))
        return out

    @property
    def num_params(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    def _cell_input(self, x):
        if self.task.inputs != "tokens":
            return x, None
        if self.embedding is None:
            return one_hot(x, self.task.input_size, self.dtype), None
        return self.embedding.forward(self.embedding.params, x)

    def _on_model_backend(self, batch):
        """Tasks hand out NumPy batches; under ``npcell.use_backend("cupy")`` the model's arrays
        live on the GPU, so the batch moves there (a no-op on NumPy). The layers check token
        ranges only on host arrays (on the GPU it would synchronise), so the batch is checked
        here, while it is still on the host."""
        xp = self.cell.xp
        if xp is numpy:
            return batch
        task = self.task
        if task.inputs == "tokens":
            check_tokens("batch.x", batch.x, task.input_size)
        if task.loss != "mse":
            check_tokens("batch.y", batch.y, task.num_outputs)
            if batch.loss_mask is not None and not batch.loss_mask.any():
                raise ConfigError("the batch's loss mask selects no position")

        def move(a):
            return None if a is None else xp.asarray(a)

        return type(batch)(move(batch.x), move(batch.y), move(batch.loss_mask),
                           move(batch.metric_mask))

    def run(self, batch, *, need_grads=True, need_metric=None):
        """Forward (and backward) on one batch.

        Returns (loss, stats, grads): loss is the batch mean the optimiser sees (a 0-d array on
        the model's device: ``float(loss)`` reads it); stats holds sums for aggregation over
        many batches: ``loss_sum``, ``count`` and, with ``need_metric`` (default: when no
        gradients are asked for, i.e. in evaluation), ``metric_sum``, ``metric_count`` (numbers
        or 0-d device arrays: nothing here reads a value back from the GPU); grads is keyed like
        ``params`` (None when need_grads is False). A training step skips the accuracy: its
        argmax would be thrown away.
        """
        need_metric = not need_grads if need_metric is None else need_metric
        task = self.task
        batch = self._on_model_backend(batch)
        x_in, embed_cache = self._cell_input(batch.x)
        h, _, cell_cache = forward(self.cell, x_in)  # h: (T, B, H)
        T, B, H = h.shape
        h_read = h[-1] if task.readout == "last" else h  # (B, H) or (T, B, H)
        y_pred, readout_cache = self.readout.forward(self.readout.params, h_read)
        stats = {}
        if task.loss == "mse":
            loss, dy = mse_loss(y_pred, batch.y)
            stats["count"] = int(batch.y.size)
            stats["loss_sum"] = loss * stats["count"]
            stats["metric_sum"], stats["metric_count"] = stats["loss_sum"], stats["count"]
        else:
            loss, dy, count = softmax_cross_entropy(y_pred, batch.y, batch.loss_mask)
            stats["count"] = count
            stats["loss_sum"] = loss * count
            if task.metric == "bpc":
                stats["metric_sum"], stats["metric_count"] = loss * count / LN2, count
            elif need_metric:  # accuracy over the positions the metric mask selects, on the device
                correct = y_pred.argmax(axis=-1) == batch.y
                if batch.metric_mask is None:
                    stats["metric_count"] = batch.y.size
                else:
                    counted = batch.metric_mask.astype(bool)
                    correct &= counted
                    stats["metric_count"] = counted.sum()
                stats["metric_sum"] = correct.sum()
        if not need_grads:
            return loss, stats, None
        grads_readout, dh_read = self.readout.backward(self.readout.params, dy, readout_cache)
        if task.readout == "last":
            dh = self.cell.xp.zeros_like(h)
            dh[-1] = dh_read  # only h_T feeds the loss
        else:
            dh = dh_read
        grads_cell, dx, _ = backward(self.cell, dh, cell_cache)
        grads = {f"cell/{k}": v for k, v in grads_cell.items()}
        grads.update({f"readout/{k}": v for k, v in grads_readout.items()})
        if self.embedding is not None:
            grads_embed, _ = self.embedding.backward(self.embedding.params, dx, embed_cache)
            grads["embedding/E"] = grads_embed["E"]
        return loss, stats, grads

    def evaluate(self, split, batch_size=500):
        """Mean loss and metric over a whole split: {'loss': ..., 'metric': ...}."""
        n = self.task.size(split)
        sums = {"loss_sum": 0.0, "count": 0, "metric_sum": 0.0, "metric_count": 0}
        for start in range(0, n, batch_size):
            batch = self.task.batch(split, numpy.arange(start, min(n, start + batch_size)),
                                    dtype=self.dtype)
            _, stats, _ = self.run(batch, need_grads=False)
            for k in sums:
                sums[k] += stats[k]
        sums = {k: float(v) for k, v in sums.items()}  # one read-back per split, not per batch
        return {"loss": sums["loss_sum"] / sums["count"],
                "metric": sums["metric_sum"] / max(sums["metric_count"], 1)}


def build(config: TrainConfig):
    """(task, model, optimiser) for a config, all seeded from ``config.seed``."""
    config.validate()
    options = dict(config.task_options)
    options.setdefault("seed", config.seed)  # the data differ between seeds too
    task = make_task(config.task, **options)
    model = SequenceModel(task, config.cell, config.hidden, embedding=config.embedding,
                          dtype=config.dtype, seed=config.seed, cell_options=config.cell_options)
    optimizer = make_optimizer(config.optimizer, model.params, lr=config.lr,
                               momentum=config.momentum, nesterov=config.nesterov,
                               weight_decay=config.weight_decay)
    return task, model, optimizer


# ============================================================================================
# The loop
# ============================================================================================
@dataclass
class TrainResult:
    out_dir: Path
    history: list  # every metrics.jsonl record of this run directory
    final: dict  # last evaluation: {split: {"loss":..., "metric":...}}
    steps: int
    train_seconds: float  # time spent in training steps in this call (not evaluation)
    steps_per_s: float  # this call's steps / train_seconds; over the whole run if none were taken
    resumed_from: int | None  # the step a checkpoint resumed from, or None
    stopped_early: bool = False  # max_minutes ran out: checkpoint written, the run can resume
    already_finished: bool = False  # resumed a run that had done all its epochs: nothing ran
    total_steps: int = 0  # epochs x steps per epoch: the step a finished run stops at

    def curve(self, split="test", key="metric"):
        """(epochs, values) of one split's evaluation records."""
        rows = [r for r in self.history if r["split"] == split]
        return [r["epoch"] for r in rows], [r.get(key) for r in rows]




def train(config: TrainConfig, out_dir, *, progress=None, resume=True, callback=None,
          max_minutes=None, log_seconds=30.0, clock=time.monotonic, log_stream=None):
    """Train per ``config``, writing config.json, metrics.jsonl/.csv and checkpoints to ``out_dir``.

    progress : True (tqdm bar), False (silent) or None: a bar when stderr is a terminal, else a
        progress line every ``log_seconds`` seconds on ``log_stream`` (default stderr).
    resume : continue from ``out_dir/checkpoint.npz`` when it exists (its config must match,
        except ``epochs``, which may grow).
    callback : called as ``callback(step, loss)`` after every optimiser step (tests use it to
        simulate Ctrl-C).
    max_minutes : stop after the first step that ends this many minutes (of ``clock``) after the
        call began, with a checkpoint; the same call again resumes exactly where it stopped.
    clock : seconds as a float (tests pass a fake one).

    Ctrl-C (SIGINT) finishes the current step, writes a checkpoint and raises KeyboardInterrupt;
    a second Ctrl-C aborts at once (the last checkpoint stays valid).
    """
    t_call = clock()
    config.validate()
    if max_minutes is not None:
        check_real("max_minutes", max_minutes, above=0)
    out = Path(out_dir)
    task, model, optimizer = build(config)
    n_train = task.size("train")
    steps_per_epoch = n_train // config.batch
    if steps_per_epoch < 1:
        raise ConfigError(f"batch {config.batch} is larger than the training set ({n_train})")
    if config.steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, config.steps_per_epoch)
    out.mkdir(parents=True, exist_ok=True)  # only now: a run that cannot start leaves no folder
    run = RunDir(out)

    # ----- start or resume ---------------------------------------------------------------------
    history: list = []
    position = {"epoch": 0, "step_in_epoch": 0, "step": 0, "window_loss": 0.0,
                "window_steps": 0, "evaluated_epoch": -1, "train_seconds": 0.0,
                "reached_stop_below": False}
    resumed_from = None
    if resume and run.checkpoint.exists():
        arrays, meta = load_checkpoint(run.checkpoint)
        _check_same_config(meta.get("config", {}), config, run.checkpoint)
        for name, p in model.params.items():
            key = f"param/{name}"
            if key not in arrays:
                raise CheckpointError(f"{run.checkpoint} lacks parameter {key}")
            p[...] = model.cell.xp.asarray(arrays[key])
        optimizer.load_state_dict({k[len("optim/"):]: v for k, v in arrays.items()
                                   if k.startswith("optim/")})
        position.update(meta["position"])
        history = read_metrics(out)[: meta["n_records"]]
        resumed_from = position["step"]
    run.write_config(config.to_dict())
    run.rewrite(history)  # drops records written after the checkpoint

    def log(record):
        history.append(record)
        run.append(record)

    def checkpoint():
        arrays = {f"param/{k}": to_numpy(v) for k, v in model.params.items()}
        arrays.update({f"optim/{k}": v for k, v in optimizer.state_dict().items()})
        meta = {"config": config.to_dict(), "position": dict(position),
                "n_records": len(history), "npcell_train_format": 1}
        save_checkpoint(run.checkpoint, arrays, meta)

    def evaluate(epoch):
        results = {}
        for split in config.eval_splits:
            r = model.evaluate(split, config.eval_batch)
            results[split] = r
            log({"step": position["step"], "epoch": epoch, "split": split, "loss": r["loss"],
                 "metric": r["metric"], "wall_s": round(time.perf_counter() - t_start, 3)})
        position["evaluated_epoch"] = epoch
        return results

    t_start = time.perf_counter()
    final = {}
    if position["evaluated_epoch"] < 0:
        final = evaluate(0)  # the curve starts at the untrained model
    total_steps = config.epochs * steps_per_epoch
    already_finished = position["epoch"] >= config.epochs or position["reached_stop_below"]
    label = f"{config.cell} on {config.task}"
    use_bar, use_lines = progress_mode(progress)
    bar = tqdm(total=total_steps, initial=position["step"], disable=not use_bar,
               desc=label, unit="step", dynamic_ncols=True)
    lines = (ProgressLines(label, total_steps, config.epochs, every=log_seconds, clock=clock,
                           stream=log_stream) if use_lines and not already_finished else None)
    metric_label = f"{config.eval_splits[0]} {task.metric}"  # e.g. "test mse"
    deadline = None if max_minutes is None else t_call + 60.0 * max_minutes
    stopped_early = False
    train_seconds, steps_done = 0.0, 0
    last_metric = (final.get(config.eval_splits[0], {}) or {}).get("metric")
    if last_metric is None and history:  # resumed: the last evaluation so far
        last_metric = next((r.get("metric") for r in reversed(history)
                            if r["split"] == config.eval_splits[0]), None)
    with bar, _DeferredInterrupt() as interrupt:
        while position["epoch"] < config.epochs and not position["reached_stop_below"]:
            epoch = position["epoch"]
            order = numpy.random.default_rng([config.seed, 7, epoch]).permutation(n_train)
            while position["step_in_epoch"] < steps_per_epoch:
                i = position["step_in_epoch"]
                t0 = time.perf_counter()
                batch = task.batch("train", order[i * config.batch:(i + 1) * config.batch],
                                   epoch=epoch, dtype=config.dtype)
                loss, _, grads = model.run(batch)
                loss = float(loss)  # the step's one host-device synchronisation (logged loss)
                if not math.isfinite(loss):
                    raise NonFiniteError(
                        f"training loss became {loss} at step {position['step'] + 1} (epoch "
                        f"{epoch + 1}); try a smaller lr or gradient clipping (--clip); the "
                        f"last checkpoint ({run.checkpoint}) is from before it"
                    )
                if config.clip is not None:
                    clip_grad_norm(grads, config.clip)
                optimizer.step(grads)
                dt = time.perf_counter() - t0
                train_seconds += dt
                position["train_seconds"] += dt
                steps_done += 1
                position["step_in_epoch"] += 1
                position["step"] += 1
                position["window_loss"] += loss
                position["window_steps"] += 1
                if position["window_steps"] == config.log_every:
                    log({"step": position["step"], "epoch": epoch + 1, "split": "train",
                         "loss": position["window_loss"] / position["window_steps"],
                         "wall_s": round(time.perf_counter() - t_start, 3)})
                    position["window_loss"], position["window_steps"] = 0.0, 0
                bar.update(1)
                postfix = {"loss": f"{loss:.4g}", "steps/s": f"{steps_done / train_seconds:.2f}"}
                if last_metric is not None:
                    postfix[task.metric] = f"{last_metric:.4g}"
                bar.set_postfix(postfix, refresh=False)
                if lines is not None:
                    lines.update(position["step"], epoch, loss, metric_label, last_metric,
                                 steps_done / train_seconds)
                if callback is not None:
                    callback(position["step"], loss)
                if config.checkpoint_every and position["step"] % config.checkpoint_every == 0:
                    checkpoint()
                if (deadline is not None and clock() >= deadline
                        and position["step"] < total_steps):
                    stopped_early = True
                    break
                if interrupt.requested:
                    checkpoint()
                    message = (f"interrupted at step {position['step']}; checkpoint "
                               f"{run.checkpoint} written, run the same command again to resume")
                    print(message, file=sys.stderr)  # the CLI prints only "interrupted"
                    raise KeyboardInterrupt(message)
            if stopped_early:
                checkpoint()  # mid-epoch: the position inside the epoch is in the checkpoint
                break
            position["epoch"] += 1
            position["step_in_epoch"] = 0
            final = evaluate(position["epoch"])
            last_metric = final[config.eval_splits[0]]["metric"]
            if config.stop_below is not None and last_metric < config.stop_below:
                position["reached_stop_below"] = True  # solved: the checkpoint says so
            checkpoint()
            if deadline is not None and clock() >= deadline and position["epoch"] < config.epochs:
                stopped_early = True  # the epoch's last step hit the limit: stop after its eval
                break
    if not final:  # resumed a finished (or stopped) run: report its last evaluation
        final = {r["split"]: {"loss": r["loss"], "metric": r.get("metric")}
                 for r in history if r["split"] != "train"}
    if steps_done:
        steps_per_s = steps_done / train_seconds
    else:  # nothing trained in this call: the whole run's rate, not 0
        steps_per_s = position["step"] / position["train_seconds"] if position[
            "train_seconds"] else 0.0
    return TrainResult(out, history, final, position["step"], train_seconds, steps_per_s,
                       resumed_from, stopped_early=stopped_early,
                       already_finished=already_finished, total_steps=total_steps)




class _DeferredInterrupt:
    """Turn the first SIGINT into a flag the loop checks between steps (so a checkpoint is never
    taken half-way through an update); a second SIGINT raises KeyboardInterrupt at once.
    Outside the main thread (where signal handlers cannot be set) it does nothing."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt("second interrupt: stopped without a new checkpoint")
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            with contextlib.suppress(ValueError):
                self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def _check_same_config(stored: dict, config: TrainConfig, path):
    mine = config.to_dict()
    differ = sorted(k for k in mine if k not in ("epochs", "log_every") and
                    _jsonish(stored.get(k)) != _jsonish(mine[k]))
    if differ:
        details = ", ".join(f"{k}: checkpoint {stored.get(k)!r} vs now {mine[k]!r}" for k in differ)
        raise CheckpointError(
            f"{path} belongs to a run with a different configuration ({details}); use another "
            "--out directory or delete the checkpoint"
        )


def _jsonish(value):
    return json.loads(json.dumps(value))


