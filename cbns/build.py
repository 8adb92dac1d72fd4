"""Construction of the model, sampler and loss that a :class:`TrainConfig` describes."""
from __future__ import annotations

import numpy as np
import torch

from cbns.config import TrainConfig
from cbns.data.features import FeatureTable
from cbns.loss import SampledSoftmaxLoss
from cbns.model import TwoTower
from cbns.negatives import (CrossBatchSampler, InBatchSampler, MixedSampler, NegativeSampler,
                            PopularitySampler, StreamingFrequency, UniformSampler)
from cbns.towers.choice import build_item_tower, build_user_tower


def build_model(config: TrainConfig, num_users: int, num_items: int, user_features: FeatureTable | None = None,
                item_features: FeatureTable | None = None) -> TwoTower:
    """The towers ``config.user_tower`` and ``config.item_tower`` of width ``config.dim``, seeded
    from ``config.seed``; the feature towers read the attribute tables given here."""
    torch.manual_seed(config.seed)
    return TwoTower(build_user_tower(config, num_users, num_items, user_features),
                    build_item_tower(config, num_items, item_features),
                    normalize=config.normalize, num_items=num_items, item_bias=config.item_bias)


def build_sampler(config: TrainConfig, item_counts: np.ndarray) -> NegativeSampler:
    """The sampler ``config.sampler`` names. With ``item_frequency: streaming`` the counts are not
    used: q starts uniform and follows a :class:`StreamingFrequency` estimate during training."""
    if config.item_frequency == "streaming":
        sampler = _sampler(config, np.ones_like(item_counts))
        sampler.frequency = StreamingFrequency(config.frequency_slots, config.frequency_alpha)
        return sampler
    return _sampler(config, item_counts)


def _sampler(config: TrainConfig, item_counts: np.ndarray) -> NegativeSampler:
    seed = config.seed + 1
    n = config.num_negatives
    if config.sampler == "inbatch":
        return InBatchSampler(item_counts, seed=seed)
    if config.sampler == "uniform":
        return UniformSampler(item_counts, n, seed=seed)
    if config.sampler == "popularity":
        return PopularitySampler(item_counts, n, alpha=config.popularity_alpha, seed=seed)
    if config.sampler == "mns":
        return MixedSampler(item_counts, n, seed=seed)
    if config.sampler == "cbns":
        return CrossBatchSampler(item_counts, config.memory_size, config.dim, config.warmup_steps,
                                 bank_mode=config.bank_mode, seed=seed)
    raise AssertionError(f"unhandled sampler {config.sampler}")  # config.validate() rules this out


def build_loss(config: TrainConfig) -> SampledSoftmaxLoss:
    return SampledSoftmaxLoss(config.temperature, config.logq_correction, config.item_side)
