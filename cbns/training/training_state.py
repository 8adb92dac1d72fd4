"""Everything a checkpoint holds to continue a training run exactly, taken from and put back into a trainer."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from cbns.training.fit_state import FitState

if TYPE_CHECKING:
    from cbns.training.trainer import Trainer


def training_state(trainer: Trainer) -> dict:
    """Weights, optimizer moments, the objective's state (bank, generator), step counter, the global
    torch RNGs (the CUDA one on a GPU), and the loop's :class:`FitState`. Reads what the steps left
    on the device first (:meth:`cbns.training.trainer.Trainer.flush`), so the loss sums are complete
    and a non-finite step raises before anything is saved."""
    trainer.flush()
    state = {"model": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
             "objective": trainer.objective.state_dict(), "global_step": trainer.global_step,
             "torch_rng": torch.get_rng_state(), "fit": trainer.state.to_dict()}
    if trainer.device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(trainer.device)
    return state


def load_training_state(trainer: Trainer, state: dict) -> None:
    """Put ``state`` (from :func:`training_state`) back into ``trainer``, built as the saved run's was."""
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.objective.load_state_dict(state["objective"])
    trainer.global_step = state["global_step"]
    torch.set_rng_state(state["torch_rng"])
    if trainer.device.type == "cuda" and "cuda_rng" in state:
        torch.cuda.set_rng_state(state["cuda_rng"], trainer.device)
    trainer.state = FitState.from_dict(state["fit"])
