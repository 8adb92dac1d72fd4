"""The ID tower: one learned vector per id (matrix factorisation)."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from cbns.model.towers.base import Tower
from cbns.registry import ITEM_TOWERS, USER_TOWERS


@USER_TOWERS.register("id")
@ITEM_TOWERS.register("id")
class IdTower(Tower):
    """``f(id) = E[id]`` with ``E`` a ``[num, D]`` embedding table, initialised N(0, init_std^2)."""

    summary = "one learned vector per id"
    #: An ID table: what ``item_side auto`` trains with the joint side (cbns.training.recipe).
    id_table = True

    @classmethod
    def from_config(cls, model, side, num, num_items, features=None) -> IdTower:
        return cls(num, model.dim, model.init_std)

    def __init__(self, num: int, dim: int, init_std: float = 0.1):
        super().__init__()
        self.out_dim = dim
        self.embedding = nn.Embedding(num, dim)
        nn.init.normal_(self.embedding.weight, std=init_std)

    def forward(self, ids: torch.Tensor, context: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        return self.embedding(ids)

    @torch.no_grad()
    def encode_all(self, num: int, context: Mapping[str, torch.Tensor] | None = None,
                   chunk: int = 65536) -> torch.Tensor:
        """The table itself, ``[num, D]``, detached but not copied (a catalog of millions of rows
        would double in memory): callers that keep or modify it copy it
        (:meth:`cbns.model.two_tower.TwoTower.all_items` does)."""
        return self.embedding.weight[:num].detach()
