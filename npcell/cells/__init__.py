"""Cell kinds. Importing this package registers every kind with :func:`make_cell`."""

from . import lstm  # noqa: F401  (registers lstm, peephole, wmc)
from . import gru  # noqa: F401  (registers gru)
from . import teaching  # noqa: F401  (registers teaching)
from . import ulstm  # noqa: F401  (registers ulstm)
from . import lnlstm  # noqa: F401  (registers ln_lstm)
from . import fastweights  # noqa: F401  (registers fw_rnn, fw_lstm)
from . import torch_convert  # noqa: F401  (nn.LSTM / nn.GRU converters; torch imported lazily)
from .base import CELLS, Cell, make_cell, register

__all__ = ["CELLS", "Cell", "make_cell", "register"]
