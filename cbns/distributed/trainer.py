"""The training loop on W ranks: DDP for the gradients, gathered in-batch negatives, one bank.

A step on rank r, with ``n_r`` rows of a global batch of ``b = sum_r n_r`` rows:

1. encode the local users (with their history context, for history towers) and items through the
   DDP-wrapped towers;
2. gather every rank's positive item ids and vectors (:mod:`cbns.distributed.gather`; the vectors
   with the exact gradient), so the sampler sees the whole global batch: in-batch negatives come
   from all ranks, and the in-batch block's rows ``[o_r, o_r + n_r)`` are this rank's positives
   (``o_r = sum_{s<r} n_s``, set as the block's ``positive_offset``), so the target column, the
   accidental-hit mask and the logQ correction all see every rank's items; a streaming frequency
   estimate (``--item-frequency streaming``) is fed the gathered ids, the same on every rank;
3. take the local mean loss ``L_r``, scaled by ``W n_r / b`` so that DDP's average of the ranks'
   gradients is the gradient of the global mean over the b rows, also for an uneven last batch;
4. step the (fused) optimizer on the all-reduced gradients, identical on every rank;
5. let the sampler observe the gathered ids and vectors: every rank's CBNS bank enqueues the
   same global batch in the same order, so every rank holds the same bank, the one a single
   process with batch size b would hold.

Samplers that draw their own negatives (uniform, popularity, MNS) use the same seed on every
rank, so every rank draws the same negatives, shared by the global batch as in one process.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from cbns.config import TrainConfig
from cbns.data.interactions import Interactions
from cbns.distributed.context import DistContext
from cbns.distributed.evaluation import evaluate_sharded
from cbns.distributed.gather import all_gather_rows, gather_rows_with_grad
from cbns.distributed.sharding import shard_batches
from cbns.loss import SampledSoftmaxLoss
from cbns.model import TwoTower
from cbns.negatives import Candidates, NegativeSampler
from cbns.train import Callback, Trainer, TrainResult


class PairEncoder(nn.Module):
    """``forward(users [n], items [n], context) -> (user vectors [n, D], item vectors [n, D], item
    bias [num_items] or None)``: the towers (and the learned item bias, used by the loss) behind one
    ``forward``, which is what DDP needs to arm its gradient all-reduce for every parameter."""

    def __init__(self, model: TwoTower):
        super().__init__()
        self.model = model

    def forward(self, users: torch.Tensor, items: torch.Tensor,
                context: dict[str, torch.Tensor] | None = None):
        bias = self.model.item_bias
        return (self.model.user_embeddings(users, context), self.model.item_embeddings(items),
                bias.view(-1) if bias is not None else None)


class DistributedTrainer(Trainer):
    """:class:`cbns.train.Trainer` on rank ``ctx.rank`` of ``ctx.world_size``.

    ``config.batch_size`` is the global batch; this rank reads its share of each
    (:mod:`cbns.distributed.sharding`). Evaluation is sharded over users and gives every rank the
    single-process metrics (:mod:`cbns.distributed.evaluation`). Only rank 0 shows progress bars
    and prints. The model and sampler move to ``ctx.device`` for training and back to the CPU when
    :meth:`fit` returns.
    """

    def __init__(self, ctx: DistContext, config: TrainConfig, data: Interactions, model: TwoTower,
                 sampler: NegativeSampler, loss: SampledSoftmaxLoss, progress: bool = True,
                 verbose: bool = True, callbacks: Sequence[Callback] = (), contexts=None):
        model.to(ctx.device)
        sampler.to(ctx.device)
        super().__init__(config, data, model, sampler, loss, progress=progress and ctx.is_main,
                         verbose=verbose and ctx.is_main, callbacks=callbacks, contexts=contexts)
        self.ctx = ctx
        self.rank = ctx.rank
        self.encoder = DistributedDataParallel(PairEncoder(model),
                                               device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
        self._epoch_rows = 0

    def epoch_batches(self) -> list[torch.Tensor]:
        order = torch.randperm(len(self.train_pairs), generator=self.shuffle)
        batches = shard_batches(order, self.config.batch_size, self.ctx.rank, self.ctx.world_size)
        self._epoch_rows = sum(len(b) for b in batches)
        return batches

    def train_epoch(self, epoch: int) -> dict:
        record = super().train_epoch(epoch)
        total, rows = self.ctx.sum([record["loss"] * self._epoch_rows, self._epoch_rows])
        record["loss"] = total / max(rows, 1)  # the mean over every rank's rows
        return record

    def step(self, batch: torch.Tensor, context: dict[str, torch.Tensor] | None = None) -> float:
        """One synchronised step on this rank's rows ``batch [n, 2]`` (``context``: their user-tower
        context); returns this rank's mean loss over its rows (0 with none)."""
        ctx, timer = self.ctx, self.timer
        batch = batch.to(ctx.device)
        if context is not None:
            context = {k: v.to(ctx.device) for k, v in context.items()}
        users, items = batch[:, 0], batch[:, 1]
        with timer("encode"):
            user_emb, item_emb, item_bias = self.encoder(users, items, context)
        with timer("loss"):
            counts = ctx.row_counts(len(items))
            pool_ids = all_gather_rows(items, counts, ctx.rank, ctx.group)
            pool_emb = gather_rows_with_grad(item_emb, counts, ctx.rank, ctx.group)
            self.sampler.update_frequency(pool_ids)
            sources = self.sampler.negatives(pool_ids, pool_emb, self.model.item_embeddings)
            sources = at_offset(sources, sum(counts[:ctx.rank]))
            if len(items):
                loss = self.loss(user_emb, item_emb, items, self.sampler.positive_logq(items), sources,
                                 item_bias)
                objective = loss * (ctx.world_size * len(items) / sum(counts))
            else:
                loss = user_emb.new_zeros(())
                objective = _zero_on_same_graph(user_emb, item_emb, sources, item_bias)
        self._update(objective, pool_ids, pool_emb)
        return loss.item()

    def evaluate(self, part: str) -> dict[str, float]:
        context = self.contexts.for_users(part) if self.contexts is not None else None
        return evaluate_sharded(self.model, self.data, part, self.config.ks, self.ctx, user_context=context)

    def fit(self) -> TrainResult:
        result = super().fit()
        self.model.cpu()
        self.sampler.cpu()
        return result


