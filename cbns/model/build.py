"""The two-tower model a :class:`cbns.config.TrainConfig` describes, its towers found by name."""
from __future__ import annotations

import torch
from torch import nn

from cbns.data.features import FeatureTable
from cbns.model.two_tower import TwoTower
from cbns.registry import ITEM_TOWERS, USER_TOWERS


def build_model(config, num_users: int, num_items: int, user_features: FeatureTable | None = None,
                item_features: FeatureTable | None = None, user_tower: nn.Module | None = None,
                item_tower: nn.Module | None = None) -> TwoTower:
    """The towers ``config.model.user_tower`` and ``config.model.item_tower`` of width ``config.model.dim``, seeded
    from ``config.training.seed``; the feature towers read the attribute tables given here. A tower given
    as ``user_tower`` / ``item_tower`` (built by the caller) is used as it is instead."""
    torch.manual_seed(config.training.seed)
    user = user_tower if user_tower is not None else \
        USER_TOWERS.get(config.model.user_tower).from_config(config.model, "user", num_users, num_items, user_features)
    item = item_tower if item_tower is not None else \
        ITEM_TOWERS.get(config.model.item_tower).from_config(config.model, "item", num_items, num_items, item_features)
    return TwoTower(user, item, normalize=config.model.normalize, num_items=num_items, item_bias=config.model.item_bias,
                    sparse_updates=config.training.sparse_updates)


def reads_history(user_tower: str) -> bool:
    """Whether the user tower named ``user_tower`` reads the user's history (its vector then
    depends on the moment it is computed for; the exported one is as of the test)."""
    return USER_TOWERS.get(user_tower).needs_history
