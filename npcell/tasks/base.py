"""What a task is for the training loop: splits of sequences, a loss, a readout and a metric.

A :class:`Task` stores each split time-major and hands out batches by index::

    task = make_task("adding", T=200, n_train=10_000)
    batch = task.batch("train", indices, epoch=3, dtype="float32")
    batch.x        # (T, B, X) floats, or (T, B) int tokens when task.inputs == "tokens"
    batch.y        # targets: (B, K) floats (MSE at the last step), (B,) ints (class at the
                   # last step) or (T, B) ints (a class at every step)
    batch.metric_mask   # (T, B) 0/1 or None: which positions the accuracy counts

Everything a batch contains is a deterministic function of the task's seed, the split, the
epoch (for tasks that draw fresh training data each epoch) and the indices, so a run resumed
from a checkpoint sees exactly the data the uninterrupted run saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy

from ..backend import resolve_dtype
from ..errors import ConfigError

LOSSES = ("mse", "ce")
READOUTS = ("last", "every")
METRICS = ("mse", "accuracy", "bpc")


@dataclass
class Batch:
    """One batch. x (T, B, X) float or (T, B) int; y see the module docstring; masks (T, B)."""

    x: numpy.ndarray
    y: numpy.ndarray
    loss_mask: numpy.ndarray | None = None
    metric_mask: numpy.ndarray | None = None

    @property
    def size(self) -> int:
        return int(self.x.shape[1])


class Task:
    """Base class. Subclasses set the descriptive attributes and implement :meth:`_make_split`.

    Attributes
    ----------
    name : task name as :func:`npcell.tasks.make_task` knows it.
    inputs : ``'real'`` (float features, ``input_size`` of them) or ``'tokens'`` (int ids in
        ``[0, input_size)``, fed one-hot or through an embedding).
    input_size, num_outputs : X (or vocabulary size) and the readout width K.
    loss : ``'mse'`` or ``'ce'``; readout : ``'last'`` (from h_T) or ``'every'`` (from every h_t).
    metric : ``'mse'``, ``'accuracy'`` or ``'bpc'`` (bits per character = CE / ln 2).
    baseline : the loss a trivial, memoryless predictor scores (None when there is no standard one).
    fresh : draw new training sequences every epoch (generated tasks only).
    """

    name = "task"
    inputs = "real"
    input_size = 1
    num_outputs = 1
    loss = "mse"
    readout = "last"
    metric = "mse"
    baseline: float | None = None
    splits: tuple[str, ...] = ("train", "test")
    fresh = False

    def __init__(self, seed=0):
        if not isinstance(seed, (int, numpy.integer)) or isinstance(seed, bool):
            raise ConfigError(f"task seed must be an int; got {seed!r}")
        self.seed = int(seed)
        self._cache: dict = {}

    # ----- what a subclass defines -----------------------------------------------------------
    def _make_split(self, split: str, epoch: int) -> dict:
        """Return the split as a dict of time-major arrays: 'x', 'y' (+ 'loss_mask',
        'metric_mask'), all indexed by sequence on axis 1 (axis 0 for 'y' of last-step tasks)."""
        raise NotImplementedError

    def _rng(self, split: str, epoch: int) -> numpy.random.Generator:
        """A Generator for (seed, split, epoch): independent streams, reproducible anywhere."""
        split_id = {"train": 0, "valid": 1, "test": 2}[split]
        return numpy.random.default_rng([self.seed, split_id, epoch])

    # ----- shared behaviour ------------------------------------------------------------------
    def _split(self, split: str, epoch: int) -> dict:
        if split not in self.splits:
            raise ConfigError(f"task {self.name!r} has splits {list(self.splits)}; got {split!r}")
        key = (split, epoch if (split == "train" and self.fresh) else 0)
        if key not in self._cache:
            if split == "train":  # keep one training epoch at a time in memory
                for old in [k for k in self._cache if k[0] == "train"]:
                    del self._cache[old]
            self._cache[key] = self._make_split(split, key[1])
        return self._cache[key]

    def size(self, split: str) -> int:
        """Number of sequences in ``split``."""
        return int(self._split(split, 0)["x"].shape[1])

    def batch(self, split: str, indices, *, epoch: int = 0, dtype="float64") -> Batch:
        """The sequences ``indices`` of ``split`` (for fresh tasks: as drawn for ``epoch``)."""
        data = self._split(split, epoch)
        idx = numpy.asarray(indices)
        x = data["x"][:, idx]
        if self.inputs == "real":
            x = self._input_transform(x).astype(resolve_dtype(dtype), copy=False)
        y = data["y"][idx] if self.readout == "last" else data["y"][:, idx]
        if self.loss == "mse":
            y = y.astype(resolve_dtype(dtype), copy=False)
        loss_mask = data.get("loss_mask")
        metric_mask = data.get("metric_mask")
        return Batch(
            x=x,
            y=y,
            loss_mask=None if loss_mask is None else loss_mask[:, idx],
            metric_mask=None if metric_mask is None else metric_mask[:, idx],
        )

    def _input_transform(self, x):
        """Hook for stored-compact inputs (e.g. uint8 pixels -> [0, 1] floats)."""
        return x

    @property
    def seq_len(self) -> int:
        return int(self._split("test", 0)["x"].shape[0])

    def describe(self) -> str:
        base = "n/a" if self.baseline is None else f"{self.baseline:.4f}"
        return (f"{self.name}: inputs={self.inputs} ({self.input_size}), "
                f"outputs={self.num_outputs}, "
                f"loss={self.loss} at {self.readout} step(s), metric={self.metric}, "
                f"memoryless baseline loss={base}")

    def __repr__(self):
        return f"<{type(self).__name__} {self.describe()}>"


def check_positive(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}; got {value!r}")
    return int(value)


class DataError(ConfigError):
    """A data file is missing, truncated or not in the expected format (message names the file,
    what was expected and what was found)."""
