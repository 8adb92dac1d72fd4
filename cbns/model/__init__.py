"""The two-tower model, its towers, and the per-item score terms (learned bias, popularity prior)."""
from cbns.model.two_tower import TwoTower

__all__ = ["TwoTower"]
