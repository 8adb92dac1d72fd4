"""Encoders for users and items. Every tower is a :class:`Tower`: ids (+ context) -> ``[B, D]``."""
from cbns.towers.base import Tower
from cbns.towers.id_tower import IdTower

__all__ = ["Tower", "IdTower"]
