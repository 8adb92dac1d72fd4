"""Encoders for users and items. Every tower is a :class:`Tower`: ids (+ context) -> ``[B, D]``.

Importing this package registers the built-in towers in :data:`cbns.registry.USER_TOWERS` and
``ITEM_TOWERS``, in the order of the imports below, which is the order the flags list them (so
the imports are kept in that order, not sorted).
"""
# ruff: noqa: I001
from cbns.model.towers.base import Tower
from cbns.model.towers.id_tower import IdTower
from cbns.model.towers.pooled_tower import PooledHistoryTower
from cbns.model.towers.gru_tower import GruTower
from cbns.model.towers.features_tower import FeaturesTower

__all__ = ["Tower", "FeaturesTower", "GruTower", "IdTower", "PooledHistoryTower"]
