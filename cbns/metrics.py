"""Top-K ranking metrics from hit matrices, and the chunked full-ranking evaluator.

For a user u with relevant set T_u and ranked list r_1, r_2, ... (training items excluded):

    Recall@K    = |{r_1..r_K} & T_u| / |T_u|
    Precision@K = |{r_1..r_K} & T_u| / K
    HitRate@K   = 1 if {r_1..r_K} & T_u is not empty else 0
    NDCG@K      = DCG@K / IDCG@K,  DCG@K = sum_{k<=K} [r_k in T_u] / log2(k + 1),
                  IDCG@K = sum_{k <= min(|T_u|, K)} 1 / log2(k + 1)

each averaged over the users with at least one relevant item.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp
import torch

from cbns.runtime import block_rows
from cbns.topk import grouped_topk, padded_width

METRIC_NAMES = ("recall", "ndcg", "hit", "precision")


def metrics_from_hits(hits: torch.Tensor, num_relevant: torch.Tensor, ks: Sequence[int]) -> dict[str, torch.Tensor]:
    """Per-user metrics from ``hits [U, Kmax]`` (bool, rank order) and ``num_relevant [U]``.

    Returns ``{"recall@K": [U] float, ...}`` for every K in ``ks`` and every metric.
    """
    hits = hits.float()
    kmax = hits.shape[1]
    discount = 1.0 / torch.log2(torch.arange(2, kmax + 2, dtype=torch.float32, device=hits.device))
    ideal = torch.cumsum(discount, 0)
    n = num_relevant.float()
    out = {}
    for k in ks:
        h = hits[:, :k]
        found = h.sum(1)
        idcg = ideal[torch.clamp(num_relevant, max=k).long() - 1]
        out[f"recall@{k}"] = found / n
        out[f"ndcg@{k}"] = (h * discount[:k]).sum(1) / idcg
        out[f"hit@{k}"] = (found > 0).float()
        out[f"precision@{k}"] = found / k
    return out


#: Score of an excluded item: the lowest finite float, so it ranks below every real score but
#: above the ``-inf`` padding of :func:`cbns.topk.grouped_topk`.
EXCLUDED = torch.finfo(torch.float32).min
#: The largest score block :func:`full_ranking` holds; less when memory is short.
BLOCK_BYTES = 256 * 2**20


def default_chunk(num_items: int) -> int:
    """Users scored at once by :func:`full_ranking` by default: a ``[chunk, num_items]`` float32
    score block of at most 256 MB and an eighth of the available memory."""
    return block_rows(4 * max(num_items, 1), BLOCK_BYTES)


@torch.no_grad()
def full_ranking(user_emb: torch.Tensor, item_emb: torch.Tensor, relevant: sp.csr_matrix,
                 exclude: sp.csr_matrix, ks: Sequence[int] = (20, 50), chunk_size: int | None = None) -> dict[str, float]:
    """Exact full-ranking metrics, averaged over users with at least one relevant item.

    Args:
        user_emb: ``[U, D]`` user vectors; item_emb: ``[I, D]`` item vectors (score = dot).
        relevant: ``[U, I]`` CSR, the held-out items to find (test or validation).
        exclude: ``[U, I]`` CSR, items never ranked for the user (training, and validation when
            testing).
        ks: the cut-offs.
        chunk_size: users scored at once; by default :func:`default_chunk`.

    One score block is allocated and reused; its columns are padded to whole groups of
    :func:`cbns.topk.grouped_topk`, which finds the top-K through group maxima.
    """
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    num_items = item_emb.shape[0]
    kmax = min(max(ks), num_items)
    width = padded_width(num_items)
    items = torch.cat([item_emb, item_emb.new_zeros(width - num_items, item_emb.shape[1])])
    chunk = chunk_size or default_chunk(width)
    block = user_emb.new_empty(min(chunk, len(users)), width)
    sums = {f"{m}@{k}": 0.0 for k in ks for m in METRIC_NAMES}
    for start in range(0, len(users), chunk):
        batch = users[start:start + chunk]
        score = torch.mm(user_emb[torch.from_numpy(batch)], items.T, out=block[:len(batch)])
        score[:, num_items:] = -torch.inf
        rows, cols = _coo(exclude, batch)
        score[rows, cols] = EXCLUDED
        top = grouped_topk(score, kmax, num_items)
        hits = _is_relevant(top, relevant, batch, num_items)
        num_relevant = torch.from_numpy(np.diff(relevant.indptr)[batch])
        for name, values in metrics_from_hits(hits, num_relevant, ks).items():
            sums[name] += float(values.sum())
    return {name: total / max(len(users), 1) for name, total in sums.items()}


def _coo(matrix: sp.csr_matrix, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Local row indices and column indices of the non-zeros of ``matrix[rows]``."""
    sub = matrix[rows]
    local = np.repeat(np.arange(len(rows)), np.diff(sub.indptr))
    return torch.from_numpy(local), torch.from_numpy(sub.indices.astype(np.int64))


def _is_relevant(top: torch.Tensor, relevant: sp.csr_matrix, rows: np.ndarray, num_items: int) -> torch.Tensor:
    """``[len(rows), K]`` bool: is ``top[r, k]`` a relevant item of user ``rows[r]``?"""
    local, cols = _coo(relevant, rows)
    keys = torch.sort(local * num_items + cols).values
    query = torch.arange(len(rows))[:, None] * num_items + top
    pos = torch.clamp(torch.searchsorted(keys, query), max=len(keys) - 1)
    return keys[pos] == query
