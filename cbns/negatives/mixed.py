"""Mixed negative sampling (Yang et al., WWW 2020): in-batch plus N uniform negatives."""
from __future__ import annotations

from cbns.negatives.candidates import Candidates
from cbns.negatives.uniform import UniformSampler
from cbns.registry import SAMPLERS


@SAMPLERS.register("mns")
class MixedSampler(UniformSampler):
    """In-batch negatives (unigram q) plus ``N`` uniform ones (q = 1/|I|), each source corrected
    with its own q."""

    summary = "in-batch + N uniform (mixed negative sampling, Yang et al. 2020)"

    @classmethod
    def negatives_per_row(cls, batch_size: int, config) -> int:
        return batch_size - 1 + config.num_negatives

    def positive_logq(self, item_ids):
        return self.log_q[item_ids]

    def negatives(self, item_ids, item_emb, encode_items) -> list[Candidates]:
        return [self.inbatch(item_ids, item_emb), self.sample_uniform(encode_items)]
