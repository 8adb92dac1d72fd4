"""Popularity negatives: N items drawn from a smoothed unigram, count^alpha."""
from __future__ import annotations

import numpy as np
import torch

from cbns.negatives.base import NegativeSampler
from cbns.negatives.candidates import Candidates
from cbns.registry import SAMPLERS


@SAMPLERS.register("popularity")
class PopularitySampler(NegativeSampler):
    """``N`` items drawn from q(i) proportional to count(i)^alpha (alpha=1: unigram, 0: uniform)."""

    summary = "N items drawn from count^alpha per step"
    options = ("num_negatives", "popularity_alpha")

    @classmethod
    def from_config(cls, config, item_counts: np.ndarray) -> PopularitySampler:
        return cls(item_counts, config.num_negatives, alpha=config.popularity_alpha, seed=config.seed + 1)

    @classmethod
    def negatives_per_row(cls, batch_size: int, config) -> int:
        return config.num_negatives

    def __init__(self, item_counts: np.ndarray, num_negatives: int, alpha: float = 0.75, seed: int = 0):
        super().__init__(item_counts, seed)
        self.num_negatives = num_negatives
        weights = np.maximum(np.asarray(item_counts, dtype=np.float64), 1.0) ** alpha
        self.register_buffer("probs", torch.tensor(weights / weights.sum(), dtype=torch.float32))

    def positive_logq(self, item_ids):
        return torch.log(self.probs[item_ids])

    def negatives(self, item_ids, item_emb, encode_items) -> list[Candidates]:
        ids = self.draw(self.probs, self.num_negatives)
        return [Candidates(encode_items(ids), ids, torch.log(self.probs[ids]), source="popularity")]
