"""Datasets: readers for each format, splits, the assembled :class:`Interactions`, bundled data."""
from cbns.data.holdout import carve_validation
from cbns.data.interactions import Interactions
from cbns.data.loading import load_data, load_dataset

__all__ = ["Interactions", "carve_validation", "load_data", "load_dataset"]
