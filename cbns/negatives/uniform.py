"""Uniform negatives: N items drawn uniformly from the catalogue per step."""
from __future__ import annotations

import math

import torch

from cbns.negatives.candidates import Candidates
from cbns.negatives.drawn_source import DrawnSource
from cbns.negatives.source import StepBatch


class UniformSource(DrawnSource):
    """``N`` items drawn uniformly from the ``I`` items per step, shared by the batch; q = 1/I.

    Args:
        num_items: I.
        num_negatives: N.
        seed: the generator's seed.
    """

    name = "uniform"

    def __init__(self, num_items: int, num_negatives: int, seed: int = 0):
        super().__init__(seed)
        self.num_items, self.num_negatives = num_items, num_negatives
        self.register_buffer("uniform", torch.full((num_items,), 1.0 / num_items))

    def positive_logq(self, ids, stream_logq):
        return torch.full(ids.shape, -math.log(self.num_items), device=ids.device)

    def negatives(self, batch: StepBatch) -> list[Candidates]:
        ids = self.draw_uniform(self.num_items, self.num_negatives, self.uniform.device)
        logq = torch.full((self.num_negatives,), -math.log(self.num_items), dtype=self.uniform.dtype,
                          device=self.uniform.device)
        return [Candidates(batch.encode_items(ids), ids, logq, source="uniform")]
