"""The gradient average over ranks: DDP for the dense parameters, an all-gather for row-sparse ones.

DDP all-reduces dense gradients in buckets during backward. Row-sparse gradients (the embedding
tables and item bias under ``sparse_updates``, :meth:`cbns.model.two_tower.TwoTower.sparse_parameters`)
it reduces only with gloo, as a sparse all-reduce (NCCL has no sparse all-reduce:
pytorch/pytorch#22400), and only for ``nn.Embedding`` modules, not for a bare parameter such as
the item bias. So those parameters are kept out of DDP and averaged here after backward, the same
way on every backend: the ranks all-gather their (row, gradient) entries, one per lookup, padded to
the largest count, and every rank takes the concatenation divided by ``W``, a sparse gradient of
``W x`` a rank's lookups that the optimizer sums per row. That is the average DDP takes of the
dense ones, so ``W`` ranks still equal one process on the global batch. The entries are not summed
per row before the gather: concatenated in rank order they are the single process's lookups in
its order, so the optimizer adds the copies of a row in the same order as there.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from cbns.distributed.context import DistContext
from cbns.distributed.gather import all_gather_rows, row_counts
from cbns.training.row_adam import touched_rows


def data_parallel(encoder: nn.Module, sparse: Sequence[nn.Parameter], ctx: DistContext) -> nn.Module:
    """``encoder`` wrapped in DDP for its dense parameters (not wrapped when it has none), with the
    ``sparse`` ones left out of DDP and broadcast from rank 0 once, as DDP does with the others."""
    ids = {id(p) for p in sparse}
    with torch.no_grad():
        for p in sparse:
            dist.broadcast(p.data, 0, group=ctx.group)
    if all(id(p) in ids for p in encoder.parameters()):
        return encoder
    ignored = [name for name, p in encoder.named_parameters() if id(p) in ids]
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(encoder, ignored)
    return DistributedDataParallel(encoder, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)


@torch.no_grad()
def average_sparse_grads(params: Sequence[nn.Parameter], ctx: DistContext) -> None:
    """Replace each parameter's gradient by its mean over ranks as a sparse gradient (a no-op in
    one process). Every rank must call it with the same parameters, in the same order."""
    if not ctx.distributed:
        return
    for p in params:
        if p.grad is None:
            rows = torch.zeros(0, dtype=torch.long, device=p.device)
            values = p.new_zeros((0, *p.shape[1:]))
        elif p.grad.is_sparse:  # as backward left it, one entry per lookup in this rank's row order
            rows, values = p.grad._indices()[0], p.grad._values()
        else:
            rows, values = touched_rows(p.grad)
        counts = row_counts(len(rows), ctx.group, p.device)
        if not sum(counts):  # no rank touched a row (every rank sees the same counts)
            p.grad = None
            continue
        rows = all_gather_rows(rows, counts, ctx.rank, ctx.group)
        values = all_gather_rows(values.contiguous(), counts, ctx.rank, ctx.group) / ctx.world_size
        p.grad = torch.sparse_coo_tensor(rows[None], values, p.shape, check_invariants=False)
