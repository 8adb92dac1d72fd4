"""Evaluate a model on one part of a dataset with the masking the protocol asks for."""
from __future__ import annotations

from typing import Sequence

import scipy.sparse as sp
import torch

from cbns.data.interactions import Interactions
from cbns.metrics import full_ranking
from cbns.model import TwoTower


@torch.no_grad()
def evaluate_split(model: TwoTower, data: Interactions, part: str, ks: Sequence[int]) -> dict[str, float]:
    """Full-ranking metrics on ``valid`` (train items masked) or ``test`` (train and valid masked)."""
    relevant, exclude = ranking_matrices(data, part)
    model.eval()
    users = model.all_users(data.num_users)
    items = model.all_items(data.num_items)
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
