"""Copying memory (Arjovsky, Shah & Bengio 2016), the convention of the original paper.

Tokens: data symbols 0..7 (a0..a7), blank 8 (a8), delimiter 9 (a9). Sequence length T + 20:

=========  =========================================================================
position   0..9           10..T+8         T+9          T+10..T+19
input      10 symbols     T-1 blanks      delimiter    10 blanks
target     blank          blank           blank        the 10 symbols, in order
=========  =========================================================================

The first answer is due on the step *after* the delimiter. Loss: mean cross-entropy over all
T + 20 steps, 9 output classes (blank + 8 symbols; the delimiter is never a target).

Memoryless baseline: output blank for the first T + 10 steps and a uniform guess over the 8
symbols for the last 10: cross-entropy 10 ln 8 / (T + 20) (0.1733 at T = 100, 0.0945 at T = 200).

**Another convention exists.** The widely copied expRNN generator (Lezcano-Casado & Martinez-Rubio
2019; symbols 1..8, blank 0, marker 9) builds 10 symbols + L blanks + marker + *9* blanks, so the
first answer is due *at the marker step itself*, one step earlier than here. Numbers from the two
generators are not interchangeable; ``convention="exprnn"`` reproduces that timing (with this
module's token ids) for comparisons.
"""

from __future__ import annotations

import math

import numpy

from ..errors import ConfigError
from .base import Task, check_positive

N_SYMBOLS = 8  # a0..a7
BLANK = 8
DELIMITER = 9
VOCAB = 10  # input tokens
N_CLASSES = 9  # output classes: 8 symbols + blank
N_COPY = 10  # symbols to remember
CONVENTIONS = ("arjovsky", "exprnn")


def baseline_cross_entropy(T: int) -> float:
    """Mean CE of the best memoryless predictor: 10 ln 8 / (T + 20)."""
    return N_COPY * math.log(N_SYMBOLS) / (T + 2 * N_COPY)


def make_batch(T: int, batch_size: int, rng: numpy.random.Generator, convention="arjovsky"):
    """One batch of int tokens: x (T+20, B), y (T+20, B).

    ``convention='arjovsky'`` (default): delimiter at step T+9, answers at T+10..T+19.
    ``convention='exprnn'``: delimiter at step T+10, answers at T+10..T+19 (due at the marker).
    """
    T = check_positive("T", T)
    if convention not in CONVENTIONS:
        raise ConfigError(f"copy convention must be one of {CONVENTIONS}; got {convention!r}")
    length = T + 2 * N_COPY
    symbols = rng.integers(0, N_SYMBOLS, size=(N_COPY, batch_size))
    x = numpy.full((length, batch_size), BLANK, dtype=numpy.int64)
    x[:N_COPY] = symbols
    marker_step = T + N_COPY - 1 if convention == "arjovsky" else T + N_COPY
    x[marker_step] = DELIMITER
    y = numpy.full((length, batch_size), BLANK, dtype=numpy.int64)
    y[length - N_COPY:] = symbols  # answers fill the last 10 steps in both conventions
    return x, y


def answer_mask(T: int, batch_size: int) -> numpy.ndarray:
    """(T+20, B) 1.0 on the 10 answer steps: where the copy accuracy is measured."""
    mask = numpy.zeros((T + 2 * N_COPY, batch_size))
    mask[T + N_COPY:] = 1.0
    return mask


class CopyTask(Task):
    """Copying memory as a training task: CE at every step, accuracy on the 10 answer steps."""

    name = "copy"
    inputs = "tokens"
    input_size = VOCAB
    num_outputs = N_CLASSES
    loss = "ce"
    readout = "every"
    metric = "accuracy"

    def __init__(self, T=100, n_train=10_000, n_test=1_000, fresh=False, convention="arjovsky",
                 seed=0):
        super().__init__(seed)
        self.T = check_positive("T", T)
        self.n_train = check_positive("n_train", n_train)
        self.n_test = check_positive("n_test", n_test)
        self.fresh = bool(fresh)
        if convention not in CONVENTIONS:
            raise ConfigError(f"copy convention must be one of {CONVENTIONS}; got {convention!r}")
        self.convention = convention
        self.baseline = baseline_cross_entropy(self.T)

    def _make_split(self, split, epoch):
        n = self.n_train if split == "train" else self.n_test
        x, y = make_batch(self.T, n, self._rng(split, epoch), self.convention)
        return {"x": x, "y": y, "metric_mask": answer_mask(self.T, n)}
