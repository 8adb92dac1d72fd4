"""The pooled-history tower (YouTubeDNN): the mean of the user's history items, plus attributes."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from cbns.data.features import FeatureTable
from cbns.model.towers.base import Tower
from cbns.model.towers.feature_encoder import FeatureEncoder
from cbns.model.towers.history_input import history_input
from cbns.model.towers.mlp import mlp
from cbns.registry import USER_TOWERS


@USER_TOWERS.register("pooled")
class PooledHistoryTower(Tower):
    """``f(u, H) = MLP([sum_j w_j E[h_j] / sum_j w_j ; A(u)])``: ``[B] + history -> [B, D]``.

    ``h_1..h_n`` are the user's history items (oldest first, :mod:`cbns.data.history`), ``E`` a
    ``[num_items, D]`` table of its own, ``w_j = decay^(n - j)`` (1 = plain mean, < 1 weighs recent
    items more), and ``A(u)`` the user's attribute embeddings when a table is given. An empty
    history pools to zeros. The user id itself is not an input: a user is what they watched.
    """

    needs_history = True
    summary = "YouTubeDNN: mean of the history items + user attributes"
    options = ("max_history", "pool_decay", "hidden_dim", "dropout", "user_features", "user_feature_columns")

    @classmethod
    def from_config(cls, model, side, num, num_items, features=None) -> PooledHistoryTower:
        return cls(num_items, model.dim, features, model.pool_decay, model.hidden_dim, model.dropout,
                   model.init_std)

    def __init__(self, num_items: int, dim: int, user_table: FeatureTable | None = None, decay: float = 1.0,
                 hidden: int = 128, dropout: float = 0.0, init_std: float = 0.1):
        super().__init__()
        if not 0 < decay <= 1:
            raise ValueError(f"decay must be in (0, 1], got {decay}")
        self.out_dim, self.decay = dim, decay
        self.items = nn.Embedding(num_items, dim)
        nn.init.normal_(self.items.weight, std=init_std)
        has_table = user_table is not None and len(user_table) > 0
        self.features = FeatureEncoder(user_table, dim, init_std) if has_table else None
        width = dim + (self.features.out_dim if self.features is not None else 0)
        self.mlp = mlp(width, hidden, dim, dropout)

    def forward(self, ids: torch.Tensor, context: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        history, length = history_input(context, type(self).__name__)
        positions = torch.arange(history.shape[1], device=history.device)
        real = positions < length[:, None]
        age = (length[:, None] - 1 - positions).clamp(min=0)        # 0 for the newest item
        weight = real * torch.pow(self.decay, age)                   # a Python base: no host tensor
        pooled = (weight[..., None] * self.items(history)).sum(1) / weight.sum(1, keepdim=True).clamp(min=1e-12)
        parts = [pooled] if self.features is None else [pooled, self.features(ids)]
        return self.mlp(torch.cat(parts, dim=-1))
