"""The ``cbns`` parser and dispatch: each subcommand lives in its own module with ``register`` and
``run``; bad input ends in one ``cbns: error:`` line (status 2), a signal in one line (130, 143)."""
from __future__ import annotations

import argparse
import signal
import sys

from cbns.cli import evaluate_cmd, index_cmd, recommend_cmd, study_cmd, train_cmd
from cbns.errors import CbnsError, Interrupted

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


def run(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv``) and run the command; its exit status."""
    try:
        args = build_parser().parse_args(argv)
        return args.run(args) or 0
    except CbnsError as exc:
        print(f"cbns: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(interrupted_line(exc), file=sys.stderr)
        return 143 if getattr(exc, "signum", None) == signal.SIGTERM else 130
    finally:
        stop_request = sys.modules.get("cbns.training.stop_request")
        if stop_request is not None:  # a stop asked for after the run is not carried over
            stop_request.arm(False)


def interrupted_line(exc: KeyboardInterrupt) -> str:
    """``cbns: terminated (SIGTERM); the checkpoint at step 120 is written; continue with: ...``."""
    if isinstance(exc, Interrupted):
        text = f"cbns: {'terminated' if exc.signum == signal.SIGTERM else 'interrupted'} ({exc.signal_name})"
    else:
        text = "cbns: interrupted"
    for part in (getattr(exc, "detail", ""), getattr(exc, "hint", "")):
        if part:
            text += f"; {part}"
    return text
