"""The hooks a training run calls; a callback overrides the ones it needs."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cbns.training.trainer import Trainer


class Callback:
    """Hooks into the training loop; override what you need. ``trainer.global_step`` counts
    optimizer steps over the whole run."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first step of :meth:`Trainer.fit` (the model as initialised)."""

    def on_step_end(self, trainer: Trainer) -> None:
        """After the optimizer step, the sampler's observe, and the epoch's running sums."""

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        """After an epoch, its validation (when one ran) and the early-stopping decision;
        ``record`` is already the last entry of ``trainer.state.history``."""
