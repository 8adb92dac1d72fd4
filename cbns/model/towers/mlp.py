"""The small feed-forward block the feature and history towers end in."""
from __future__ import annotations

from torch import nn


def mlp(in_dim: int, hidden: int, out_dim: int, dropout: float = 0.0) -> nn.Sequential:
    """``Linear(in_dim, hidden) -> ReLU -> Dropout -> Linear(hidden, out_dim)``: ``[B, in] -> [B, out]``."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim))
