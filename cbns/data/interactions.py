"""The in-memory form of a dataset: integer (user, item) pairs plus the id maps."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from cbns.data.features import FeatureTable
from cbns.data.row_rules import RowCounts


@dataclass
class Interactions:
    """A dataset split into train and test, with contiguous integer ids.

    Attributes:
        name: a label for reports (``gowalla``, a file name, ...).
        num_users, num_items: sizes of the id spaces; ids run over ``[0, num_users)`` and
            ``[0, num_items)``.
        train, test: ``[N, 2]`` int64 arrays of (user, item) pairs.
        valid: ``[Nv, 2]`` pairs carved from train for model selection (empty until
            :func:`cbns.data.holdout.carve_validation` runs).
        user_ids, item_ids: the original id of each internal id (row r holds the id of r), or
            ``None`` when the dataset's own ids already are the internal ids.
        train_time, valid_time, test_time: ``[N]`` float64 event times aligned with the rows of
            each part, or ``None`` when the source has no times (history towers then use file
            order; see :mod:`cbns.data.history`).
        user_features, item_features: attribute tables (row r = internal id r), or ``None``.
        split: how test (and validation) were held out: ``random``, ``loo`` or ``temporal``.
        rows: what the reader kept and dropped on the way (rating threshold, duplicates; see
            :mod:`cbns.data.row_rules`), or ``None`` for a dataset stored as pairs (bundled).
    """

    name: str
    num_users: int
    num_items: int
    train: np.ndarray
    test: np.ndarray
    valid: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    user_ids: np.ndarray | None = None
    item_ids: np.ndarray | None = None
    train_time: np.ndarray | None = None
    valid_time: np.ndarray | None = None
    test_time: np.ndarray | None = None
    user_features: FeatureTable | None = None
    item_features: FeatureTable | None = None
    split: str = "random"
    rows: RowCounts | None = None

    def item_counts(self) -> np.ndarray:
        """``[num_items]`` int64: how often each item occurs in train (the unigram counts)."""
        return np.bincount(self.train[:, 1], minlength=self.num_items).astype(np.int64)

    def matrix(self, part: str) -> sp.csr_matrix:
        """The ``[num_users, num_items]`` 0/1 CSR matrix of one part: train, valid or test."""
        pairs = getattr(self, part)
        data = np.ones(len(pairs), dtype=np.float32)
        m = sp.csr_matrix((data, (pairs[:, 0], pairs[:, 1])), shape=(self.num_users, self.num_items))
        m.sum_duplicates()
        m.data[:] = 1.0
        return m

    def times(self, part: str) -> np.ndarray | None:
        """``[N]`` the event times of one part (train, valid, test), or None without timestamps."""
        return getattr(self, f"{part}_time")

    def summary(self) -> str:
        """One line: sizes, pairs per part and, when known, what happened to the rows read."""
        text = (f"{self.name}: {self.num_users:,} users, {self.num_items:,} items, "
                f"{len(self.train):,} train / {len(self.valid):,} valid / {len(self.test):,} test")
        return text if self.rows is None else f"{text} pairs; {self.rows.describe()}"
