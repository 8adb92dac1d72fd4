"""Callbacks a training run calls after steps and epochs (early stopping, checkpoints, CPU clock, drift)."""
from cbns.training.callbacks.base import Callback

__all__ = ["Callback"]
