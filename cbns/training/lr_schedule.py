"""Learning-rate schedules as a pure function of the optimizer step.

The factor depends only on the global step and the planned number of steps, so a resumed run
needs no scheduler state beyond the step counter it already saves.
"""
from __future__ import annotations

import math

from cbns.config.choices import LR_SCHEDULES


def lr_factor(schedule: str, step: int, total_steps: int) -> float:
    """Multiplier of the base learning rate for optimizer step ``step`` (0-based) of ``total_steps``."""
    if schedule == "constant":
        return 1.0
    progress = min(step / max(total_steps, 1), 1.0)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return 1.0 - progress
    raise ValueError(f"lr schedule must be one of {', '.join(LR_SCHEDULES)}, got {schedule!r}")


def apply_lr(optimizer, schedule: str, step: int, total_steps: int, lr: float) -> None:
    """Set every parameter group of ``optimizer`` to its starting rate (``base_lr``; ``lr`` in a
    checkpoint from before it) times :func:`lr_factor`; nothing for ``constant``."""
    if schedule == "constant":
        return
    factor = lr_factor(schedule, step, total_steps)
    for group in optimizer.param_groups:  # both optimizers', each from its own starting rate
        group["lr"] = group.get("base_lr", lr) * factor
