"""Uniform negatives: N items drawn uniformly from the catalogue per step."""
from __future__ import annotations

import math

import numpy as np
import torch

from cbns.negatives.base import NegativeSampler
from cbns.negatives.candidates import Candidates
from cbns.registry import SAMPLERS


@SAMPLERS.register("uniform")
class UniformSampler(NegativeSampler):
    """``N`` items drawn uniformly from the catalogue per step, shared by the batch; q = 1/|I|."""

    summary = "N items drawn uniformly per step (q = 1/|I|)"
    options = ("num_negatives",)

    @classmethod
    def from_config(cls, config, item_counts: np.ndarray) -> UniformSampler:
        return cls(item_counts, config.num_negatives, seed=config.seed + 1)

    @classmethod
    def negatives_per_row(cls, batch_size: int, config) -> int:
        return config.num_negatives

    def __init__(self, item_counts: np.ndarray, num_negatives: int, seed: int = 0):
        super().__init__(item_counts, seed)
        self.num_negatives = num_negatives
        self.register_buffer("uniform", torch.full((self.num_items,), 1.0 / self.num_items))

    def positive_logq(self, item_ids):
        return torch.full(item_ids.shape, -math.log(self.num_items), device=item_ids.device)

    def sample_uniform(self, encode_items) -> Candidates:
        ids = self.draw(self.uniform, self.num_negatives)
        return Candidates(encode_items(ids), ids, torch.log(self.uniform[ids]), source="uniform")

    def negatives(self, item_ids, item_emb, encode_items) -> list[Candidates]:
        return [self.sample_uniform(encode_items)]
