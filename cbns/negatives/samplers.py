"""The samplers that draw fresh negatives: in-batch, uniform, popularity and mixed (MNS)."""
from __future__ import annotations

import math

import numpy as np
import torch

from cbns.negatives.base import NegativeSampler
from cbns.negatives.candidates import Candidates


class InBatchSampler(NegativeSampler):
    """The other positives of the batch; they follow the unigram distribution, q = count / total."""

    name = "inbatch"

    def negatives(self, item_ids, item_emb, encode_items) -> list[Candidates]:
        return [self.inbatch(item_ids, item_emb)]


class UniformSampler(NegativeSampler):
    """``N`` items drawn uniformly from the catalogue per step, shared by the batch; q = 1/|I|."""

    name = "uniform"

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


class PopularitySampler(NegativeSampler):
    """``N`` items drawn from q(i) proportional to count(i)^alpha (alpha=1: unigram, 0: uniform)."""

    name = "popularity"

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


class MixedSampler(UniformSampler):
    """Mixed negative sampling (Yang et al., WWW 2020): in-batch negatives (unigram q) plus ``N``
    uniform ones (q = 1/|I|), each source corrected with its own q."""

    name = "mns"

    def positive_logq(self, item_ids):
        return self.log_q[item_ids]

    def negatives(self, item_ids, item_emb, encode_items) -> list[Candidates]:
        return [self.inbatch(item_ids, item_emb), self.sample_uniform(encode_items)]
