"""The towers a config can name (``--user-tower``, ``--item-tower``) and how each is built."""
from __future__ import annotations

from cbns.data.features import FeatureTable
from cbns.errors import CbnsError
from cbns.towers.base import Tower
from cbns.towers.features_tower import FeaturesTower
from cbns.towers.gru_tower import GruTower
from cbns.towers.id_tower import IdTower
from cbns.towers.pooled_tower import PooledHistoryTower

#: ``id``: one vector per user; ``pooled``: YouTubeDNN mean of history items (+ user attributes);
#: ``gru``: GRU4Rec over the history; ``features``: id + user attributes through an MLP.
USER_TOWERS = ("id", "pooled", "gru", "features")
#: ``id``: one vector per item; ``features``: id + item attributes through an MLP.
ITEM_TOWERS = ("id", "features")
#: The user towers that read the user's history (their ``needs_history`` is True): a user's vector
#: depends on the moment it is computed for, and the exported one is as of the test.
HISTORY_USER_TOWERS = ("pooled", "gru")


def build_user_tower(config, num_users: int, num_items: int, features: FeatureTable | None) -> Tower:
    """The user tower ``config.user_tower`` names (``config`` is a :class:`cbns.config.TrainConfig`)."""
    kind, dim = config.user_tower, config.dim
    if kind == "id":
        return IdTower(num_users, dim, config.init_std)
    if kind == "pooled":
        return PooledHistoryTower(num_items, dim, features, config.pool_decay, config.hidden_dim,
                                  config.dropout, config.init_std)
    if kind == "gru":
        return GruTower(num_items, dim, config.hidden_dim, config.dropout, config.init_std)
    if kind == "features":
        return FeaturesTower(num_users, dim, _needed(features, "user"), config.hidden_dim, config.dropout,
                             config.init_std)
    raise AssertionError(f"unhandled user tower {kind}")  # config.validate() rules this out


def build_item_tower(config, num_items: int, features: FeatureTable | None) -> Tower:
    """The item tower ``config.item_tower`` names."""
    if config.item_tower == "id":
        return IdTower(num_items, config.dim, config.init_std)
    if config.item_tower == "features":
        return FeaturesTower(num_items, config.dim, _needed(features, "item"), config.hidden_dim, config.dropout,
                             config.init_std)
    raise AssertionError(f"unhandled item tower {config.item_tower}")


def _needed(features: FeatureTable | None, side: str) -> FeatureTable:
    if features is None or not len(features):
        raise CbnsError(f"--{side}-tower features: the dataset has no {side} attributes; give a table "
                        f"with --{side}-features FILE (or use a dataset that has them)")
    return features
