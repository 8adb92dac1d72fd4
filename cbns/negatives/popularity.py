"""Popularity negatives: N items drawn from a smoothed unigram, count^alpha."""
from __future__ import annotations

import numpy as np
import torch

from cbns.negatives.candidates import Candidates
from cbns.negatives.drawn_source import DrawnSource
from cbns.negatives.source import StepBatch


class PopularitySource(DrawnSource):
    """``N`` items drawn per step from q(i) proportional to count(i)^alpha (alpha=1: unigram,
    0: uniform; unseen items count 1), shared by the batch.

    Args:
        item_counts: ``[I]`` training counts.
        num_negatives: N.
        alpha: the exponent.
        seed: the generator's seed.
    """

    name = "popularity"

    def __init__(self, item_counts: np.ndarray, num_negatives: int, alpha: float = 0.75, seed: int = 0):
        super().__init__(seed)
        self.num_negatives = num_negatives
        weights = np.maximum(np.asarray(item_counts, dtype=np.float64), 1.0) ** alpha
        self.register_buffer("probs", torch.tensor(weights / weights.sum(), dtype=torch.float32))
        # What the draws invert (derived from the counts, so not saved): float64 sums, normalised so
        # that the last entry is exactly 1.
        cumulative = np.cumsum(weights)
        self.register_buffer("cdf", torch.tensor(cumulative / cumulative[-1], dtype=torch.float32),
                             persistent=False)

    def positive_logq(self, ids, stream_logq):
        return torch.log(self.probs[ids])

    def negatives(self, batch: StepBatch) -> list[Candidates]:
        ids = self.draw_cdf(self.cdf, self.num_negatives)
        return [Candidates(batch.encode_items(ids), ids, torch.log(self.probs[ids]), source="popularity")]
