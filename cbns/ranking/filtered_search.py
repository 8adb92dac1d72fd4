"""Top-K through an approximate index while excluding items (e.g. each user's seen items).

An index cannot mask per query, so each query asks for ``k + n_excluded`` candidates, the
excluded ones are dropped, and the first ``k`` left are kept. Queries are grouped by how many
items they exclude, so one heavy user does not make every query of the batch over-fetch. When the
index still comes back short (an IVF probe can hold fewer items than asked for), those queries
are re-scored exactly (in numpy: a few queries, and no torch import where a bundle is served), so
every query gets ``min(k, I - n_excluded)`` items.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from cbns.ranking.item_index import ItemIndex
from cbns.ranking.numpy_topk import numpy_top_k
from cbns.ranking.row_membership import contains

#: Queries sent to faiss in one call.
GROUP = 512


def index_top_k(index: ItemIndex, queries: np.ndarray, items: np.ndarray, k: int,
                exclude: sp.csr_matrix | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`cbns.ranking.numpy_topk.numpy_top_k`, with candidates from ``index``.

    Args:
        index: an index over ``items``.
        queries: ``[Q, D]`` float32; items: ``[I, D]`` float32 (used only for the exact fallback).
        k: list length; clipped to ``I``.
        exclude: ``[Q, I]`` CSR of items never returned for query q, or ``None``.

    Returns:
        ``scores [Q, k]`` float32 and ``rows [Q, k]`` int64, padded with ``-inf`` / ``-1`` where
        fewer than ``k`` items remain after exclusion.
    """
    num_items = len(items)
    k = max(1, min(k, num_items))
    num_queries = len(queries)
    n_excluded = np.diff(exclude.indptr) if exclude is not None else np.zeros(num_queries, dtype=np.int64)
    scores = np.full((num_queries, k), -np.inf, dtype=np.float32)
    rows = np.full((num_queries, k), -1, dtype=np.int64)
    order = np.argsort(n_excluded, kind="stable")
    for start in range(0, num_queries, GROUP):
        group = order[start:start + GROUP]
        fetch = min(num_items, k + int(n_excluded[group].max()))
        got_scores, got_rows = index.search(queries[group], fetch)
        keep = got_rows >= 0
        if exclude is not None:
            keep &= ~contains(exclude, group, got_rows)
        # move kept candidates to the front, preserving their (best-first) order
        front = np.argsort(~keep, axis=1, kind="stable")[:, :k]
        taken = np.take_along_axis(keep, front, axis=1)
        scores[group, :front.shape[1]] = np.where(taken, np.take_along_axis(got_scores, front, axis=1), -np.inf)
        rows[group, :front.shape[1]] = np.where(taken, np.take_along_axis(got_rows, front, axis=1), -1)
    wanted = np.minimum(k, num_items - n_excluded)
    short = np.flatnonzero((rows >= 0).sum(axis=1) < wanted)
    if len(short):
        sub_exclude = exclude[short] if exclude is not None else None
        scores[short], rows[short] = numpy_top_k(queries[short], items, k, sub_exclude)
    return scores, rows
