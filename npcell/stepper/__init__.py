"""The BPTT stepper: walk a cell's forward and backward through time step by step, and check a
student's own step_backward against the reference (docs/stepper.md).

    view = npcell.stepper(cell, x)                      # x: (T, B, X); an anywidget in Jupyter
    view = npcell.stepper([lstm, peephole, wmc], x)     # compare: carries' norms on one axis
    view = npcell.stepper(cell, x, student="wmc.py")    # check mode (file of `exercises new`)
    view.step_back(); view.shown()["dc_prev"]           # what the view shows, (B, H)
    view.save_html("page.html")                         # one self-contained page

npcell/stepper/record.py records the walk, source.py reads the reference lines, check.py runs
the student in the grader's child, stepper.js draws it, page.py makes the standalone page.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..exercises import sandbox, variants
from ..exercises.generator import read_header
from ..sequence import as_array, check_input
from . import check as checking
from .record import check_kind, loss_gradient, record_walk
from .source import reference_lines
from .widget import StepperView, widget_class

MAX_CELLS = 3


def _cells(cell):
    cells = list(cell) if isinstance(cell, (list, tuple)) else [cell]
    if not 1 <= len(cells) <= MAX_CELLS:
        raise ConfigError(f"the stepper shows 1 to {MAX_CELLS} cells; got {len(cells)}")
    for c in cells:
        check_kind(c)
    kinds = [c.kind for c in cells]
    if len(set(kinds)) != len(kinds):
        raise ConfigError(f"compare cells of different kinds; got {kinds}")
    return cells


def _student_cell(cells, student):
    """The cell the student's backward is checked on: the kind its file names, else the first."""
    if callable(student):
        return cells[0]
    kind = read_header(student)["exercise"] if Path(student).is_file() else None
    match = [c for c in cells if c.kind == kind] if kind else cells[:1]
    if not match:
        raise ConfigError(f"{student} is the {kind!r} exercise, but the stepper shows "
                          f"{[c.kind for c in cells]}")
    return match[0]


def _paper_cell(cell):
    """The student file's cell is the paper's one: refuse options that change its parameters."""
    want = set(variants.base(cell.kind).param_shapes(1, 1))
    if set(cell.params) != want:
        raise ConfigError(f"check mode needs the paper's {cell.kind!r} cell (parameters "
                          f"{sorted(want)}); this cell has {sorted(cell.params)}")


def stepper(cell, x, student=None, *, dh=None, loss="last", seed=0, mode="backward", step=None,
            timeout=sandbox.TIMEOUT_S):
    """An interactive walk through the forward and BPTT of ``cell`` over ``x``.

    Parameters
    ----------
    cell : an lstm, peephole or wmc cell, or a list of up to three of different kinds (compare:
        the same input, their carries' norms on one axis; the first is shown first).
    x : (T, B, X) input.
    student : a student's step_backward, as the file ``npcell exercises new <kind>`` wrote or a
        function; run in the grader's isolated child at every step (check mode).
    dh : (T, B, H) dL/dh_t; default L = r . h_{T-1} with seeded random r (``loss='last'``) or
        L = sum_t r_t . h_t (``loss='every'``).
    mode : 'backward' (starts at t = T-1, where BPTT starts) or 'forward' (starts at t = 0).

    Returns a StepperWidget (:func:`widget_class`; anywidget installed) or a
    :class:`StepperView`, both with ``step``, ``step_back()``, ``step_forward()``, ``jump(t)``,
    ``shown()``, ``check`` and ``save_html(path)``.
    """
    cells = _cells(cell)
    walks, arrays = {}, {}
    for c in cells:
        xs = as_array(c, x, "x")
        check_input(c, xs)
        if dh is None:
            grad = c.xp.asarray(loss_gradient((*xs.shape[:2], c.hidden_size), loss, seed),
                                dtype=c.dtype)
        else:
            grad = as_array(c, dh, "dh")
        walk, arrays[c.kind] = record_walk(c, xs, grad)
        walks[c.kind] = walk | {"source": reference_lines(c.kind)}
    result = None
    if student is not None:
        target = _student_cell(cells, student)
        _paper_cell(target)
        result = checking.check_student(student, target.kind, arrays[target.kind],
                                        timeout=timeout)
    T = walks[cells[0].kind]["T"]
    data = {"T": T, "walks": walks, "check": None if result is None else result.to_dict()}
    first = cells[0].kind if result is None else result.kind
    start = (T - 1 if mode == "backward" else 0) if step is None else step
    if not (isinstance(start, int) and 0 <= start < T):
        raise ConfigError(f"step must be an int in 0 ... {T - 1}; got {start!r}")
    cls = widget_class() or StepperView
    return cls(data, arrays, result, step=start, mode=mode, kind=first)


__all__ = ["StepperView", "stepper", "widget_class"]
