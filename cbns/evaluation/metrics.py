"""Top-K ranking metrics from hit matrices.

For a user u with relevant set T_u and ranked list r_1, r_2, ... (training items excluded):

    Recall@K    = |{r_1..r_K} & T_u| / |T_u|
    Precision@K = |{r_1..r_K} & T_u| / K
    HitRate@K   = 1 if {r_1..r_K} & T_u is not empty else 0
    NDCG@K      = DCG@K / IDCG@K,  DCG@K = sum_{k<=K} [r_k in T_u] / log2(k + 1),
                  IDCG@K = sum_{k <= min(|T_u|, K)} 1 / log2(k + 1)

each averaged over the users with at least one relevant item.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

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
