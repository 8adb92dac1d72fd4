"""Exact top-K by dot product in numpy alone, for serving where torch is not imported (an exported
bundle: :mod:`cbns.serve.bundle`).

It answers what :func:`cbns.ranking.topk.exact_top_k` answers (same scores, same padding) with one
float32 matrix product per block of queries and an ``argpartition`` per row; the torch version
stays the one evaluation uses (grouped selection, GPU). Equal scores inside a list are ordered by
item row; which of several items tied at the K-th place is kept is not specified (as in torch).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

#: The largest ``[queries, items]`` float32 score block held at once.
BLOCK_BYTES = 64 * 2**20


def numpy_top_k(queries: np.ndarray, items: np.ndarray, k: int, exclude: sp.csr_matrix | None = None,
                block_bytes: int = BLOCK_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best items for each query by dot product; excluded items are never returned.

    Args:
        queries: ``[Q, D]`` float32; items: ``[I, D]`` float32.
        k: list length; clipped to ``I``.
        exclude: ``[Q, I]`` CSR whose non-zeros in row q are items never returned for query q.
        block_bytes: the score block's size limit (queries scored at once = this / (4 I)).

    Returns:
        ``scores [Q, k]`` float32 best first and ``rows [Q, k]`` int64 item rows. Where fewer than
        ``k`` items are left after exclusion, the tail is padded with score ``-inf`` and row ``-1``.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    items = np.ascontiguousarray(items, dtype=np.float32)
    num_queries, num_items = len(queries), len(items)
    k = max(1, min(k, num_items))
    scores = np.full((num_queries, k), -np.inf, dtype=np.float32)
    rows = np.full((num_queries, k), -1, dtype=np.int64)
    chunk = max(1, block_bytes // (4 * max(num_items, 1)))
    for start in range(0, num_queries, chunk):
        stop = min(start + chunk, num_queries)
        block = queries[start:stop] @ items.T                              # [n, I]
        if exclude is not None:
            sub = exclude[start:stop]
            local = np.repeat(np.arange(stop - start), np.diff(sub.indptr))
            block[local, sub.indices] = -np.inf
        if k < num_items:
            candidates = np.argpartition(-block, k - 1, axis=1)[:, :k]     # the k largest, unordered
        else:
            candidates = np.broadcast_to(np.arange(num_items), block.shape)
        picked = np.take_along_axis(block, candidates, axis=1)
        order = np.lexsort((candidates, -picked), axis=1)                   # best first, ties by item row
        best = np.take_along_axis(picked, order, axis=1)
        found = np.take_along_axis(candidates, order, axis=1).astype(np.int64)
        real = best > -np.inf
        scores[start:stop] = np.where(real, best, -np.inf)
        rows[start:stop] = np.where(real, found, -1)
    return scores, rows
