"""The towers of a step behind one ``forward``: what DDP wraps to all-reduce every gradient."""
from __future__ import annotations

import torch
from torch import nn

from cbns.model.two_tower import TwoTower


class PairEncoder(nn.Module):
    """``forward(users [n], items [n], context) -> (user vectors [n, D], item vectors [n, D], item
    bias [num_items] or None)``: the towers, and the learned item bias the loss reads, behind one
    ``forward``, which is what DDP needs to arm its gradient all-reduce for every parameter. In one
    process it is a plain call of the model."""

    def __init__(self, model: TwoTower):
        super().__init__()
        self.model = model

    def forward(self, users: torch.Tensor, items: torch.Tensor,
                context: dict[str, torch.Tensor] | None = None):
        bias = self.model.item_bias
        return (self.model.user_embeddings(users, context), self.model.item_embeddings(items),
                bias.view(-1) if bias is not None else None)
