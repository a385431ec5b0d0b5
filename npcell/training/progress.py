"""Training progress output: a tqdm bar on a terminal, timed lines otherwise.

The loop (npcell/training/loop.py) asks :func:`progress_mode` which to show and feeds either;
nothing here knows about models or run directories.
"""

from __future__ import annotations

import importlib.util
import sys
import time

# tqdm.auto draws a notebook widget only with ipywidgets installed; without it, it falls back to
# the text bar *and* prints a TqdmWarning into every notebook, so pick the text bar ourselves.
if importlib.util.find_spec("ipywidgets") is not None:
    from tqdm.auto import tqdm
else:
    from tqdm.std import tqdm

__all__ = ["ProgressLines", "format_duration", "progress_mode", "tqdm"]


def progress_mode(progress) -> tuple[bool, bool]:
    """(tqdm bar, timed log lines): progress=None picks by whether stderr is a terminal."""
    if progress is None:
        interactive = sys.stderr.isatty()
        return interactive, not interactive
    return bool(progress), False


def format_duration(seconds: float) -> str:
    """'45 s', '12 min', '3 h 05 min': how long, at the precision a person plans with."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"


class ProgressLines:
    """Progress for output that is not a terminal: one line every ``every`` seconds of ``clock``.

    A line reads ``wmc on adding: step 1200/20000 (6%) epoch 2/200 loss 0.1671 test mse 0.1655
    14.2 steps/s ETA 22 min``; the loss is the last step's, the metric the last evaluation's.
    """

    def __init__(self, label, total_steps, epochs, *, every=30.0, clock=time.monotonic,
                 stream=None):
        self.label, self.total_steps, self.epochs = label, total_steps, epochs
        self.every, self.clock, self.stream = every, clock, stream
        self.last = clock()

    def update(self, step, epoch, loss, metric_name, metric, steps_per_s):
        now = self.clock()
        if now - self.last < self.every and step < self.total_steps:
            return
        self.last = now
        eta = (self.total_steps - step) / steps_per_s if steps_per_s > 0 else float("inf")
        shown = "" if metric is None else f" {metric_name} {metric:.4g}"
        print(f"{self.label}: step {step}/{self.total_steps} "
              f"({100 * step / self.total_steps:.0f}%) epoch {epoch + 1}/{self.epochs} "
              f"loss {loss:.4g}{shown} {steps_per_s:.3g} steps/s ETA {format_duration(eta)}",
              file=self.stream or sys.stderr, flush=True)
