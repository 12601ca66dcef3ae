"""The ``packrat`` command: its parser and its entry point.

Server side (``server_commands``): ``serve``, ``coordinator``, ``frontend``,
``fsck``, ``config``, ``keygen``, and ``simulate`` (``packrat.simulator``);
client side (``client_commands``): ``put``, ``get``, ``exists``, ``rm``,
``stat``.  Every subcommand exits with a status from ``core.exits``.
"""

from __future__ import annotations

import argparse
import sys

from packrat import __version__
from packrat.cli import client_commands, server_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="packrat", description="A networked file cache.")
    parser.add_argument("--version", action="version", version=f"packrat {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    server_commands.add_commands(commands)
    commands.add_parser(
        "simulate", help="replay a trace through the eviction policies", add_help=False
    )
    client_commands.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["simulate"]:
        from packrat.simulator.cli import main as simulate

        return simulate(argv[1:])
    args = build_parser().parse_args(argv)
    return args.func(args)
