"""The adding problem (Arjovsky et al. 2016 / Le et al. 2015 form).

Input (T, B, 2): channel 0 holds values ~ U(0, 1); channel 1 is a mask with exactly two 1s, the
first uniformly in the first half of the sequence and the second in the second half.
Target (B, 1): the sum of the two marked values, read at the last step; loss MSE. Always
predicting 1 scores MSE = Var(U1 + U2) = 2/12 = 1/6, the baseline to beat.
"""

from __future__ import annotations

import numpy

from ..errors import ConfigError
from .base import Task, check_positive

BASELINE_MSE = 1.0 / 6.0


def make_batch(T: int, batch_size: int, rng: numpy.random.Generator, dtype="float64"):
    """One batch: x (T, B, 2), y (B, 1). ``rng`` is a numpy Generator (seeded by the caller)."""
    if T < 2:
        raise ConfigError(f"the adding problem needs T >= 2 (two markers); got T={T}")
    values = rng.uniform(0.0, 1.0, size=(T, batch_size))
    mask = numpy.zeros((T, batch_size))
    half = T // 2
    first = rng.integers(0, half, size=batch_size)
    second = rng.integers(half, T, size=batch_size)
    cols = numpy.arange(batch_size)
    mask[first, cols] = 1.0
    mask[second, cols] = 1.0
    x = numpy.stack([values, mask], axis=-1).astype(dtype)
    y = (values[first, cols] + values[second, cols])[:, None].astype(dtype)
    return x, y


class AddingTask(Task):
    """The adding problem as a training task: MSE read out from h_T, baseline 1/6.

    ``n_train`` training sequences (a fixed set, or drawn afresh each epoch with ``fresh=True``)
    and ``n_test`` test sequences, all from :func:`make_batch` with Generators seeded by
    (seed, split, epoch). The WMC paper does not say how many sequences an epoch holds; it is a
    parameter here.
    """

    name = "adding"
    inputs = "real"
    input_size = 2
    num_outputs = 1
    loss = "mse"
    readout = "last"
    metric = "mse"
    baseline = BASELINE_MSE

    def __init__(self, T=200, n_train=10_000, n_test=1_000, fresh=False, seed=0):
        super().__init__(seed)
        self.T = check_positive("T", T, minimum=2)
        self.n_train = check_positive("n_train", n_train)
        self.n_test = check_positive("n_test", n_test)
        self.fresh = bool(fresh)

    def _make_split(self, split, epoch):
        n = self.n_train if split == "train" else self.n_test
        x, y = make_batch(self.T, n, self._rng(split, epoch), dtype="float64")
        return {"x": x, "y": y}
