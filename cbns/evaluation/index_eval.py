"""How much an approximate item index costs in ranking quality, and what it buys in speed.

For each evaluated part (valid, test) and every user with held-out items, the top-``Kmax`` list is
computed twice with the same exclusions as :func:`cbns.evaluation.ranking.evaluate_split` (train items for
valid; train and valid items for test): exactly, and through the index. Reported per part:

* the ranking metrics of both lists (:func:`cbns.evaluation.metrics.metrics_from_hits`);
* index recall@K = |index top-K & exact top-K| / |exact top-K|, averaged over users;
* queries per second of each path, timed over the whole part in one batched call.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from cbns.data.interactions import Interactions
from cbns.evaluation.metrics import metrics_from_hits
from cbns.evaluation.ranking import ranking_matrices, ranking_vectors
from cbns.ranking.filtered_search import index_top_k
from cbns.ranking.index_spec import IndexSpec
from cbns.ranking.item_index import ItemIndex
from cbns.ranking.row_membership import contains
from cbns.ranking.topk import exact_top_k


@dataclass
class IndexReport:
    """Per part: ``exact`` and ``index`` metrics, ``index_recall`` per K, and queries per second."""

    spec: str
    exact: dict[str, dict[str, float]]
    index: dict[str, dict[str, float]]
    index_recall: dict[str, dict[str, float]]
    qps: dict[str, dict[str, float]]

    def to_dict(self) -> dict:
        return {"index": self.spec, "exact_metrics": self.exact, "index_metrics": self.index,
                "index_recall": self.index_recall, "queries_per_second": self.qps}


def evaluate_index(index: ItemIndex, users: np.ndarray, items: np.ndarray, data: Interactions,
                   ks: Sequence[int], parts: Sequence[str] = ("valid", "test")) -> IndexReport:
    """Compare ``index`` with exact scoring on ``data``'s valid (if carved) and test parts.

    Args:
        index: an index over ``items``.
        users: ``[U, D]`` float32; items: ``[I, D]`` float32, the run's exported embeddings.
        data: the run's dataset with its validation split (:func:`cbns.data.loading.load_data`).
        ks: metric cut-offs; lists of ``max(ks)`` items are retrieved.
        parts: the parts to evaluate (``valid`` is skipped when not carved). A history user tower
            exports its vectors as of the test, so only ``test`` is meaningful for it.
    """
    kmax = min(max(ks), len(items))
    train = data.matrix("train")
    excludes = {"valid": train} if len(data.valid) and "valid" in parts else {}
    if "test" in parts:
        excludes["test"] = (train + data.matrix("valid")).tocsr() if len(data.valid) else train
    report = IndexReport(index.spec.describe(), {}, {}, {}, {})
    for part, exclude in excludes.items():
        relevant = data.matrix(part)
        query = np.flatnonzero(np.diff(relevant.indptr) > 0)
        vectors, excluded = users[query], exclude[query]
        start = time.perf_counter()
        _, exact_rows = exact_top_k(vectors, items, kmax, excluded)
        exact_seconds = time.perf_counter() - start
        start = time.perf_counter()
        _, index_rows = index_top_k(index, vectors, items, kmax, excluded)
        index_seconds = time.perf_counter() - start
        num_relevant = torch.from_numpy(np.diff(relevant.indptr)[query])
        report.exact[part] = _metrics(contains(relevant, query, exact_rows), num_relevant, ks)
        report.index[part] = _metrics(contains(relevant, query, index_rows), num_relevant, ks)
        report.index_recall[part] = _overlap(exact_rows, index_rows, len(items), ks)
        report.qps[part] = {"exact": len(query) / exact_seconds, "index": len(query) / index_seconds}
    return report


def _metrics(hits: np.ndarray, num_relevant: torch.Tensor, ks: Sequence[int]) -> dict[str, float]:
    per_user = metrics_from_hits(torch.from_numpy(hits), num_relevant, ks)
    return {name: float(values.mean()) for name, values in per_user.items()}


def _overlap(exact_rows: np.ndarray, index_rows: np.ndarray, num_items: int, ks: Sequence[int]) -> dict[str, float]:
    """``{"@K": mean |index top-K & exact top-K| / |exact top-K|}`` (padding slots not counted)."""
    out = {}
    for k in ks:
        truth = exact_rows[:, :k]
        valid = truth >= 0
        indptr = np.concatenate([[0], np.cumsum(valid.sum(axis=1))])
        truth_csr = sp.csr_matrix((np.ones(int(valid.sum()), dtype=np.float32), truth[valid], indptr),
                                  shape=(len(truth), num_items))
        found = contains(truth_csr, np.arange(len(truth)), index_rows[:, :k]).sum(axis=1)
        out[f"@{k}"] = float(np.mean(found / np.maximum(valid.sum(axis=1), 1)))
    return out


def validate_with_index(model, data: Interactions, part: str, ks: Sequence[int], spec: IndexSpec,
                        users: np.ndarray | None = None, user_context=None,
                        compare_exact: bool = False) -> tuple[dict[str, float], dict]:
    """Ranking metrics of ``part`` with the top-``Kmax`` lists taken from an index over ``model``'s
    item vectors, built afresh (``eval_index``: validation on catalogs too big to rank exactly
    every epoch), and what it cost.

    The scores are the ranking scores (the per-item column folded in,
    :meth:`cbns.model.two_tower.TwoTower.ranking_vectors`), the exclusions those of
    :func:`cbns.evaluation.ranking.evaluate_split`, the users ``users`` (a sample) or every user
    with held-out items. Returns ``(metrics, info)``: ``info`` has the index, its build and search
    seconds and, with ``compare_exact``, the index recall@K against the exact top-K of the same
    users (``recall_vs_exact``) and the exact lists' metrics (``exact_metrics``).
    """
    relevant, exclude = ranking_matrices(data, part)
    query = np.flatnonzero(np.diff(relevant.indptr) > 0)
    if users is not None:
        query = np.intersect1d(query, np.asarray(users, dtype=np.int64))
    user_emb, item_emb = ranking_vectors(model, data, user_context)
    items = item_emb.cpu().numpy()
    vectors, excluded = user_emb.cpu().numpy()[query], exclude[query]
    kmax = min(max(ks), len(items))
    start = time.perf_counter()
    index = ItemIndex.build(items, spec)
    built = time.perf_counter()
    _, rows = index_top_k(index, vectors, items, kmax, excluded)
    num_relevant = torch.from_numpy(np.diff(relevant.indptr)[query])
    info = {"index": index.spec.describe(), "users": len(query), "build_seconds": round(built - start, 3),
            "search_seconds": round(time.perf_counter() - built, 3)}
    metrics = _metrics(contains(relevant, query, rows), num_relevant, ks)
    if compare_exact:
        _, exact_rows = exact_top_k(vectors, items, kmax, excluded)
        info["recall_vs_exact"] = _overlap(exact_rows, rows, len(items), ks)
        info["exact_metrics"] = _metrics(contains(relevant, query, exact_rows), num_relevant, ks)
    return metrics, info
