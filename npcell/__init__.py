"""npcell: LSTM-family recurrent cells in NumPy/CuPy with hand-derived BPTT.

    import npcell
    cell = npcell.make_cell("wmc", input_size=2, hidden_size=64)
    h, state, cache = npcell.forward(cell, x)           # x: (T, B, X)
    grads, dx, dstate0 = npcell.backward(cell, dh, cache)
    print(npcell.gradcheck(cell, x))
    view = npcell.stepper(cell, x)                      # walk BPTT step by step (Jupyter)
"""

from . import plots  # matplotlib itself is imported only when a plot is drawn
from .backend import cupy_available, get_backend, use_backend
from .cells import CELLS, Cell, make_cell
from .checks import get_memory_limit, set_memory_limit
from .diagnostics import Comparison, Diagnosis, compare, diagnose
from .errors import (
    ArgumentTypeError,
    BackendError,
    CheckpointError,
    ConfigError,
    DTypeError,
    MemoryLimitError,
    NonFiniteError,
    NpcellError,
    ShapeError,
)
from .gradcheck import GradcheckReport, gradcheck
from .sequence import SequenceCache, backward, estimate_cache_bytes, forward
from .stepper import stepper

__version__ = "0.1.0"

__all__ = [
    "CELLS",
    "ArgumentTypeError",
    "BackendError",
    "Cell",
    "CheckpointError",
    "Comparison",
    "ConfigError",
    "DTypeError",
    "Diagnosis",
    "GradcheckReport",
    "MemoryLimitError",
    "NonFiniteError",
    "NpcellError",
    "SequenceCache",
    "ShapeError",
    "backward",
    "compare",
    "cupy_available",
    "diagnose",
    "estimate_cache_bytes",
    "get_memory_limit",
    "forward",
    "get_backend",
    "gradcheck",
    "make_cell",
    "plots",
    "set_memory_limit",
    "stepper",
    "use_backend",
]
