"""Training: a cell + readout model (layers.py), optimisers (optim.py), the loop (loop.py), its
configuration and the papers' presets (config.py), and checkpoints (checkpoint.py).

::

    from npcell.training import TrainConfig, train
    result = train(TrainConfig(task="adding", cell="wmc", epochs=2), "runs/wmc-s0")
"""

from .config import PRESETS, TrainConfig, format_presets, preset_config
from .loop import SequenceModel, TrainResult, build, train
from .rundir import read_metrics

__all__ = [
    "PRESETS",
    "SequenceModel",
    "TrainConfig",
    "TrainResult",
    "build",
    "format_presets",
    "preset_config",
    "read_metrics",
    "train",
]
