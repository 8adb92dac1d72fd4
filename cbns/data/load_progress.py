"""A progress line for loading a dataset that shows only when the load takes over a few seconds.

The readers report what they got through (bytes of a text file, rows of a Parquet file) and the
loader names each later stage (ids, split); the bar appears once :data:`DELAY` seconds have
passed, on stderr, and is cleared when the load ends, so small datasets load silently. When stderr
is not a terminal (a redirected log) there is no bar: its redraws would fill the file.
"""
from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm

#: Seconds before the bar appears.
DELAY = 2.0


class LoadProgress:
    """One bar for one dataset load; a disabled one (``enabled=False``) does nothing."""

    def __init__(self, label: str = "loading", enabled: bool = True):
        self.label, self.started = label, time.monotonic()
        self.bar = tqdm(total=None, desc=label, delay=DELAY, disable=None if enabled else True,  # None: not a tty
                        leave=False, file=sys.stderr, unit="B", unit_scale=True, unit_divisor=1024, dynamic_ncols=True)

    def start(self, what: str, total: int | None, unit: str = "B") -> None:
        """A new counted stage: ``total`` units of ``what`` to get through (None = unknown)."""
        bar = self.bar
        bar.n, bar.last_print_n, bar.total = 0, 0, total  # not tqdm's reset(): it draws the bar at once
        bar.unit, bar.unit_scale = unit, unit == "B"
        self._describe(what)

    def advance(self, n: int) -> None:
        self.bar.update(n)

    def stage(self, what: str) -> None:
        """An uncounted stage (``remapping ids``, ``splitting``)."""
        self._describe(what)

    def _describe(self, what: str) -> None:
        """Name the stage; draw now only once the bar is due (tqdm would draw it at once)."""
        self.bar.set_description_str(f"{self.label}: {what}", refresh=False)
        if time.monotonic() - self.started >= DELAY:
            self.bar.refresh()

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> LoadProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
