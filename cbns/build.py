"""Construction of the model, sampler and loss that a :class:`TrainConfig` describes."""
from __future__ import annotations

import numpy as np
import torch

from cbns.config import TrainConfig
from cbns.loss import SampledSoftmaxLoss
from cbns.model import TwoTower
from cbns.negatives import (CrossBatchSampler, InBatchSampler, MixedSampler, NegativeSampler,
                            PopularitySampler, UniformSampler)
from cbns.towers import IdTower


def build_model(config: TrainConfig, num_users: int, num_items: int) -> TwoTower:
    """Two ID towers of width ``config.dim``, seeded from ``config.seed``."""
    torch.manual_seed(config.seed)
    return TwoTower(IdTower(num_users, config.dim, config.init_std),
                    IdTower(num_items, config.dim, config.init_std),
                    normalize=config.normalize)


def build_sampler(config: TrainConfig, item_counts: np.ndarray) -> NegativeSampler:
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
