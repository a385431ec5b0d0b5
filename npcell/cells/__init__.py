"""Cell kinds. Importing this package registers every kind with :func:`make_cell`."""

from . import lstm  # noqa: F401  (registers lstm, peephole, wmc)
from .base import CELLS, Cell, make_cell, register

__all__ = ["CELLS", "Cell", "make_cell", "register"]
