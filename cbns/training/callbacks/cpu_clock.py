"""Process CPU time per training epoch: a time cost that a busy machine distorts far less.

Wall-clock seconds per epoch (the history's ``seconds``) grow with whatever else the machine
runs: on a shared 2-core host the same in-batch epoch was measured at 27 s and at 77 s. The CPU
time the process itself spends (all its threads, ``time.process_time``) stays close to the work
done, so with a fixed thread count its ratios between samplers are comparable across cells that
ran at different times. Validation is excluded, as for ``seconds``.
"""
from __future__ import annotations

import time

from cbns.training.callbacks.base import Callback


class CpuClock(Callback):
    """Adds ``cpu_seconds`` (process CPU time of the epoch's training steps) to each history record.

    The clock is read at the start of training, after each step and after each epoch's
    validation; an epoch's figure is the CPU time from the previous epoch's end (or the start)
    to its last step, so validation never counts.
    """

    def __init__(self):
        self._mark = 0.0
        self._epoch = 0.0

    def on_fit_start(self, trainer) -> None:
        self._mark, self._epoch = time.process_time(), 0.0

    def on_step_end(self, trainer) -> None:
        now = time.process_time()
        self._epoch += now - self._mark
        self._mark = now

    def on_epoch_end(self, trainer, record: dict) -> None:
        record["cpu_seconds"] = round(self._epoch, 3)
        self._mark, self._epoch = time.process_time(), 0.0
