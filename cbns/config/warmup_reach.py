"""Whether a run lasts long enough for the memory bank to be read at all.

The ``cbns`` sampler scores its first ``warmup_steps`` steps against the batch alone (see
:mod:`cbns.objective.cross_batch_loss`). A run of ``epochs x ceil(pairs / batch_size)`` steps or
fewer never reads the bank, and trains as the ``inbatch`` sampler would; that is most likely a
mistake (a warm-up sized for a larger dataset), so it is worth a warning that names both numbers.
So is a warm-up with ``memory_size 0``: there is no bank to warm up.
"""
from __future__ import annotations

import math

from cbns.registry import SAMPLERS


def run_steps(config, train_pairs: int) -> int:
    """Training steps of the whole run: ``epochs x ceil(train_pairs / batch_size)`` (early stopping
    may end it sooner)."""
    return config.training.epochs * math.ceil(train_pairs / config.sampler.batch_size)


def warmup_warning(config, train_pairs: int, source: str) -> str | None:
    """The warning for a warm-up without a bank or one that outlasts the run, or None."""
    sampler = config.sampler
    if "warmup_steps" not in SAMPLERS.options(sampler.name) or sampler.warmup_steps == 0:
        return None
    if sampler.memory_size == 0:
        return (f"cbns: warning: warmup_steps {sampler.warmup_steps:,} has no effect: memory_size is 0, so there is "
                f"no bank to warm up (the run is the in-batch softmax)")
    steps = run_steps(config, train_pairs)
    if sampler.warmup_steps < steps:
        return None
    return (f"cbns: warning: warmup_steps {sampler.warmup_steps:,} is not below the run's {steps:,} training "
            f"steps ({config.training.epochs} epoch(s) of {train_pairs:,} pairs of {source} in batches of "
            f"{sampler.batch_size:,}): the memory bank of {sampler.memory_size:,} items is never read")
