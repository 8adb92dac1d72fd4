"""In-batch negatives: the other positives of the batch."""
from __future__ import annotations

from cbns.negatives.candidates import Candidates
from cbns.negatives.source import NegativeSource, StepBatch


class InBatchSource(NegativeSource):
    """The batch's positives as one block that also holds each row's positive (row i's positive is
    column ``offset + i``), so the loss needs no extra positive column and runs fused. They follow
    the positives' stream, so each is corrected with its ``StepBatch.logq``. Must lead the
    objective's sources."""

    name = "inbatch"

    def negatives(self, batch: StepBatch) -> list[Candidates]:
        return [Candidates(batch.emb, batch.ids, batch.logq, source="inbatch", holds_positives=True,
                           positive_offset=batch.offset)]
