"""A negative sampler and the sampled-softmax loss as one criterion with the loss module's call.

:class:`SampledSoftmaxObjective` gives any :class:`cbns.negatives.base.NegativeSampler` (uniform,
popularity, mixed, or your own) the call of :class:`cbns.objective.cross_batch_loss.CrossBatchSoftmaxLoss`:
``loss = objective(user_emb, item_emb, item_ids, item_bias=..., encode_items=...)``. In training
mode it feeds the step's items to the sampler's streaming frequency estimate first and lets the
sampler observe them after scoring, so a training loop needs no call besides this one.
"""
from __future__ import annotations

import torch
from torch import nn

from cbns.distributed.gather import gather_batch
from cbns.negatives.base import NegativeSampler
from cbns.negatives.candidates import at_offset
from cbns.objective.cross_batch_loss import zero_on_graph
from cbns.objective.loss import SampledSoftmaxLoss


class SampledSoftmaxObjective(nn.Module):
    """``sampler``'s negatives scored by ``loss`` (see the module docstring).

    Args:
        sampler: produces the step's negative sources; its state (generator, counters) is this
            module's state.
        loss: the sampled softmax (temperature, logQ, item side).
        gather_across_ranks, process_group: as for
            :class:`~cbns.objective.cross_batch_loss.CrossBatchSoftmaxLoss`.
    """

    def __init__(self, sampler: NegativeSampler, loss: SampledSoftmaxLoss, gather_across_ranks: bool = False,
                 process_group=None):
        super().__init__()
        self.sampler, self.softmax = sampler, loss
        self.gather_across_ranks, self.process_group = gather_across_ranks, process_group

    def forward(self, user_emb: torch.Tensor, item_emb: torch.Tensor, item_ids: torch.Tensor, *,
                item_bias: torch.Tensor | None = None, encode_items=None) -> torch.Tensor:
        """The mean loss over the rows; ``encode_items`` (``ids [N] -> [N, D]``, the item tower)
        encodes the sampled items."""
        pool = gather_batch(item_emb, item_ids, self.gather_across_ranks, self.process_group)
        if self.training:
            self.sampler.update_frequency(pool.ids)
        sources = at_offset(self.sampler.negatives(pool.ids, pool.emb, encode_items), pool.offset)
        if len(item_ids):
            loss = self.softmax(user_emb, item_emb, item_ids, self.sampler.positive_logq(item_ids), sources,
                                item_bias)
        else:
            loss = zero_on_graph(user_emb, item_emb, sources, item_bias)
        if self.training:
            self.sampler.observe(pool.ids, pool.emb.detach())
        return loss
