"""Gathering every rank's rows: ``[n_r, ...]`` on rank r -> ``[sum_r n_r, ...]`` in rank order.

Ranks may hold different row counts (the last batch of an epoch need not split evenly), so the
rows are padded to the largest count for ``all_gather`` and trimmed afterwards; the counts come
from :func:`row_counts`.

Gradients: :func:`all_gather_rows` is a plain collective, no gradient. :func:`gather_rows_with_grad`
is autograd-aware and makes the global loss gradient exact: in backward every rank holds the
gradient of *its own* loss with respect to all gathered rows; these are summed over ranks
(all-reduce) and each rank keeps the slice of its own rows. So rank r's rows receive
``sum_s dL_s / d rows_r``, which is what a single process computing ``sum_s L_s`` would give them,
and DDP's gradient average over ranks then turns ``sum_s L_s`` into their mean. Every rank must
run the backward of each gathered tensor it uses (it is a collective); all ranks build the same
graph, so they do.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist


def all_gather_rows(rows: torch.Tensor, counts: Sequence[int], rank: int, group=None) -> torch.Tensor:
    """``[sum(counts), ...]`` the rows of every rank in rank order; no gradient.

    ``rows`` is this rank's ``[counts[rank], ...]``. With one rank it is returned as is.
    """
    if len(counts) == 1:
        return rows
    if rows.shape[0] != counts[rank]:
        raise AssertionError(f"rank {rank} holds {rows.shape[0]} rows, counts say {counts[rank]}")
    width = max(counts)
    padded = rows.new_zeros((width, *rows.shape[1:]))
    padded[:rows.shape[0]] = rows
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded.contiguous(), group=group)
    return torch.cat([part[:n] for part, n in zip(parts, counts)])


def gather_rows_with_grad(rows: torch.Tensor, counts: Sequence[int], rank: int, group=None) -> torch.Tensor:
    """Like :func:`all_gather_rows`, with the exact gradient described in the module docstring.

    With one rank it is returned as is (the same tensor, same autograd graph).
    """
    if len(counts) == 1:
        return rows
    return _GatherRows.apply(rows, tuple(counts), rank, group)


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, rows, counts, rank, group):
        ctx.counts, ctx.rank, ctx.group = counts, rank, group
        return all_gather_rows(rows.detach(), counts, rank, group)

    @staticmethod
    def backward(ctx, grad):
        total = grad.contiguous().clone()  # all_reduce writes in place; the incoming grad may be shared
        dist.all_reduce(total, group=ctx.group)
        start = sum(ctx.counts[:ctx.rank])
        return total[start:start + ctx.counts[ctx.rank]], None, None, None


def world_of(group=None) -> tuple[int, int]:
    """``(rank, world_size)`` in ``group`` (the default group when None); ``(0, 1)`` when
    torch.distributed is not initialised."""
    if not dist.is_available() or not dist.is_initialized():
        return 0, 1
    return dist.get_rank(group), dist.get_world_size(group)


def row_counts(n: int, group=None, device: torch.device | None = None) -> list[int]:
    """``[world_size]`` the row count ``n`` of every rank, in rank order (``[n]`` in one process)."""
    rank, world = world_of(group)
    if world == 1:
        return [n]
    mine = torch.tensor([n], dtype=torch.long, device=device)
    every = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(every, mine, group=group)
    return [int(t) for t in every]


@dataclass
class GatheredBatch:
    """A step's positives gathered over ranks.

    Attributes:
        emb: ``[b, D]`` every rank's item vectors in rank order, with the exact gradient.
        ids: ``[b]`` their ids.
        offset: where this rank's rows start (``sum_{s<r} n_s``).
        counts: ``[world_size]`` the rows of every rank.
        rank, group: this rank, and the group the rows were gathered over.
    """

    emb: torch.Tensor
    ids: torch.Tensor
    offset: int
    counts: list[int]
    rank: int = 0
    group: object = None

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """Another per-row tensor ``[n, ...]`` of this rank, gathered the same way (no gradient)."""
        return all_gather_rows(x, self.counts, self.rank, self.group)


def gather_batch(item_emb: torch.Tensor, item_ids: torch.Tensor, gather: bool, group=None) -> GatheredBatch:
    """The global batch of a step: this rank's ``item_emb [n, D]`` and ``item_ids [n]`` with those
    of every other rank when ``gather`` (and torch.distributed runs several ranks); else unchanged."""
    rank, world = world_of(group) if gather else (0, 1)
    if world == 1:
        return GatheredBatch(item_emb, item_ids, 0, [len(item_ids)])
    counts = row_counts(len(item_ids), group, item_ids.device)
    return GatheredBatch(gather_rows_with_grad(item_emb, counts, rank, group),
                         all_gather_rows(item_ids, counts, rank, group), sum(counts[:rank]), counts, rank, group)
