"""In-batch negatives: the other positives of the batch."""
from __future__ import annotations

from cbns.negatives.base import NegativeSampler
from cbns.negatives.candidates import Candidates
from cbns.registry import SAMPLERS


@SAMPLERS.register("inbatch")
class InBatchSampler(NegativeSampler):
    """The other positives of the batch; they follow the unigram distribution, q = count / total."""

    summary = "the other positives of the batch (q = unigram)"

    @classmethod
    def objective_from_config(cls, config, item_counts):
        """In-batch training is the CBNS loss module with no bank (the same code as ``cbns``)."""
        from cbns.objective.cross_batch_loss import CrossBatchSoftmaxLoss

        return CrossBatchSoftmaxLoss.from_config(config, item_counts, memory_size=0)

    def negatives(self, item_ids, item_emb, encode_items) -> list[Candidates]:
        return [self.inbatch(item_ids, item_emb)]
