"""The adding problem (Arjovsky et al. 2016 / Le et al. 2015 form).

Input (T, B, 2): channel 0 holds values ~ U(0, 1); channel 1 is a mask with exactly two 1s, the
first uniformly in the first half of the sequence and the second in the second half.
Target (B, 1): the sum of the two marked values, read at the last step; loss MSE. Always
predicting 1 scores MSE = Var(U1 + U2) = 2/12 = 1/6, the baseline to beat.
"""

from __future__ import annotations

import numpy

BASELINE_MSE = 1.0 / 6.0


def make_batch(T: int, batch_size: int, rng: numpy.random.Generator, dtype="float64"):
    """One batch: x (T, B, 2), y (B, 1). ``rng`` is a numpy Generator (seeded by the caller)."""
    if T < 2:
        from ..errors import ConfigError

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
