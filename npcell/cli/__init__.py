"""The ``npcell`` command: main.py wires up one module per subcommand."""

from .main import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "build_parser", "main"]
