"""Cell kinds. Importing this package registers every kind with :func:`make_cell`."""

from . import (
    fastweights,  # noqa: F401  (registers fw_rnn, fw_lstm)
    gru,  # noqa: F401  (registers gru)
    lnlstm,  # noqa: F401  (registers ln_lstm)
    lstm,  # noqa: F401  (registers lstm)
    peephole,  # noqa: F401  (registers peephole)
    teaching,  # noqa: F401  (registers teaching)
    torch_convert,  # noqa: F401  (nn.LSTM / nn.GRU converters; torch imported lazily)
    ulstm,  # noqa: F401  (registers ulstm)
    wmc,  # noqa: F401  (registers wmc)
)
from .base import CELLS, Cell, make_cell, register

__all__ = ["CELLS", "Cell", "make_cell", "register"]
