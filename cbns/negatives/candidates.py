"""The record every negative source returns, so that one logits pipeline serves all samplers."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Candidates:
    """``N`` negative candidates shared by every row of a batch.

    Attributes:
        emb: ``[N, D]`` item vectors (with gradient for fresh encodings, detached for the bank).
        ids: ``[N]`` int64 item ids, used to mask accidental hits (a candidate equal to the row's
            positive item is not a negative).
        logq: ``[N]`` log of the probability with which the source drew each candidate; the
            logits pipeline subtracts it (the logQ correction).
        source: a short label (``inbatch``, ``uniform``, ``bank``, ...), for logging and probes.
        item_grad: False when no gradient may reach the item tower through these candidates'
            logits (see :class:`cbns.loss.SampledSoftmaxLoss` for what the loss does with it).
        positive_offset: for an ``inbatch`` source, the column of row 0's positive: row i's
            positive is column ``positive_offset + i``. 0 in a single process; in a distributed
            step the block holds the items of every rank and this rank's rows start further in
            (see :mod:`cbns.distributed`).
    """

    emb: torch.Tensor
    ids: torch.Tensor
    logq: torch.Tensor
    source: str
    item_grad: bool = True
    positive_offset: int = 0

    def __len__(self) -> int:
        return self.ids.shape[0]
