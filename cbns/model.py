"""The two-tower model: a user tower, an item tower, and how their outputs are compared."""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from cbns.towers.base import Tower


class TwoTower(nn.Module):
    """``s(u, i) = f_u(u) . g_v(i)``, with both embeddings L2-normalised when ``normalize``.

    With ``normalize`` the score is the cosine similarity, and :meth:`user_embeddings` and
    :meth:`item_embeddings` return unit vectors, so the exported dot product is the ranking score.
    The temperature is not applied here: it divides the logits of the training loss only (it does
    not change a ranking).
    """

    def __init__(self, user_tower: Tower, item_tower: Tower, normalize: bool = True):
        super().__init__()
        if user_tower.out_dim != item_tower.out_dim:
            raise ValueError(f"tower widths differ: user {user_tower.out_dim}, item {item_tower.out_dim}")
        self.user_tower = user_tower
        self.item_tower = item_tower
        self.normalize = normalize

    @property
    def dim(self) -> int:
        return self.user_tower.out_dim

    def user_embeddings(self, ids: torch.Tensor, context: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """``[B, D]`` user vectors."""
        return self._finish(self.user_tower(ids, context))

    def item_embeddings(self, ids: torch.Tensor, context: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """``[B, D]`` item vectors."""
        return self._finish(self.item_tower(ids, context))

    @torch.no_grad()
    def all_items(self, num_items: int, context: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """``[num_items, D]`` every item vector, for ranking and export."""
        return self._finish(self.item_tower.encode_all(num_items, context))

    @torch.no_grad()
    def all_users(self, num_users: int, context: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """``[num_users, D]`` every user vector, for ranking and export; ``context`` holds one row
        per user (e.g. the histories of :meth:`cbns.data.history.HistoryContext.for_users`)."""
        return self._finish(self.user_tower.encode_all(num_users, context))

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) if self.normalize else x
