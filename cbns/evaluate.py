"""Evaluate a model on one part of a dataset with the masking the protocol asks for."""
from __future__ import annotations

from typing import Mapping, Sequence

import scipy.sparse as sp
import torch

from cbns.data.interactions import Interactions
from cbns.metrics import full_ranking
from cbns.model import TwoTower


@torch.no_grad()
def evaluate_split(model: TwoTower, data: Interactions, part: str, ks: Sequence[int],
                   user_context: Mapping[str, torch.Tensor] | None = None) -> dict[str, float]:
    """Full-ranking metrics on ``valid`` (train items masked) or ``test`` (train and valid masked).

    ``user_context`` holds one row per user for towers that need one (the histories the user
    tower may see when ``part`` is scored: :meth:`cbns.data.history.HistoryContext.for_users`).
    """
    relevant, exclude = ranking_matrices(data, part)
    model.eval()
    users = model.all_users(data.num_users, user_context)
    items = model.all_items(data.num_items)
    users, items = model.ranking_vectors(users, items)
    return full_ranking(users, items, relevant, exclude, ks)


def ranking_matrices(data: Interactions, part: str) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """``(relevant, exclude)``, both ``[num_users, num_items]`` CSR: the items of ``part`` to find,
    and the items never ranked (train; train and valid for ``test``)."""
    if part not in ("valid", "test"):
        raise ValueError(f"part must be valid or test, got {part!r}")
    exclude = data.matrix("train")
    if part == "test" and len(data.valid):
        exclude = (exclude + data.matrix("valid")).tocsr()
    return data.matrix(part), exclude
