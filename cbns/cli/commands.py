"""The ``cbns`` parser and dispatch: each subcommand lives in its own module with ``register`` and
``run``; bad input ends in one ``cbns: error:`` line (status 2), a signal in one line (130, 143).

A command's module is imported only when that command is named (``cbns --help`` imports none,
``cbns train --help`` the train command's alone), so that help answers without importing torch."""
from __future__ import annotations

import argparse
import importlib
import signal
import sys

from cbns.errors import CbnsError, Interrupted

#: Every command: its module (with ``register(parser)`` and ``run(args)``) and its line in ``cbns --help``.
COMMANDS = {
    "train": ("cbns.cli.train_cmd", "train a model and write a run directory"),
    "evaluate": ("cbns.cli.evaluate_cmd", "recompute the metrics of a run directory"),
    "index": ("cbns.cli.index_cmd", "build an approximate-nearest-neighbour item index"),
    "recommend": ("cbns.cli.recommend_cmd", "top-K items for users, histories or attributes, and similar items"),
    "export": ("cbns.cli.export_cmd", "write a run's serving bundle (ONNX user tower, served without torch)"),
    "serve": ("cbns.cli.serve_cmd", "serve a run or an exported bundle over HTTP"),
    "study": ("cbns.cli.study_cmd", "run a grid of trainings and write a report"),
}


class _Parser(argparse.ArgumentParser):
    """argparse, but bad flags end in one ``cbns: error:`` line and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"cbns: error: {message} (see --help)\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or, with ``only``, of that command alone (the others are
    listed with their help line, their flags unknown)."""
    parser = _Parser(prog="cbns", description="Two-tower retrieval with cross-batch negative sampling.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    for name, (module, help_line) in COMMANDS.items():
        p = commands.add_parser(name, help=help_line)
        if only is None or only == name:
            importlib.import_module(module).register(p)
    return parser


def _named_command(argv: list[str]) -> str:
    """The command ``argv`` names: its first word (``cbns`` itself takes no option but ``-h``)."""
    return next((arg for arg in argv if not arg.startswith("-")), "")


def run(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv``) and run the command; its exit status."""
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = build_parser(only=_named_command(argv)).parse_args(argv)
        return args.run(args) or 0
    except CbnsError as exc:
        from cbns.cli.options import flag_name

        print(f"cbns: error: {exc.render(flag=flag_name)}", file=sys.stderr)
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
