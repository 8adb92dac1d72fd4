"""Serving a trained run: item indexes, id maps, seen-item filtering, the Recommender."""
