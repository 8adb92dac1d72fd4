"""The ``cbns`` command line. Each subcommand lives in its own module with ``register`` and ``run``."""
from __future__ import annotations

import argparse
import sys

from cbns.cli import evaluate_cmd, index_cmd, recommend_cmd, study_cmd, train_cmd
from cbns.errors import CbnsError

COMMANDS = (train_cmd, evaluate_cmd, index_cmd, recommend_cmd, study_cmd)


class _Parser(argparse.ArgumentParser):
    """argparse, but bad flags end in one ``cbns: error:`` line and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"cbns: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cbns", description="Two-tower retrieval with cross-batch negative sampling.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    for module in COMMANDS:
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except CbnsError as exc:
        print(f"cbns: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cbns: interrupted", file=sys.stderr)
        return 130
