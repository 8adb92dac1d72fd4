"""The towers of a step behind one ``forward``: what DDP wraps to all-reduce every gradient."""
from __future__ import annotations

import torch
from torch import nn

from cbns.model.two_tower import TwoTower


class PairEncoder(nn.Module):
    """``forward(users [n], items [n], context) -> (user vectors [n, D], item vectors [n, D], item
    bias lookup or None)``: the towers, and the lookup ``ids [N] -> [N]`` of the learned item bias
    the loss reads (:meth:`cbns.model.two_tower.TwoTower.item_bias_of`), behind one ``forward``,
    which is what DDP wraps. In one process it is a plain call of the model."""

    def __init__(self, model: TwoTower):
        super().__init__()
        self.model = model

    def forward(self, users: torch.Tensor, items: torch.Tensor,
                context: dict[str, torch.Tensor] | None = None):
        bias = self.model.item_bias_of if self.model.item_bias is not None else None
        return self.model.user_embeddings(users, context), self.model.item_embeddings(items), bias
