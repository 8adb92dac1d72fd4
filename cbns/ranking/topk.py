"""Exact row-wise top-K over wide score blocks through group maxima.

Split each row of ``scores [R, I]`` into groups of ``g`` consecutive columns. The K largest entries
of a row lie in the K groups with the largest maxima: if an entry x is among the row's K largest,
fewer than K entries exceed it, so fewer than K groups have a maximum above x, and x's own group,
whose maximum is at least x, ranks among the first K. So the top-K is the top-K of those K groups'
``K * g`` entries. The work is one max-reduction pass over the block plus two small top-Ks,
instead of a selection over every one of the I columns (measured: ``torch.topk`` with K = 50 over
Gowalla's 40,981 items costs about half of the score GEMM itself; the max pass a small fraction).

Ties between group maxima at the K-th place may pick a different one of equal entries than a full
``torch.topk`` would; the values returned are the same.

:func:`iter_top_k` is the one exact top-K of the package: evaluation (:mod:`cbns.evaluation.ranking`)
and serving (``Recommender``) both rank through it. It scores queries against every item in
blocks of rows through one reused score buffer, gives excluded items the lowest finite score, and
selects with :func:`grouped_topk`.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from cbns.machine import block_rows
from cbns.ranking.host_copy import host_to_device
from cbns.ranking.row_membership import RowKeys, coordinates

#: Columns per group: with K = 50 the candidates are 1,600 entries a row.
GROUP = 32


def padded_width(num_items: int, group: int = GROUP) -> int:
    """``num_items`` rounded up to a whole number of groups."""
    return -(-num_items // group) * group


def grouped_topk(scores: torch.Tensor, k: int, num_valid: int | None = None, group: int = GROUP) -> torch.Tensor:
    """``[R, k]`` int64 column indices of the k largest entries of each row, largest first.

    Args:
        scores: ``[R, W]`` contiguous scores; W a multiple of ``group`` (see :func:`padded_width`).
            Columns ``num_valid..W-1`` are padding and must hold ``-inf``; real columns must be
            above ``-inf`` (give excluded ones the lowest finite value), so that padding is never
            returned.
        k: how many per row, ``k <= num_valid``.
        num_valid: the real columns (default: all W).
        group: columns per group.
    """
    rows, width = scores.shape
    num_valid = width if num_valid is None else num_valid
    if width % group or not scores.is_contiguous():
        raise ValueError(f"scores must be contiguous with a width divisible by {group}, got {tuple(scores.shape)}")
    groups = width // group
    if groups < 4 * k:  # too few groups to save anything
        return torch.topk(scores[:, :num_valid], k, dim=1, sorted=True).indices
    best = scores.view(rows, groups, group).amax(dim=2)
    top_groups = torch.topk(best, k, dim=1, sorted=False).indices
    cols = (top_groups[:, :, None] * group + torch.arange(group, device=scores.device)).reshape(rows, k * group)
    picked = torch.topk(scores.gather(1, cols), k, dim=1, sorted=True).indices
    return cols.gather(1, picked)


#: Score of an excluded item: the lowest finite float, so it ranks below every real score but
#: above the ``-inf`` padding of :func:`grouped_topk`.
EXCLUDED = torch.finfo(torch.float32).min
#: The largest score block :func:`iter_top_k` holds; less when memory is short.
BLOCK_BYTES = 256 * 2**20


def default_chunk(num_items: int) -> int:
    """Queries scored at once by default: a ``[chunk, num_items]`` float32 score block of at most
    :data:`BLOCK_BYTES` and an eighth of the available memory."""
    return block_rows(4 * max(num_items, 1), BLOCK_BYTES)


#: Items scored at once: a wider catalog is ranked block by block (see :func:`iter_top_k`).
ITEM_BLOCK = 1 << 17


@torch.no_grad()
def iter_top_k(queries: torch.Tensor, items: torch.Tensor, k: int, exclude: sp.csr_matrix | None = None,
               rows: np.ndarray | None = None, chunk_size: int | None = None,
               item_bias: torch.Tensor | None = None, item_block: int | None = None,
               padded: torch.Tensor | None = None) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
    """Exact top-``k`` items by dot product (plus ``item_bias``), one block of queries at a time.

    Args:
        queries: ``[Q, D]`` query vectors (users, or items for similar items).
        items: ``[I, D]`` item vectors.
        k: list length, ``k <= I``.
        exclude: ``[Q, I]`` CSR; the non-zeros of row q get :data:`EXCLUDED` for query q, so they
            come last (only when fewer than ``k`` other items are left do they appear at all).
        rows: the query rows to rank (default: all ``Q``), in this order.
        chunk_size: queries per block (default :func:`default_chunk`).
        item_bias: ``[I]`` added to every query's score of each item (the learned bias and the
            prior: :meth:`cbns.model.two_tower.TwoTower.item_column`), or None. It rides in the
            product as one more column (``[q, 1] . [v, b]``), as
            :meth:`~cbns.model.two_tower.TwoTower.ranking_vectors` folds it, but one item block
            at a time, so the catalog is never copied whole.
        item_block: items scored at once (default :data:`ITEM_BLOCK`).
        padded: :func:`padded_items` of ``items``, made once by a caller that ranks many query
            batches against the same items (a server); used when there is no ``item_bias`` and
            the catalog is one item block.

    Yields ``(block_rows [n], scores [n, k], top [n, k])``: the query rows of the block, and their
    best scores and item indices, best first. Up to ``item_block`` items, one padded copy of the
    items and one score block are allocated and reused (columns padded to whole groups of
    :func:`grouped_topk`). A larger catalog is scored one item block at a time for every query
    block, each block's top-k merged into a running ``[len(rows), k]`` top-k: the K best overall
    are among the K best of the blocks they lie in, so the result is exact, and memory is one
    item block, one score block and the running top-k, whatever the number of items.
    """
    rows = np.arange(queries.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
    block = item_block or ITEM_BLOCK
    if items.shape[0] <= block:
        yield from _one_block(queries, items, k, exclude, rows, chunk_size, item_bias,
                              padded if item_bias is None else None)
    else:
        yield from _item_blocks(queries, items, k, exclude, rows, chunk_size, item_bias, block)


def _operand(items: torch.Tensor, bias: torch.Tensor | None, start: int, stop: int) -> torch.Tensor:
    """Items ``start..stop-1`` as ``[padded_width(n), D (+1)]``: zero rows up to whole groups, and
    the bias as the last column when there is one."""
    n, dim = stop - start, items.shape[1]
    operand = items.new_zeros(padded_width(n), dim + (bias is not None))
    operand[:n, :dim] = items[start:stop]
    if bias is not None:
        operand[:n, dim] = bias[start:stop].to(items)
    return operand


def _query_rows(queries: torch.Tensor, batch: np.ndarray, biased: bool) -> torch.Tensor:
    q = queries[host_to_device(batch, queries.device)]
    return torch.cat([q, q.new_ones(len(q), 1)], 1) if biased else q


def _masked_scores(queries, batch, padded, biased, num_items, excluded: RowKeys | None, start: int, out):
    """Scores of the queries ``batch`` (rows ``start..`` of the ranking) against one padded item
    block, written into ``out``: the padding columns at ``-inf``, the excluded items at
    :data:`EXCLUDED` (a fill by flat index on the device, :meth:`RowKeys.fill`)."""
    score = torch.mm(_query_rows(queries, batch, biased), padded.T, out=out)
    score[:, num_items:] = -torch.inf
    if excluded is not None:
        excluded.fill(score, start, EXCLUDED)
    return score


def padded_items(items: torch.Tensor) -> torch.Tensor:
    """``[padded_width(I), D]``: ``items`` with zero rows up to whole groups of :func:`grouped_topk`,
    the operand exact ranking scores; see :func:`iter_top_k`'s ``padded``."""
    return _operand(items, None, 0, items.shape[0])


