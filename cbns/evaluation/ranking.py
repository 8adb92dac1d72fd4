"""Full-ranking evaluation: every item scored for every user, with the masking the protocol asks for.

The protocol (the published anchors follow it): score every item for every user with held-out
items, set the items the user may not be recommended (train; train and valid when testing) to the
lowest score, take the top K, and average the metrics of :mod:`cbns.evaluation.metrics` over those
users. Ranking goes through :func:`cbns.ranking.topk.iter_top_k`, the same exact top-K that
serving uses.

Everything per block of users stays on the device the vectors are on: the scores, the top-K, the
hits (held-out items as sorted keys, :class:`cbns.ranking.row_membership.RowKeys`, copied to the
device block by block) and the per-metric sums. The device is read once, for the totals, when
every block is done (:func:`ranking_totals`), so on a GPU the blocks queue up without waiting.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from cbns.data.interactions import Interactions
from cbns.evaluation.metrics import METRIC_NAMES, metrics_from_hits
from cbns.model.two_tower import TwoTower
from cbns.ranking.row_membership import RowKeys
from cbns.ranking.topk import iter_top_k, iter_top_k_columns


@torch.no_grad()
def evaluate_split(model: TwoTower, data: Interactions, part: str, ks: Sequence[int],
                   user_context: Mapping[str, torch.Tensor] | None = None,
                   users: np.ndarray | None = None) -> dict[str, float]:
    """Full-ranking metrics on ``valid`` (train items masked) or ``test`` (train and valid masked).

    ``user_context`` holds one row per user for towers that need one (the histories the user
    tower may see when ``part`` is scored: :meth:`cbns.data.history.HistoryContext.for_users`).
    ``users``: the users to average over (a sample, :func:`cbns.evaluation.user_sample.sample_users`);
    default every user with held-out items of ``part``.
    """
    relevant, exclude = ranking_matrices(data, part)
    user_emb, item_emb, column = scoring_vectors(model, data, user_context)
    return full_ranking(user_emb, item_emb, relevant, exclude, ks, rows=users, item_bias=column)


@torch.no_grad()
def scoring_vectors(model: TwoTower, data: Interactions, user_context: Mapping[str, torch.Tensor] | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(users [U, D], items [I, D], column [I] or None)`` in eval mode: the ranking score is
    ``user . item + column[item]`` (:meth:`cbns.model.two_tower.TwoTower.item_column`). Unlike
    :func:`ranking_vectors` nothing is copied to fold the column in: the ranking does that one item
    block at a time (:func:`cbns.ranking.topk.iter_top_k`)."""
    model.eval()
    users = model.all_users(data.num_users, user_context)
    items = model.all_items(data.num_items)
    return users, items, model.item_column() if model.has_item_column else None


