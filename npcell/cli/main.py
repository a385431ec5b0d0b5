"""The ``npcell`` command.

Each subcommand is one module of npcell/cli/ with a pair ``add_cli_arguments(parser)`` /
``cli_main(args) -> int``; this file only wires them up, catches
npcell's own errors (exit 2, one line, no traceback unless ``--debug``), ends quietly when the
reader of its output closes the pipe (``npcell ... | head``) and picks the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

from ..errors import NpcellError, UsageError

# name -> (module, help). The module provides add_cli_arguments(parser) and cli_main(args).
COMMANDS = {
    "demo": ("npcell.cli.demo", "gradcheck table, a long forward/backward and figures (make demo)"),
    "gradcheck": ("npcell.cli.gradcheck", "finite-difference check of a cell's BPTT"),
    "diagnose": ("npcell.cli.diagnose", "diagnose gradients of cells on a task and plot them"),
    "train": ("npcell.cli.train", "train a cell on a task"),
    "plot-run": ("npcell.cli.plot_run", "learning curves of one or more run directories"),
    "bench": ("npcell.cli.bench", "moved to benchmarks/bench.py in a source checkout"),
    "exercises": ("npcell.cli.exercises", "list, create and auto-grade gradient exercises"),
    "stepper": ("npcell.cli.stepper", "write the interactive BPTT stepper as one HTML page"),
}


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but its errors read like npcell's own: one line, exit 2, no usage dump."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="npcell",
        description="LSTM-family cells with hand-derived BPTT: checks, diagnostics, training.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    parser.command_parsers = {}
    for name, (module_name, help_text) in COMMANDS.items():
        if importlib.util.find_spec(module_name) is None:
            continue  # a command whose module is not part of this install
        module = importlib.import_module(module_name)
        if not hasattr(module, "add_cli_arguments"):
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        # SUPPRESS: `npcell --debug CMD` must not be reset to False by the subcommand's default
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks on errors")
        parser.command_parsers[name] = p
        module.add_cli_arguments(p)
        p.set_defaults(_run=module.cli_main)
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "_any_arguments", False):  # named by the subcommand's parser
        parser.command_parsers[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        status = int(args._run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the try, not at interpreter exit
        return status
    except (NpcellError, UsageError, FileNotFoundError, IsADirectoryError, PermissionError) as err:
        if args.debug:
            raise
        print(f"npcell {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"npcell {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _closed_pipe()


def _closed_pipe() -> int:
    """The reader of our output went away (``npcell ... | head``): stop quietly, as cat does.

    stdout is pointed at /dev/null so that Python's own flush at exit does not raise the same
    error again; 141 = 128 + SIGPIPE, the status a shell gives a command stopped that way.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141


if __name__ == "__main__":
    sys.exit(main())
