"""Named training setups: the papers' experiments as :class:`~npcell.train.TrainConfig` values.

``npcell train --preset wmc-adding-400 --out runs/x`` starts from the preset and lets any flag
override it (``--epochs 5``). Names are ``<cell>-<setup>``; each entry says where its numbers come
from. Where the paper is silent (how many adding sequences make an epoch) the choice is ours and
the note says so.

WMC paper (Landi et al. 2021, section 4), cells lstm / peephole / wmc:

* adding T=200, 400: H=128, SGD Nesterov lr 1e-2 momentum 0.9, batch 128, clip 1.0, 200 epochs.
* copy T=100, 200 (Arjovsky setup): the same, 500 epochs.
* sMNIST / pMNIST: H=128, the same optimiser, 200 epochs, 50k/10k/10k split.
* PTB char LM: single-layer AWD-LSTM recipe, BPTT 150 / 300; PTB is not shipped (licence), so the
  preset trains on the bundled public-domain tinyshakespeare corpus (1.1 MB) or on ``--text FILE``.

Fast-weight comparison (Keller et al. 2018; co-author's ART code, reference/cells.md section 7),
cells fw_lstm / fw_rnn / ln_lstm (and lstm): ART task 1 and the task-2 layout ("mart") with
K in {4, 8, 16}, embedding 100, H=100, Adam 1e-4, batch 128, 100 epochs, 100k/10k/20k sequences.
Our readout is one linear layer (the co-author's is Linear-ReLU-Linear).
"""

from __future__ import annotations

from .errors import ConfigError

WMC_CELLS = ("lstm", "peephole", "wmc")
FW_CELLS = ("fw_lstm", "fw_rnn", "ln_lstm", "lstm")

_WMC_OPTIMISER = dict(optimizer="sgd", lr=1e-2, momentum=0.9, nesterov=True, clip=1.0, batch=128,
                      hidden=128)


def _build() -> dict:
    presets: dict = {}
    for cell in WMC_CELLS:
        for T in (200, 400):
            presets[f"{cell}-adding-{T}"] = (
                dict(task="adding", task_options={"T": T, "n_train": 10_000, "n_test": 1_000},
                     cell=cell, epochs=200, **_WMC_OPTIMISER),
                "WMC paper 4.1 (adding); 10,000 training sequences per epoch is our choice "
                "(the paper does not say)",
            )
        for T in (100, 200):
            presets[f"{cell}-copy-{T}"] = (
                dict(task="copy", task_options={"T": T, "n_train": 10_000, "n_test": 1_000},
                     cell=cell, epochs=500, **_WMC_OPTIMISER),
                "WMC paper 4.1 (copying, Arjovsky setup, 500 epochs); 10,000 sequences per "
                "epoch is our choice",
            )
        for task in ("smnist", "pmnist"):
            presets[f"{cell}-{task}"] = (
                dict(task=task, task_options={}, cell=cell, epochs=200, **_WMC_OPTIMISER),
                "WMC paper 4.2 (needs --mnist-dir with the four IDX files)",
            )
        for task in ("digits", "digits-permuted"):
            presets[f"{cell}-{task}"] = (
                dict(task=task, task_options={}, cell=cell, epochs=100, **_WMC_OPTIMISER),
                "npcell's small offline stand-in for sMNIST/pMNIST (scikit-learn 8x8 digits, "
                "64 steps); optimiser as in WMC paper 4.2",
            )
        for T in (150, 300):
            presets[f"{cell}-charlm-{T}"] = (
                dict(task="charlm", task_options={"T": T}, cell=cell,
                     hidden=512, embedding=200,
                     optimizer="adam", lr=2e-3, momentum=0.0, nesterov=False, clip=0.25,
                     batch=128, epochs=50),
                "WMC paper 4.3 (PTB char, single-layer AWD-LSTM recipe, 512 hidden units, "
                "BPTT T); PTB is not bundled: trains on the bundled tinyshakespeare corpus "
                "or --text FILE",
            )
    for cell in FW_CELLS:
        for variant in ("art", "mart"):
            for K in (4, 8, 16):
                presets[f"{cell}-{variant}-k{K}"] = (
                    dict(task="art",
                         task_options={"K": K, "variant": variant, "n_train": 100_000,
                                       "n_valid": 10_000, "n_test": 20_000},
                         cell=cell, hidden=100, embedding=100, optimizer="adam", lr=1e-4,
                         momentum=0.0, nesterov=False, clip=None, batch=128, epochs=100,
                         eval_splits=("valid", "test")),
                    "FW-LSTM paper (Keller et al. 2018) via the co-author's ART code defaults; "
                    "mart = all keys first, then all values (task 2 layout)",
                )
    return presets


PRESETS = _build()


def preset_config(name: str):
    """A fresh :class:`~npcell.train.TrainConfig` for preset ``name``."""
    from .train import TrainConfig

    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; see `npcell train --list-presets`")
    values, _ = PRESETS[name]
    values = dict(values)
    values["task_options"] = dict(values["task_options"])
    return TrainConfig(preset=name, **values)


def format_presets() -> str:
    """One line per preset: name, task, cell, key hyper-parameters, source."""
    lines = []
    for name, (v, note) in PRESETS.items():
        opts = ",".join(f"{k}={x}" for k, x in v["task_options"].items())
        lines.append(f"{name:<26} {v['task']}({opts}) H={v['hidden']} {v['optimizer']} "
                     f"lr={v['lr']} batch={v['batch']} epochs={v['epochs']}  -- {note}")
    return "\n".join(lines)
