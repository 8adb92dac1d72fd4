"""Wall-clock seconds per phase of the training loop (data, encode, loss, backward, optimizer)."""
from __future__ import annotations

import time
from contextlib import contextmanager

#: ``data``: batch and context assembly; ``encode``: the tower forward passes of the batch;
#: ``loss``: frequency update, negatives (any sampled-item encoding included) and the loss forward;
#: ``backward``: the gradient of the loss through both towers; ``optimizer``: the step and the
#: sampler's observe (the bank's enqueue).
PHASES = ("data", "encode", "loss", "backward", "optimizer")


class PhaseTimer:
    """Accumulates ``time.perf_counter`` seconds under phase names; :meth:`reset` between epochs."""

    def __init__(self):
        self.seconds = dict.fromkeys(PHASES, 0.0)

    def reset(self, start: dict[str, float] | None = None) -> None:
        """Zero every phase, or continue from ``start`` (an epoch resumed half-way)."""
        self.seconds = {**dict.fromkeys(PHASES, 0.0), **(start or {})}

    @contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start

    def rounded(self) -> dict[str, float]:
        return {name: round(value, 3) for name, value in self.seconds.items()}
