"""Encoders for users and items. Every tower is a :class:`Tower`: ids (+ context) -> ``[B, D]``."""
from cbns.towers.base import Tower
from cbns.towers.features_tower import FeaturesTower
from cbns.towers.gru_tower import GruTower
from cbns.towers.id_tower import IdTower
from cbns.towers.pooled_tower import PooledHistoryTower

__all__ = ["Tower", "FeaturesTower", "GruTower", "IdTower", "PooledHistoryTower"]
