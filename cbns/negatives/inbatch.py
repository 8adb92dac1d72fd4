"""In-batch negatives: the other positives of the batch."""
from __future__ import annotations

from cbns.negatives.base import NegativeSampler
from cbns.negatives.candidates import Candidates
from cbns.registry import SAMPLERS


@SAMPLERS.register("inbatch")
class InBatchSampler(NegativeSampler):
    """The other positives of the batch; they follow the unigram distribution, q = count / total."""

    summary = "the other positives of the batch (q = unigram)"

    def negatives(self, item_ids, item_emb, encode_items) -> list[Candidates]:
        return [self.inbatch(item_ids, item_emb)]