def _one_block(queries, items, k, exclude, rows, chunk_size, bias, padded=None):
    num_items = items.shape[0]
    if padded is None:
        padded = _operand(items, bias, 0, num_items)
    width = padded.shape[0]
    chunk = chunk_size or default_chunk(width)
    block = queries.new_empty(max(min(chunk, len(rows)), 1), width)
    excluded = RowKeys(exclude, rows, width, queries.device) if exclude is not None else None
    for start in range(0, len(rows), chunk):
        batch = rows[start:start + chunk]
        score = _masked_scores(queries, batch, padded, bias is not None, num_items, excluded, start,
                               block[:len(batch)])
        top = grouped_topk(score, k, num_items)
        yield batch, score.gather(1, top), top


@torch.no_grad()
def iter_top_k_columns(queries: torch.Tensor, items: torch.Tensor, k: int, columns: Sequence[torch.Tensor],
                       exclude: sp.csr_matrix | None = None, rows: np.ndarray | None = None,
                       chunk_size: int | None = None, item_bias: torch.Tensor | None = None
                       ) -> Iterator[tuple[np.ndarray, list[torch.Tensor]]]:
    """:func:`iter_top_k` for several rankings at once: ranking c scores ``query . item +
    item_bias + columns[c]`` (``columns``: ``[I]`` each). One score product per block of queries
    serves them all (the columns are added after it, one at a time, into a second buffer), so
    ranking the validation users under a grid of popularity priors costs one product, not one a
    prior. Yields ``(block_rows [n], [top [n, k] for each column])``. Catalogs of up to
    :data:`ITEM_BLOCK` items (one item block); the scores equal :func:`iter_top_k`'s with
    ``item_bias + column`` to float32 rounding (the column is added after the product, not in it).
    """
    num_items = items.shape[0]
    if num_items > ITEM_BLOCK:
        raise ValueError(f"iter_top_k_columns ranks up to {ITEM_BLOCK:,} items, got {num_items:,}")
    rows = np.arange(queries.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
    padded = _operand(items, item_bias, 0, num_items)
    width = padded.shape[0]
    extra = [torch.cat([c.to(items), c.new_zeros(width - num_items).to(items)])[None, :] for c in columns]
    chunk = chunk_size or max(1, default_chunk(width) // 2)  # two score buffers in the memory of one
    size = max(min(chunk, len(rows)), 1)
    base_buf, shifted_buf = queries.new_empty(size, width), queries.new_empty(size, width)
    excluded = RowKeys(exclude, rows, width, queries.device) if exclude is not None else None
    for start in range(0, len(rows), chunk):
        batch = rows[start:start + chunk]
        base = _masked_scores(queries, batch, padded, item_bias is not None, num_items, excluded, start,
                              base_buf[:len(batch)])
        tops = []
        for column in extra:  # EXCLUDED + a finite column stays the lowest finite float; -inf stays -inf
            shifted = torch.add(base, column, out=shifted_buf[:len(batch)])
            tops.append(grouped_topk(shifted, k, num_items))
        yield batch, tops


def _item_blocks(queries, items, k, exclude, rows, chunk_size, bias, block):
    num_items, n = items.shape[0], len(rows)
    width = padded_width(block)
    chunk = chunk_size or default_chunk(width)
    starts = list(range(0, n, chunk))
    buffer = queries.new_empty(max(min(chunk, n), 1) * width)
    best = queries.new_full((n, k), -torch.inf)
    best_items = torch.full((n, k), -1, dtype=torch.long, device=queries.device)
    excluded = [coordinates(exclude, rows[s:s + chunk]) for s in starts] if exclude is not None else None
    for first in range(0, num_items, block):
        last = min(first + block, num_items)
        operand = _operand(items, bias, first, last)
        for c, start in enumerate(starts):
            batch = rows[start:start + chunk]
            score = buffer[:len(batch) * operand.shape[0]].view(len(batch), operand.shape[0])
            torch.mm(_query_rows(queries, batch, bias is not None), operand.T, out=score)
            score[:, last - first:] = -torch.inf
            if excluded is not None:  # chosen on the host, filled by flat index on the device
                local, cols = excluded[c]
                inside = (cols >= first) & (cols < last)
                flat = torch.from_numpy(local[inside] * score.shape[1] + cols[inside] - first)
                if len(flat):
                    score.view(-1).index_fill_(0, flat.to(score.device, non_blocking=True), EXCLUDED)
            top = grouped_topk(score, min(k, last - first), last - first)
            window = slice(start, start + len(batch))
            values = torch.cat([best[window], score.gather(1, top)], 1)
            found = torch.cat([best_items[window], top + first], 1)
            keep = torch.topk(values, k, dim=1, sorted=True).indices
            best[window], best_items[window] = values.gather(1, keep), found.gather(1, keep)
    for start in starts:
        window = slice(start, start + chunk)
        yield rows[window], best[window], best_items[window]


def exact_top_k(queries, items, k: int, exclude: sp.csr_matrix | None = None,
                device: torch.device | None = None, padded: torch.Tensor | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best items for each query by dot product; excluded items are never returned.

    Args:
        queries: ``[Q, D]`` float32 (numpy or torch); items: ``[I, D]`` float32.
        k: list length; clipped to ``I``.
        exclude: ``[Q, I]`` CSR whose non-zeros in row q are items never returned for query q.
        device: where to score (default: where the tensors are; the CPU for numpy arrays).
        padded: :func:`padded_items` of ``items`` on that device, kept by a caller that asks often.

    Returns:
        ``scores [Q, k]`` float32 best first and ``rows [Q, k]`` int64 item rows (numpy). Where
        fewer than ``k`` items are left after exclusion, the tail is padded with score ``-inf``
        and row ``-1``.
    """
    queries, items = _as_tensor(queries), _as_tensor(items)
    if device is not None:
        queries, items = queries.to(device), items.to(device)
    k = max(1, min(k, items.shape[0]))
    scores = queries.new_empty(queries.shape[0], k)
    found = torch.empty(queries.shape[0], k, dtype=torch.long, device=queries.device)
    for batch, best, top in iter_top_k(queries, items, k, exclude, padded=padded):  # blocks in row order
        scores[batch[0]:batch[0] + len(batch)], found[batch[0]:batch[0] + len(batch)] = best, top
    scores, found = scores.cpu().numpy(), found.cpu().numpy()  # the one read back
    padding = scores <= EXCLUDED
    scores[padding], found[padding] = -np.inf, -1
    return scores, found


def _as_tensor(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.float()
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
