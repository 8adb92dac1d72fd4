"""Datasets shipped inside the package (Gowalla only: its licence allows it)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cbns.data.interactions import Interactions

BUNDLED_DIR = Path(__file__).resolve().parents[1] / "bundled"  # cbns/data/bundled
#: name -> (num_users, num_items) as published for the LightGCN split.
BUNDLED = {"gowalla": (29858, 40981)}


def load_bundled(name: str) -> Interactions:
    """The LightGCN Gowalla split, stored as int32 pairs in a compressed ``.npz``."""
    num_users, num_items = BUNDLED[name]
    with np.load(BUNDLED_DIR / f"{name}.npz") as arrays:
        train = arrays["train"].astype(np.int64)
        test = arrays["test"].astype(np.int64)
    return Interactions(name, num_users, num_items, train, test)

