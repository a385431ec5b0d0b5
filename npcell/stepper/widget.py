"""The stepper object: an anywidget when anywidget is installed (``pip install npcell[stepper]``),
else a plain object with the same Python API whose notebook display is the standalone page.

Synced state: ``data`` (the recorded walks, reference lines and check verdicts; JSON),
``step`` (t, 0-based as npcell.backward's on_step), ``mode`` ('forward' | 'backward'),
``kind`` (the cell shown).
"""

from __future__ import annotations

import functools
import html
import importlib.util
from pathlib import Path

import numpy

from ..errors import ConfigError
from .page import CSS, ESM, page_html

MODES = ("forward", "backward")


class _StepperAPI:
    """Navigation, what is shown, and save_html: shared by the widget and the plain view."""

    def _setup(self, data, arrays, check, *, step, mode, kind):
        self._arrays = arrays  # kind -> record()'s NumPy arrays (caches, dstates, grads)
        self.check = check  # CheckResult of the student, or None
        self.data = data
        self.mode = mode
        self.kind = kind
        self.step = step

    @property
    def T(self) -> int:
        return self.data["T"]

    def step_back(self):
        """t -> t-1 (stops at 0). Returns self, so notebook cells can chain and display it."""
        return self.jump(self.step - 1)

    def step_forward(self):
        """t -> t+1 (stops at T-1)."""
        return self.jump(self.step + 1)

    def jump(self, t):
        """Show step t (clipped to 0 ... T-1)."""
        self.step = int(min(max(int(t), 0), self.T - 1))
        return self

    def shown(self) -> dict:
        """The arrays the view shows at the current step, as (B, H) NumPy arrays: backward
        ('dh', 'dh_loss', 'dh_carried', 'dc_carried' and every local gradient by its reference
        name) or forward (gates 'i', 'f', 'g', 'o', 'c', 'h'), by the current ``mode``."""
        walk = self.data["walks"][self.kind]
        step = walk[self.mode][self.step]
        flat = {**step.get("locals", {}), **{k: v for k, v in step.items() if k in (
            "dh", "dh_loss", "dh_carried", "dc_carried", "i", "f", "g", "o", "c", "h")}}
        return {k: numpy.array(v, dtype=float).T for k, v in flat.items()}

    def state(self) -> dict:
        return {"data": self.data, "step": self.step, "mode": self.mode, "kind": self.kind}

    def html(self) -> str:
        """The standalone page of the current state (one self-contained HTML document)."""
        return page_html(self.state(), f"npcell BPTT stepper: {self.kind}")

    def save_html(self, path) -> Path:
        """Write the standalone page (data and code inlined; opens from disk, fetches nothing)."""
        path = Path(path)
        path.write_text(self.html(), encoding="utf-8")
        return path

    def _check_mode(self, mode):
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}; got {mode!r}")


@functools.cache
def widget_class():
    """StepperWidget, an anywidget.AnyWidget subclass, or None without the extra. anywidget
    (with ipywidgets) is imported on first use, as matplotlib is, so ``import npcell`` stays
    light."""
    if importlib.util.find_spec("anywidget") is None:
        return None
    import anywidget
    import traitlets

    class StepperWidget(_StepperAPI, anywidget.AnyWidget):
        """The BPTT stepper as an anywidget (JupyterLab, Notebook 7, VS Code, Colab)."""

        _esm = ESM
        _css = CSS
        data = traitlets.Dict().tag(sync=True)
        step = traitlets.Int(0).tag(sync=True)
        mode = traitlets.Enum(MODES, "backward").tag(sync=True)
        kind = traitlets.Unicode("").tag(sync=True)

        def __init__(self, data, arrays, check, *, step, mode, kind):
            super().__init__()
            self._check_mode(mode)
            self._setup(data, arrays, check, step=step, mode=mode, kind=kind)

        def __repr__(self):
            return (f"StepperWidget(kind={self.kind!r}, T={self.T}, step={self.step}, "
                    f"mode={self.mode!r})")

    return StepperWidget


class StepperView(_StepperAPI):
    """The same stepper without anywidget: displays as the standalone page in an iframe."""

    def __init__(self, data, arrays, check, *, step, mode, kind):
        self._check_mode(mode)
        self._setup(data, arrays, check, step=step, mode=mode, kind=kind)

    def _repr_html_(self):
        return (f'<iframe srcdoc="{html.escape(self.html())}" style="width:100%;height:720px;'
                'border:0"></iframe>')

    def __repr__(self):
        return f"StepperView(kind={self.kind!r}, T={self.T}, step={self.step}, mode={self.mode!r})"
