"""Which rows of a source become interactions, and how many each rule dropped.

Two rules, applied in this order before any split:

1. **Rating threshold** (``min_rating`` R, sources with ratings only): a row rated below R is
   dropped. Without the option every row is a positive, whatever its rating; the summary line
   says so, with the range of ratings seen.
2. **Duplicates**: a (user, item) pair is one interaction however many rows hold it. The first
   row is kept (the earliest by time where the source has times, else the first in the file) and
   the others are dropped and counted. In a LightGCN directory or a train/test table pair each
   file is deduplicated on its own (a pair in both is an error, not a duplicate).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RowCounts:
    """What happened to the rows of a source.

    Attributes:
        read: rows (lines with pairs, for LightGCN text: (user, item) pairs) read.
        below_rating: rows dropped by ``min_rating``.
        duplicates: rows dropped as repeats of a (user, item) pair already kept.
        min_rating: the threshold applied, or None.
        rating_range: ``(lowest, highest)`` rating seen, when the source has ratings.
        unit: what was counted: ``rows`` of a table, ``pairs`` of a LightGCN file.
    """

    read: int
    below_rating: int = 0
    duplicates: int = 0
    min_rating: float | None = None
    rating_range: tuple[float, float] | None = None
    unit: str = "rows"

    @property
    def kept(self) -> int:
        return self.read - self.below_rating - self.duplicates

    def __add__(self, other: RowCounts) -> RowCounts:
        ranges = [r for r in (self.rating_range, other.rating_range) if r is not None]
        joined = (min(r[0] for r in ranges), max(r[1] for r in ranges)) if ranges else None
        return RowCounts(self.read + other.read, self.below_rating + other.below_rating,
                         self.duplicates + other.duplicates, self.min_rating, joined, self.unit)

    def describe(self) -> str:
        """``100,000 rows read: 55,375 kept, 44,625 rated below 4 dropped, 0 duplicate (user, item) rows
        dropped``."""
        parts = [f"{self.kept:,} kept"]
        if self.min_rating is not None:
            parts.append(f"{self.below_rating:,} rated below {self.min_rating:g} dropped")
        parts.append(f"{self.duplicates:,} duplicate (user, item) {self.unit} dropped")
        text = f"{self.read:,} {self.unit} read: " + ", ".join(parts)
        if self.rating_range is not None and self.min_rating is None:
            lo, hi = self.rating_range
            text += (f"; ratings {lo:g} to {hi:g} and no min_rating: every row is a positive "
                     f"(min_rating R keeps R and up)")
        return text

    def to_dict(self) -> dict:
        return {"read": self.read, "kept": self.kept, "below_min_rating": self.below_rating,
                "duplicates": self.duplicates, "min_rating": self.min_rating,
                "rating_range": list(self.rating_range) if self.rating_range is not None else None}


def rating_rule(ratings: np.ndarray | None, min_rating: float | None, rows: int) -> tuple[np.ndarray | None, RowCounts]:
    """``(keep [rows] bool, or None when every row stays; counts)`` of rule 1 for ``ratings [rows]``
    (None: the source has no ratings)."""
    n = rows
    if ratings is None or n == 0:
        return None, RowCounts(n, min_rating=min_rating)
    counts = RowCounts(n, min_rating=min_rating, rating_range=(float(ratings.min()), float(ratings.max())))
    if min_rating is None:
        return None, counts
    keep = ratings >= min_rating
    counts.below_rating = int(n - keep.sum())
    return keep, counts


def pair_keys(users: np.ndarray, items: np.ndarray, num_items: int) -> np.ndarray:
    """``[N]`` int64 ``user * num_items + item``: one number per pair, ordered as the pairs are
    lexicographically (users and items below 2^31, so it cannot overflow)."""
    return users.astype(np.int64) * np.int64(num_items) + items


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique(values)`` for an int64 array, by one sort (numpy 2's hashing ``unique`` took
    3 s for 2M keys here; the sort takes a tenth of that)."""
    values = np.sort(values)
    return values[np.concatenate([[True], values[1:] != values[:-1]])] if len(values) else values


def unique_pairs(pairs: np.ndarray, num_items: int) -> np.ndarray:
    """The distinct rows of ``pairs [N, 2]`` in sorted order: ``np.unique(pairs, axis=0)``, through
    one int64 key per pair."""
    if not len(pairs):
        return pairs
    keys = sorted_unique(pair_keys(pairs[:, 0], pairs[:, 1], num_items))
    return np.stack([keys // num_items, keys % num_items], axis=1)


def first_of_each_pair(users: np.ndarray, items: np.ndarray, num_items: int) -> np.ndarray:
    """``[N]`` bool: True for the first row of each (user, item) pair, in the given row order."""
    keep = np.zeros(len(users), dtype=bool)
    if len(users):
        keys = pair_keys(users, items, num_items)
        order = np.argsort(keys, kind="stable")  # equal keys keep their row order: the first comes first
        keys = keys[order]
        keep[order[np.concatenate([[True], keys[1:] != keys[:-1]])]] = True
    return keep
