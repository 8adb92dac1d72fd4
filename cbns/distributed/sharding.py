"""Which training rows each rank reads in an epoch.

Every rank draws the same seeded permutation of the training pairs as a single process would
(same generator, same seed), cuts it into the same *global* batches of ``batch_size`` rows, and
reads only its contiguous part of each: rank r gets rows ``[o_r, o_r + n_r)`` of every global
batch. Concatenating the ranks' parts in rank order gives back the single-process batch, so a run
on W ranks visits exactly the batches of the single-process run, every row once per epoch.

The last global batch of an epoch may be short (``N mod batch_size`` rows) and need not divide by
W: it is split as evenly as possible, the first ``b mod W`` ranks getting one row more, and when
it has fewer rows than there are ranks the last ranks get none (they still take part in the
step's collectives with an empty batch).
"""
from __future__ import annotations

import torch


def split_sizes(total: int, parts: int) -> list[int]:
    """Row counts of ``parts`` contiguous pieces of ``total`` rows, differing by at most one.

    >>> split_sizes(10, 4)
    [3, 3, 2, 2]
    """
    base, extra = divmod(total, parts)
    return [base + (r < extra) for r in range(parts)]


def shard_batches(order: torch.Tensor, batch_size: int, rank: int, world_size: int) -> list[torch.Tensor]:
    """This rank's part of every global batch of the permutation ``order [N]``.

    Returns one index tensor per step (``ceil(N / batch_size)`` of them on every rank, some
    possibly empty for the last step).
    """
    parts = []
    for batch in torch.split(order, batch_size):
        sizes = split_sizes(len(batch), world_size)
        start = sum(sizes[:rank])
        parts.append(batch[start:start + sizes[rank]])
    return parts
