"""Character-level language modelling on any text file; metric: bits per character (BPC).

Sources (all offline):

* ``text=None``: the bundled corpus, Shakespeare's plays as collected in Karpathy's
  tinyshakespeare (``tasks/data/tinyshakespeare.txt.gz``, 1,115,394 characters, public domain;
  source: github.com/karpathy/char-rnn ``data/tinyshakespeare/input.txt``), stored gzipped and
  read offline.
* ``text="small"``: a 4.5 KB text written for npcell (``tasks/data/default.txt``); enough to
  watch a model memorise in a test, not to generalise.
* ``text="pydoc"``: the Python standard library's ``pydoc_data.topics`` help texts (about
  465,000 characters, present in every Python install).
* ``text=PATH``: any UTF-8 text file.

The vocabulary is the sorted set of characters of the whole text. The text is cut into train /
valid / test as its first 90 % / next 5 % / last 5 %, and each part into windows of T + 1
characters starting every ``stride`` characters (default T: no overlap). A window gives inputs
x = chars[0:T] and targets y = chars[1:T+1]; the loss is the mean cross-entropy over all T
steps, and BPC = cross-entropy / ln 2. Each window starts from a zero state (no state carried
between windows), which is simpler than, and slightly pessimistic against, the stateful
truncated-BPTT recipe the PTB papers use.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy

from .base import DataError, Task, check_positive

DATA = Path(__file__).parent / "data"
CORPUS = DATA / "tinyshakespeare.txt.gz"  # the default corpus (> 1 MB of text)
SMALL_TEXT = DATA / "default.txt"
SPLIT_FRACTIONS = {"train": (0.0, 0.9), "valid": (0.9, 0.95), "test": (0.95, 1.0)}


def load_text(text=None) -> str:
    """The bundled corpus (None), the small test text ("small"), the stdlib pydoc topics
    ("pydoc") or a UTF-8 file."""
    if text is None:
        return gzip.decompress(CORPUS.read_bytes()).decode("utf-8")
    if text == "small":
        return SMALL_TEXT.read_text(encoding="utf-8")
    if text == "pydoc":
        from pydoc_data.topics import topics

        return "\n\n".join(topics[key] for key in sorted(topics))
    path = Path(text)
    if not path.is_file():
        raise DataError(f"text file {path} does not exist (use text=None for the bundled "
                        "corpus, 'small' for the test text or 'pydoc' for the standard "
                        "library's help texts)")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"text file {path} is not UTF-8 ({err})") from None


def windows(ids: numpy.ndarray, T: int, stride: int) -> numpy.ndarray:
    """(T + 1, N) time-major windows of ``ids`` starting every ``stride`` positions."""
    starts = numpy.arange(0, len(ids) - T, stride)
    return ids[starts[None, :] + numpy.arange(T + 1)[:, None]]


class CharLMTask(Task):
    """Next-character prediction; x (T, B) int ids, y (T, B) int ids, metric BPC."""

    name = "charlm"
    inputs = "tokens"
    loss = "ce"
    readout = "every"
    metric = "bpc"
    splits = ("train", "valid", "test")

    def __init__(self, text=None, T=100, stride=None, seed=0):
        super().__init__(seed)
        self.T = check_positive("T", T)
        self.stride = check_positive("stride", stride if stride is not None else self.T)
        self.source = "bundled" if text is None else str(text)
        corpus = load_text(text)
        self.vocabulary = sorted(set(corpus))
        self.input_size = self.num_outputs = len(self.vocabulary)
        self.baseline = float(numpy.log(len(self.vocabulary)))  # uniform guess, in nats
        lookup = {ch: k for k, ch in enumerate(self.vocabulary)}
        ids = numpy.fromiter((lookup[ch] for ch in corpus), dtype=numpy.int64, count=len(corpus))
        self._data = {}
        for split, (lo, hi) in SPLIT_FRACTIONS.items():
            part = ids[int(lo * len(ids)):int(hi * len(ids))]
            if len(part) <= self.T:
                raise DataError(
                    f"the {split} part of the text ({len(part)} characters) is shorter than one "
                    f"window of T+1={self.T + 1}; use a longer text or a smaller T"
                )
            chunks = windows(part, self.T, self.stride)
            self._data[split] = {"x": chunks[:-1], "y": chunks[1:]}

    def _make_split(self, split, epoch):
        return self._data[split]

    def encode(self, s: str) -> numpy.ndarray:
        lookup = {ch: k for k, ch in enumerate(self.vocabulary)}
        return numpy.array([lookup[ch] for ch in s], dtype=numpy.int64)

    def decode(self, ids) -> str:
        return "".join(self.vocabulary[int(k)] for k in ids)