@torch.no_grad()
def ranking_vectors(model: TwoTower, data: Interactions,
                    user_context: Mapping[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(users [U, D'], items [I, D'])`` in eval mode, the per-item ranking term folded in
    (:meth:`cbns.model.two_tower.TwoTower.ranking_vectors`), so that ``user . item`` ranks."""
    model.eval()
    users = model.all_users(data.num_users, user_context)
    items = model.all_items(data.num_items)
    return model.ranking_vectors(users, items)


def ranking_matrices(data: Interactions, part: str) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """``(relevant, exclude)``, both ``[num_users, num_items]`` CSR: the items of ``part`` to find,
    and the items never ranked (train; train and valid for ``test``)."""
    if part not in ("valid", "test"):
        raise ValueError(f"part must be valid or test, got {part!r}")
    exclude = data.matrix("train")
    if part == "test" and len(data.valid):
        exclude = (exclude + data.matrix("valid")).tocsr()
    return data.matrix(part), exclude


@torch.no_grad()
def full_ranking(user_emb: torch.Tensor, item_emb: torch.Tensor, relevant: sp.csr_matrix,
                 exclude: sp.csr_matrix, ks: Sequence[int] = (20, 50),
                 chunk_size: int | None = None, rows: np.ndarray | None = None,
                 item_bias: torch.Tensor | None = None) -> dict[str, float]:
    """Exact full-ranking metrics, averaged over users with at least one relevant item.

    Args:
        user_emb: ``[U, D]`` user vectors; item_emb: ``[I, D]`` item vectors (score = dot).
        relevant: ``[U, I]`` CSR, the held-out items to find (test or validation).
        exclude: ``[U, I]`` CSR, items never ranked for the user (training, and validation when
            testing).
        ks: the cut-offs.
        chunk_size: users scored at once; by default :func:`cbns.ranking.topk.default_chunk`.
        rows: the users to average over (those of them with a relevant item); default every
            user with one.
        item_bias: ``[I]`` added to each item's score (see :func:`cbns.ranking.topk.iter_top_k`).
    """
    users = ranked_users(relevant, rows)
    totals = ranking_totals(user_emb, item_emb, relevant, exclude, ks, users, chunk_size, item_bias)
    return dict(zip(metric_names(ks), (t / max(len(users), 1) for t in totals.tolist())))


def metric_names(ks: Sequence[int]) -> list[str]:
    """``recall@K, ndcg@K, hit@K, precision@K`` for each K of ``ks``: the order of :func:`ranking_totals`."""
    return [f"{m}@{k}" for k in ks for m in METRIC_NAMES]


def ranked_users(relevant: sp.csr_matrix, rows: np.ndarray | None = None) -> np.ndarray:
    """``[n]`` the users with at least one relevant item (of ``rows``, when given), ascending."""
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    if rows is not None:
        users = np.intersect1d(users, np.asarray(rows, dtype=np.int64))
    return users


@torch.no_grad()
def ranking_totals(user_emb: torch.Tensor, item_emb: torch.Tensor, relevant: sp.csr_matrix,
                   exclude: sp.csr_matrix, ks: Sequence[int], users: np.ndarray, chunk_size: int | None = None,
                   item_bias: torch.Tensor | None = None) -> torch.Tensor:
    """``[len(metric_names(ks))]`` float64 sums of each metric over ``users`` (each with a relevant
    item), on the device of ``user_emb``: nothing is read back, the caller reads the totals once.
    Arguments as in :func:`full_ranking`."""
    kmax = min(max(ks), item_emb.shape[0])
    names = metric_names(ks)
    per_user = _relevant_counts(relevant, users, user_emb.device)
    found = RowKeys(relevant, users, relevant.shape[1], user_emb.device)
    totals = torch.zeros(len(names), dtype=torch.float64, device=user_emb.device)
    start = 0
    for batch, _, top in iter_top_k(user_emb, item_emb, kmax, exclude, rows=users, chunk_size=chunk_size,
                                    item_bias=item_bias):
        _add_block(totals, names, found.hits(top, start), per_user[start:start + len(batch)], ks)
        start += len(batch)
    return totals


def _relevant_counts(relevant: sp.csr_matrix, users: np.ndarray, device: torch.device) -> torch.Tensor:
    """``[n]`` int64 on ``device``: the held-out items of each of ``users``. Pinned first on a GPU, so
    that the copy is asynchronous and the host does not wait for the kernels queued before it."""
    counts = torch.from_numpy(np.diff(relevant.indptr)[users])
    if torch.device(device).type == "cuda":
        counts = counts.pin_memory()
    return counts.to(device, non_blocking=True)


def _add_block(totals: torch.Tensor, names: list[str], hits: torch.Tensor, num_relevant: torch.Tensor,
               ks: Sequence[int]) -> None:
    """Add one block's per-metric sums (``hits [n, K]``, ``num_relevant [n]``) to ``totals`` in place."""
    metrics = metrics_from_hits(hits, num_relevant, ks)
    totals += torch.stack([metrics[name] for name in names]).sum(1, dtype=torch.float64)


@torch.no_grad()
def full_ranking_columns(user_emb: torch.Tensor, item_emb: torch.Tensor, relevant: sp.csr_matrix,
                         exclude: sp.csr_matrix, columns: Sequence[torch.Tensor], ks: Sequence[int] = (20, 50),
                         rows: np.ndarray | None = None, item_bias: torch.Tensor | None = None
                         ) -> list[dict[str, float]]:
    """:func:`full_ranking` under several per-item score terms at once (``item_bias + columns[c]``
    for each c), one score product per user chunk shared by all (:func:`cbns.ranking.topk.iter_top_k_columns`).
    One metrics dict per column, in order."""
    users = ranked_users(relevant, rows)
    kmax = min(max(ks), item_emb.shape[0])
    names = metric_names(ks)
    device = user_emb.device
    per_user = _relevant_counts(relevant, users, device)
    found = RowKeys(relevant, users, relevant.shape[1], device)
    totals = torch.zeros(len(columns), len(names), dtype=torch.float64, device=device)
    start = 0
    for batch, tops in iter_top_k_columns(user_emb, item_emb, kmax, columns, exclude, rows=users, item_bias=item_bias):
        counts = per_user[start:start + len(batch)]
        for total, top in zip(totals, tops):
            _add_block(total, names, found.hits(top, start), counts, ks)
        start += len(batch)
    return [dict(zip(names, (t / max(len(users), 1) for t in total))) for total in totals.tolist()]
