"""Signals on the command line: one line, never a traceback, and a run that can be resumed.

* :func:`install_early`, before anything heavy is imported (torch takes seconds): SIGINT and
  SIGTERM print ``cbns: interrupted`` / ``cbns: terminated`` and exit at once (130, 143); nothing
  has been written yet.
  SIGXFSZ is ignored, so that a write beyond the file-size limit (``ulimit -f``) fails with EFBIG
  and ends in one line naming the file instead of killing the process.
* :func:`install`, once the commands are imported: both raise :class:`cbns.errors.Interrupted`
  where the program is, or, inside a training run's epochs, ask it to stop after the step in
  progress with a checkpoint (:mod:`cbns.training.stop_request`); :func:`cbns.cli.main` prints
  the one line.

This module imports the standard library only, so that it can run first.
"""
from __future__ import annotations

import os
import signal

EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}
WORDS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}


def _exit_now(signum, frame) -> None:
    os.write(2, f"cbns: {WORDS[signum]} ({signal.Signals(signum).name}) before the command started\n".encode())
    os._exit(EXIT_STATUS[signum])


def install_early() -> None:
    for signum in EXIT_STATUS:
        signal.signal(signum, _exit_now)
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def install() -> None:
    from cbns.training.stop_request import handle

    for signum in EXIT_STATUS:
        signal.signal(signum, handle)
