"""Where a training run stands: everything the loop needs, besides the model, optimizer and
sampler, to continue exactly where it stopped."""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch


@dataclass
class FitState:
    """The bookkeeping of :meth:`cbns.training.trainer.Trainer.fit` and its early stopping
    (:class:`cbns.training.callbacks.early_stopping.EarlyStopping`), as plain values and tensors.

    Data order: epoch ``e`` trains on ``torch.randperm(N, generator=shuffle)`` drawn from the
    shuffle generator's state ``order``; ``batch`` counts the batches of that permutation already
    taken. A run stopped mid-epoch restores ``order``, draws the same permutation again and
    skips ``batch`` batches. ``order`` moves on when an epoch ends.

    Attributes:
        epoch: epochs completed.
        batch: batches of epoch ``epoch + 1`` completed.
        order: ``[S]`` uint8 state of the shuffle generator before the current epoch's permutation.
        loss_sum, examples, seconds: running sums of the current epoch (``loss_sum`` adds
            ``loss * batch_len``, so the epoch's mean loss is ``loss_sum / examples``).
        phases: the current epoch's seconds per training phase so far (:mod:`cbns.training.phase_timer`).
        best, best_epoch, best_state: the best validation score so far, its epoch, and the model
            weights of that epoch (``None`` before the first validation).
        stale: validations since the last improvement (early stopping stops at ``patience``).
        history: one record per completed epoch.
        train_seconds: training time of the completed epochs (not counting validation).
        done: training has stopped (last epoch, or early stopping); only the test remains.
    """

    order: torch.Tensor
    epoch: int = 0
    batch: int = 0
    loss_sum: float = 0.0
    examples: int = 0
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    best: float = -1.0
    best_epoch: int = 0
    best_state: dict | None = None
    stale: int = 0
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    done: bool = False

    def start_next_epoch(self, order: torch.Tensor) -> None:
        """Reset the per-epoch sums; ``order`` is the shuffle state for the next permutation."""
        self.order, self.batch, self.loss_sum, self.examples, self.seconds = order, 0, 0.0, 0, 0.0
        self.phases = {}

    def best_valid(self) -> dict[str, float]:
        """The validation metrics of the best epoch (``{}`` when none was validated)."""
        if self.best_state is None:
            return {}
        return next(h["valid"] for h in self.history if h["epoch"] == self.best_epoch)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, state: dict) -> FitState:
        # ``phases`` came later: a checkpoint written before it resumes with the epoch's phases at 0.
        return cls(**{f.name: state[f.name] for f in fields(cls) if f.name != "phases" or f.name in state})
