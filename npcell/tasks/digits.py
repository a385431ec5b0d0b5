"""Sequential 8x8 digits: an offline, seconds-scale stand-in for sequential MNIST.

scikit-learn ships 1,797 8x8 digit images (UCI "optdigits", values 0..16, 10 classes) with its
wheel. Each image becomes 64 steps of one pixel, read left to right and top to bottom, scaled to
[0, 1]; the class is read out from h_T (the sMNIST recipe of Le et al. 2015 at 1/12 the length).
``permuted=True`` feeds the pixels in one fixed random order (``permutation_seed``, the same for
every run), the pMNIST analogue.

Split: a fixed shuffle (``split_seed``, independent of the run seed, so every run sees the same
test images) into 1,297 train / 250 valid / 250 test.

The data come from ``sklearn.datasets.load_digits`` (extra ``npcell[data]``) or from a CSV file in
the same layout (one image per line: 64 integer pixels, then the label; ``.gz`` allowed), which is
what the tests use.
"""

from __future__ import annotations

from pathlib import Path

import numpy

from .base import DataError, Task

N_PIXELS = 64
N_VALID = 250
N_TEST = 250


def load_digits_arrays(path=None):
    """(images (N, 64) float in [0, 1], labels (N,) int64).

    path None: scikit-learn's bundled copy. Otherwise a CSV with 65 integer columns per line
    (64 pixels in 0..16, then the label 0..9).
    """
    if path is None:
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise DataError(
                "the digits task needs scikit-learn (pip install 'npcell[data]') or a CSV file "
                "of 65 columns (64 pixels 0..16, label) given as path"
            ) from None
        bunch = load_digits()
        pixels, labels = bunch.data, bunch.target
    else:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"digits file {path} does not exist")
        try:
            table = numpy.loadtxt(path, delimiter=",", ndmin=2)
        except ValueError as err:
            raise DataError(f"digits file {path} is not a comma-separated table of numbers "
                            f"({err})") from None
        if table.shape[1] != N_PIXELS + 1:
            raise DataError(f"digits file {path} must have {N_PIXELS + 1} columns per line "
                            f"(64 pixels, label); got {table.shape[1]}")
        pixels, labels = table[:, :N_PIXELS], table[:, N_PIXELS]
    if pixels.size and (pixels.min() < 0 or pixels.max() > 16):
        raise DataError(f"digit pixels must lie in 0..16; got {pixels.min()}..{pixels.max()}")
    if labels.size and (labels.min() < 0 or labels.max() > 9 or
                        not numpy.all(labels == numpy.round(labels))):
        raise DataError("digit labels must be integers 0..9")
    return pixels.astype(numpy.float64) / 16.0, labels.astype(numpy.int64)


class DigitsTask(Task):
    """Sequential (or permuted) 8x8 digits: x (64, B, 1) in [0, 1], label from h_T."""

    name = "digits"
    inputs = "real"
    input_size = 1
    num_outputs = 10
    loss = "ce"
    readout = "last"
    metric = "accuracy"
    baseline = float(numpy.log(10.0))  # CE of a uniform guess over 10 classes
    splits = ("train", "valid", "test")

    def __init__(self, permuted=False, path=None, n_valid=N_VALID, n_test=N_TEST,
                 split_seed=0, permutation_seed=0, seed=0):
        super().__init__(seed)
        self.permuted = bool(permuted)
        self.name = "digits-permuted" if self.permuted else "digits"
        pixels, labels = load_digits_arrays(path)
        n = len(labels)
        if n_valid + n_test >= n:
            raise DataError(f"{n} digit images cannot give {n_valid} valid + {n_test} test images "
                            "and a training set")
        self.permutation = (numpy.random.default_rng(permutation_seed).permutation(N_PIXELS)
                            if self.permuted else numpy.arange(N_PIXELS))
        order = numpy.random.default_rng(split_seed).permutation(n)
        parts = {"test": order[:n_test], "valid": order[n_test:n_test + n_valid],
                 "train": order[n_test + n_valid:]}
        sequences = pixels[:, self.permutation]  # (N, 64): step t reads pixel permutation[t]
        self._data = {
            split: {"x": sequences[idx].T[:, :, None], "y": labels[idx]}  # x: (64, n, 1)
            for split, idx in parts.items()
        }

    def _make_split(self, split, epoch):
        return self._data[split]
