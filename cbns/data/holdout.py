"""Seeded per-user holdout splits: validation carved from train, test carved from a single table."""
from __future__ import annotations

import numpy as np


def holdout_mask(pairs: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """``[N]`` bool: True for the pairs held out, ``round(fraction * n_u)`` of each user's ``n_u``.

    At least one pair of every user always stays in (is False), so a user is never left without
    training items. The choice is uniform within a user and reproducible from ``seed``.
    """
    if len(pairs) == 0:
        return np.zeros(0, dtype=bool)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pairs))
    users = pairs[order, 0]
    order = order[np.argsort(users, kind="stable")]
    users = pairs[order, 0]
    counts = np.bincount(users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(pairs)) - starts[users]
    take = np.minimum(np.rint(counts * fraction).astype(np.int64), np.maximum(counts - 1, 0))
    mask = np.zeros(len(pairs), dtype=bool)
    mask[order] = rank < take[users]
    return mask


def carve_validation(data, fraction: float = 0.1, seed: int = 0):
    """Move ``fraction`` of each user's train pairs into ``data.valid`` (in place; returns data).

    Event times, when the data has them, move with their pairs.
    """
    mask = holdout_mask(data.train, fraction, seed)
    data.valid = data.train[mask]
    data.train = data.train[~mask]
    if data.train_time is not None:
        data.valid_time = data.train_time[mask]
        data.train_time = data.train_time[~mask]
    return data