def at_offset(sources: list[Candidates], offset: int) -> list[Candidates]:
    """``sources`` with a leading in-batch block told that this rank's rows start at ``offset``."""
    if sources and sources[0].source == "inbatch":
        return [replace(sources[0], positive_offset=offset), *sources[1:]]
    return sources


def _zero_on_same_graph(user_emb: torch.Tensor, item_emb: torch.Tensor, sources: list[Candidates],
                        item_bias: torch.Tensor | None = None) -> torch.Tensor:
    """A zero loss for a rank with no rows that still reaches every parameter (DDP waits for each)
    and every gathered tensor the other ranks' losses use (their backward is a collective)."""
    parts = [user_emb.sum(), item_emb.sum(), *(s.emb.sum() for s in sources if s.emb.requires_grad)]
    if item_bias is not None:
        parts.append(item_bias.sum())
    return 0.0 * torch.stack(parts).sum()


def build_trainer(ctx: DistContext, config: TrainConfig, data: Interactions, model: TwoTower,
                  sampler: NegativeSampler, loss: SampledSoftmaxLoss, **options) -> Trainer:
    """A :class:`DistributedTrainer` on several ranks, the plain :class:`Trainer` on one."""
    if ctx.distributed:
        return DistributedTrainer(ctx, config, data, model, sampler, loss, **options)
    return Trainer(config, data, model, sampler, loss, **options)
