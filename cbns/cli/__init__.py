"""The ``cbns`` command line.

``entry`` is the console script and ``python -m cbns``: it installs the signal handlers before the
commands (and torch) are imported, so that Ctrl-C at any moment ends in one line
(:mod:`cbns.cli.signals`). ``main(argv)`` runs one command in this process and returns its exit
status (tests, scripts). The parser and the dispatch: :mod:`cbns.cli.commands`.
"""
from __future__ import annotations


def entry() -> None:
    from cbns.cli import signals

    signals.install_early()
    from cbns.cli.commands import run

    signals.install()
    raise SystemExit(run())


def main(argv: list[str] | None = None) -> int:
    from cbns.cli.commands import run

    return run(argv)


def build_parser():
    from cbns.cli.commands import build_parser as build

    return build()
