"""The record every negative source returns, so that one logits pipeline serves all samplers."""
from __future__ import annotations

from dataclasses import dataclass, replace

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
            logits (see :class:`cbns.objective.loss.SampledSoftmaxLoss` for what the loss does with it).
        holds_positives: True when these candidates are the batch's own positives (an in-batch
            block): row i's positive is then column ``positive_offset + i`` of the block, so the
            loss needs no extra positive column and can run fused
            (:mod:`cbns.objective.fused_softmax`). Only a first source may hold the positives.
        positive_offset: for a block that holds the positives, the column of row 0's positive.
            0 in a single process; in a distributed step the block holds the items of every rank
            and this rank's rows start further in (see :mod:`cbns.distributed`).
    """

    emb: torch.Tensor
    ids: torch.Tensor
    logq: torch.Tensor
    source: str
    item_grad: bool = True
    holds_positives: bool = False
    positive_offset: int = 0

    def __len__(self) -> int:
        return self.ids.shape[0]


def at_offset(sources: list[Candidates], offset: int) -> list[Candidates]:
    """``sources`` with a leading block that holds the positives told that this rank's rows start
    at column ``offset`` of it (unchanged at offset 0, and when no block holds the positives)."""
    if offset and sources and sources[0].holds_positives:
        return [replace(sources[0], positive_offset=offset), *sources[1:]]
    return sources
