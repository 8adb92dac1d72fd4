"""A stop asked for by a signal (SIGINT, SIGTERM), carried out at the next step boundary: the
checkpoint written there resumes exactly and no step is lost.

Nothing here is active unless a caller opts in: the command line installs :func:`handle` for the
whole command (:mod:`cbns.cli.signals`); a Python caller wraps its run in :func:`graceful_stop`,
which installs it and puts the previous handlers back on exit. The handler calls :func:`ask`. While a training run is
in its epochs (:class:`StopAtStepEnd` armed), the stop is recorded and the run checkpoints after
the step in progress (or, during a validation, after the epoch's own checkpoint), then raises
:class:`cbns.errors.Interrupted`. Anywhere else (loading, choosing the prior, the test, writing
the outputs) :func:`ask` returns False and the handler raises at once; the newest checkpoint on
disk is then the point a resume starts from. A second signal never waits.
"""
from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

from cbns.errors import Interrupted
from cbns.training.callbacks.base import Callback

_state = {"armed": False, "pending": None}
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def handle(signum: int, frame=None) -> None:
    """The signal handler: a stop at the next step boundary, or :class:`Interrupted` now."""
    if not ask(signum):
        raise Interrupted(signum)


@contextmanager
def graceful_stop() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM stop a training run after the step in progress, with
    a checkpoint, and raise :class:`cbns.errors.Interrupted` (anywhere else: at once). The
    previous handlers are put back on exit. Main thread only (Python's signal rule)::

        with graceful_stop():
            cbns.train(config, "runs/a")
    """
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    for signum in SIGNALS:
        signal.signal(signum, handle)
    try:
        yield
    finally:
        arm(False)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def ask(signum: int) -> bool:
    """Record a stop for the next step boundary; False when none will come (raise now instead)."""
    if not _state["armed"] or _state["pending"] is not None:
        return False
    _state["pending"] = signum
    return True


def arm(on: bool) -> None:
    """Let :func:`ask` defer stops (on), or not (off, and any recorded stop forgotten)."""
    _state["armed"], _state["pending"] = on, None


class StopAtStepEnd(Callback):
    """Carries out a deferred stop: a checkpoint (through ``checkpointer``), then :class:`Interrupted`.
    Comes after the checkpointer among the callbacks, so an epoch end's checkpoint is written first."""

    def __init__(self, checkpointer):
        self.checkpointer = checkpointer

    def on_fit_start(self, trainer) -> None:
        arm(not trainer.state.done)

    def on_step_end(self, trainer) -> None:
        if _state["pending"] is not None:
            if self.checkpointer.last_step != trainer.global_step:
                self.checkpointer.save(trainer)
            self._stop(trainer)

    def on_epoch_end(self, trainer, record: dict) -> None:
        if _state["pending"] is not None:
            self._stop(trainer)
        if trainer.state.done:
            arm(False)

    def _stop(self, trainer) -> None:
        signum = _state["pending"]
        arm(False)
        raise Interrupted(signum, f"the checkpoint at step {trainer.global_step} is written")
