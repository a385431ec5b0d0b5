"""Task generators (time-major inputs) and their losses (each module's docstring: its generator).

``make_task(name, **options)`` builds a :class:`~npcell.tasks.base.Task` the training loop can
use; each module also exposes its plain generator (e.g. ``adding.make_batch``) for notebooks.

=================  ==============================================  =====================
name               what                                            metric (baseline)
=================  ==============================================  =====================
adding             sum of two marked values, MSE at h_T             MSE (1/6)
copy               copying memory, Arjovsky convention              accuracy (CE 10 ln8/(T+20))
digits             scikit-learn 8x8 digits, 64 steps of 1 pixel     accuracy
digits-permuted    the same, pixels in one fixed random order       accuracy
smnist / pmnist    MNIST from IDX files, 784 steps of 1 pixel       accuracy
charlm             next character of a text file                    bits per character
art                associative retrieval (Ba et al. 2016)           accuracy
=================  ==============================================  =====================
"""

from __future__ import annotations

import importlib

from ..errors import ConfigError

# name -> (module, class name, fixed options)
TASKS = {
    "adding": ("adding", "AddingTask", {}),
    "copy": ("copying", "CopyTask", {}),
    "digits": ("digits", "DigitsTask", {"permuted": False}),
    "digits-permuted": ("digits", "DigitsTask", {"permuted": True}),
    "smnist": ("mnist", "MnistTask", {"permuted": False}),
    "pmnist": ("mnist", "MnistTask", {"permuted": True}),
    "charlm": ("charlm", "CharLMTask", {}),
    "art": ("art", "ARTTask", {}),
}


def make_task(name: str, **options):
    """Build the task ``name`` (see the table above) with its options, e.g. ``T=200``."""
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; expected one of {sorted(TASKS)}")
    module_name, class_name, fixed = TASKS[name]
    module = importlib.import_module(f"{__name__}.{module_name}")
    cls = getattr(module, class_name)
    clash = sorted(set(options) & set(fixed))
    if clash:
        raise ConfigError(f"task {name!r} fixes {clash}; use the other task name instead")
    try:
        return cls(**fixed, **options)
    except TypeError as err:  # an option the task does not take
        import inspect

        accepted = [p for p in inspect.signature(cls).parameters if p not in fixed]
        raise ConfigError(f"task {name!r} accepts options {accepted}; got {sorted(options)} "
                          f"({err})") from None


__all__ = ["TASKS", "make_task"]
