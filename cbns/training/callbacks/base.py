"""The hooks a training run calls; a callback overrides the ones it needs."""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # annotations only: the command line imports callbacks without torch
    from torch import nn

    from cbns.training.fit_state import FitState


class Loop(Protocol):
    """What a callback sees of the loop that calls it (:class:`cbns.training.trainer.Trainer`)."""

    model: nn.Module
    state: FitState
    #: optimizer steps over the whole run
    global_step: int

    @property
    def rank(self) -> int: ...

    def settle(self) -> None: ...


class Callback:
    """Hooks into the training loop; override what you need. ``trainer.global_step`` counts
    optimizer steps over the whole run."""

    def on_fit_start(self, trainer: Loop) -> None:
        """Before the first step of :meth:`Trainer.fit` (the model as initialised)."""

    def on_step_end(self, trainer: Loop) -> None:
        """After the optimizer step, the sampler's observe, and the epoch's running sums."""

    def on_epoch_end(self, trainer: Loop, record: dict) -> None:
        """After an epoch and its validation (when one ran); ``record`` is already the last entry
        of ``trainer.state.history``. Callbacks run in order: an early-stopping callback placed
        first has decided ``trainer.state.done`` before the others see it."""

    def on_fit_end(self, trainer: Loop) -> None:
        """After the last epoch, once the tables are settled (the best weights are restored here)."""
