"""The callback that writes the training-state checkpoint every N steps and after every epoch."""
from __future__ import annotations

from pathlib import Path

from cbns.runs.checkpoint import write_checkpoint
from cbns.training.callbacks.base import Callback
from cbns.training.guards import check_module_finite
from cbns.training.training_state import training_state


class Checkpointer(Callback):
    """Saves the training state (:func:`cbns.training.training_state.training_state`) plus ``meta``
    (config, dataset fingerprint) to ``run_dir``.

    ``every`` > 0: also mid-epoch, once ``every`` optimizer steps have passed since the last
    checkpoint (an epoch end's, or the one a resumed run started from), so at most ``every`` steps
    are ever lost and an epoch shorter than ``every`` gets its epoch-end checkpoint only; 0: at
    epoch ends only. Before writing, the weights and optimizer moments are checked for NaN/inf, so
    a checkpoint on disk is always a good one: a run that diverges stops with the previous
    checkpoint intact.
    """

    def __init__(self, run_dir: Path, every: int, meta: dict):
        self.run_dir, self.every, self.meta = Path(run_dir), every, meta
        self.last_step: int | None = None

    def on_fit_start(self, trainer) -> None:
        self.last_step = trainer.global_step  # 0, or the step of the checkpoint a resumed run loaded

    def on_step_end(self, trainer) -> None:
        if self.every and trainer.global_step - (self.last_step or 0) >= self.every:
            self.save(trainer)

    def on_epoch_end(self, trainer, record: dict) -> None:
        self.save(trainer)

    def save(self, trainer) -> Path:
        state = training_state(trainer)
        step, epoch = trainer.global_step, trainer.state.epoch + (0 if trainer.state.batch == 0 else 1)
        check_module_finite(step, epoch, "weight", state["model"])
        check_module_finite(step, epoch, "optimizer state", state["optimizer"])
        summary = {"step": step, "epoch": trainer.state.epoch, "batch": trainer.state.batch,
                   "done": trainer.state.done}
        path = write_checkpoint(self.run_dir, {**self.meta, **state}, summary)
        self.last_step = step
        return path
