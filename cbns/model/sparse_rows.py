"""Rows of a dense parameter looked up with a row-sparse gradient, for a 1-d table too.

``weight[ids]`` gives ``weight`` a dense gradient: backward writes a zero tensor of the whole
table and adds the rows into it, O(table) per step. :func:`gather_rows` returns the same rows,
but its backward gives ``weight`` a sparse COO gradient holding one row per looked-up id (copies
unsummed), O(ids), as ``nn.Embedding(sparse=True)`` does for 2-d tables; it also works for the
learned item bias, a ``[num_items]`` vector that ``F.embedding`` cannot take.
"""
from __future__ import annotations

import torch


def gather_rows(weight: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``weight[ids]`` (``ids [N]`` int64 -> ``[N, ...]``) with a sparse gradient for ``weight``."""
    return _GatherRows.apply(weight, ids)


class _GatherRows(torch.autograd.Function):

    @staticmethod
    def forward(ctx, weight, ids):
        ctx.save_for_backward(ids)
        ctx.shape = weight.shape
        return weight[ids]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (ids,) = ctx.saved_tensors
        rows = torch.sparse_coo_tensor(ids[None], grad, ctx.shape, check_invariants=False)
        return rows, None
