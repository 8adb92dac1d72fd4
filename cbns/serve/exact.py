"""Exact top-K by brute force: one matrix product per chunk of queries, then ``torch.topk``."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

#: Scores held at once: chunk rows * items ~ 16M floats = 64 MB.
_BLOCK = 16 * 2**20


@torch.no_grad()
def exact_top_k(queries: np.ndarray, items: np.ndarray, k: int,
                exclude: sp.csr_matrix | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best items for each query by dot product, excluded items never returned.

    Args:
        queries: ``[Q, D]`` float32 query vectors (users, or items for similar items).
        items: ``[I, D]`` float32 item vectors.
        k: list length; clipped to ``I``.
        exclude: ``[Q, I]`` CSR whose non-zeros in row q are items never returned for query q.

    Returns:
        ``scores [Q, k]`` float32 best first and ``rows [Q, k]`` int64 item rows. Where fewer than
        ``k`` items are left after exclusion, the tail is padded with score ``-inf`` and row ``-1``.
    """
    item_t = torch.from_numpy(np.ascontiguousarray(items, dtype=np.float32))
    query_t = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    num_items = item_t.shape[0]
    k = max(1, min(k, num_items))
    chunk = max(1, _BLOCK // max(num_items, 1))
    scores = np.empty((len(query_t), k), dtype=np.float32)
    rows = np.empty((len(query_t), k), dtype=np.int64)
    for start in range(0, len(query_t), chunk):
        block = query_t[start:start + chunk] @ item_t.T
        if exclude is not None:
            sub = exclude[start:start + chunk]
            local = np.repeat(np.arange(sub.shape[0]), np.diff(sub.indptr))
            block[torch.from_numpy(local), torch.from_numpy(sub.indices.astype(np.int64))] = -torch.inf
        top = torch.topk(block, k, dim=1, sorted=True)
        scores[start:start + chunk] = top.values.numpy()
        rows[start:start + chunk] = top.indices.numpy()
    rows[np.isneginf(scores)] = -1
    return scores, rows
