"""The sampler a :class:`cbns.config.TrainConfig` names, through :data:`cbns.registry.SAMPLERS`."""
from __future__ import annotations

import numpy as np

from cbns.negatives.base import NegativeSampler
from cbns.negatives.streaming_frequency import StreamingFrequency
from cbns.registry import SAMPLERS


def build_sampler(config, item_counts: np.ndarray) -> NegativeSampler:
    """The sampler ``config.sampler`` names. With ``item_frequency: streaming`` the counts are not
    used: q starts uniform and follows a :class:`StreamingFrequency` estimate during training."""
    cls = SAMPLERS.get(config.sampler)
    if config.item_frequency == "streaming":
        sampler = cls.from_config(config, np.ones_like(item_counts))
        sampler.frequency = StreamingFrequency(config.frequency_slots, config.frequency_alpha)
        return sampler
    return cls.from_config(config, item_counts)
