"""Datasets: loaders for each format, splits, item frequencies, bundled data."""
from cbns.data.interactions import Interactions
from cbns.data.loading import load_dataset
from cbns.data.split import carve_validation

__all__ = ["Interactions", "load_dataset", "carve_validation"]
