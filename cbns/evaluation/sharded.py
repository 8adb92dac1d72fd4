"""Full-ranking evaluation sharded over users, the metrics of a single-process evaluation.

The users with relevant items are cut into the chunks :func:`cbns.evaluation.ranking.full_ranking` scores at
once; rank r scores chunks r, r + W, r + 2W, ... and the per-metric sums are added over ranks.
Each chunk is the same set of users, summed in the same order, as in a single process, so the
result differs from :func:`cbns.evaluation.ranking.evaluate_split` only by the order in which the chunk sums
are added in float64 (a few ulps). Every rank returns the same metrics, so early stopping decides
the same everywhere.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from cbns.data.interactions import Interactions
from cbns.distributed.context import DistContext
from cbns.evaluation.metrics import METRIC_NAMES
from cbns.evaluation.ranking import evaluate_split, full_ranking, ranking_matrices, scoring_vectors
from cbns.model.two_tower import TwoTower
from cbns.ranking.topk import ITEM_BLOCK, default_chunk, padded_width


@torch.no_grad()
def evaluate_sharded(model: TwoTower, data: Interactions, part: str, ks: Sequence[int], ctx: DistContext,
                     chunk_size: int | None = None,
                     user_context: Mapping[str, torch.Tensor] | None = None,
                     users: np.ndarray | None = None) -> dict[str, float]:
    """Metrics of ``part`` (``valid`` or ``test``), each rank scoring its share of the users.

    ``chunk_size`` defaults to the single-process chunk, which is what keeps the sums aligned.
    ``user_context`` and ``users`` (a sample to average over; the same on every rank) are as in
    :func:`cbns.evaluation.ranking.evaluate_split`. In a single process this is
    :func:`cbns.evaluation.ranking.evaluate_split`.
    """
    if not ctx.distributed:
        return evaluate_split(model, data, part, ks, user_context=user_context, users=users)
    relevant, exclude = ranking_matrices(data, part)
    user_emb, items, column = (x.cpu() if x is not None else None for x in scoring_vectors(model, data, user_context))
    chunk = chunk_size or default_chunk(padded_width(min(data.num_items, ITEM_BLOCK)))
    rows = np.flatnonzero(np.diff(relevant.indptr) > 0)
    if users is not None:
        rows = np.intersect1d(rows, np.asarray(users, dtype=np.int64))
    mine = np.concatenate([rows[start:start + chunk]
                           for start in range(ctx.rank * chunk, len(rows), ctx.world_size * chunk)] or [rows[:0]])
    names = [f"{m}@{k}" for k in ks for m in METRIC_NAMES]
    local = [0.0] * len(names)
    if len(mine):
        means = full_ranking(user_emb, items, _rows_only(relevant, mine), exclude, ks, chunk_size=chunk,
                             item_bias=column)
        local = [means[name] * len(mine) for name in names]
    totals = ctx.sum(local)
    return {name: total / max(len(rows), 1) for name, total in zip(names, totals)}


def _rows_only(matrix: sp.csr_matrix, rows: np.ndarray) -> sp.csr_matrix:
    """``matrix`` with every row outside ``rows`` emptied (same shape, no stored zeros)."""
    keep = np.zeros(matrix.shape[0], dtype=bool)
    keep[rows] = True
    coo = matrix.tocoo()
    sel = keep[coo.row]
    return sp.csr_matrix((coo.data[sel], (coo.row[sel], coo.col[sel])), shape=matrix.shape)
