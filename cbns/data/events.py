"""An unsplit log of timed interactions, what time-aware loaders return before the split."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cbns.data.features import FeatureTable
from cbns.data.row_rules import RowCounts


@dataclass
class EventLog:
    """Every (user, item, time) event of a dataset, with contiguous internal ids.

    Attributes:
        name: a label for reports.
        users, items: ``[N]`` int64 internal ids in ``[0, num_users)`` and ``[0, num_items)``.
        times: ``[N]`` float64 event times (unix seconds, or the position in a user's sequence).
            Equal times are simultaneous: no event counts as "before" another with the same time.
        user_ids, item_ids: original id of each internal id, or ``None`` when they coincide.
        user_features, item_features: attribute tables, or ``None``.
        rows: what the reader kept and dropped (:mod:`cbns.data.row_rules`), or ``None``.
    """

    name: str
    num_users: int
    num_items: int
    users: np.ndarray
    items: np.ndarray
    times: np.ndarray
    user_ids: np.ndarray | None = None
    item_ids: np.ndarray | None = None
    user_features: FeatureTable | None = None
    item_features: FeatureTable | None = None
    rows: RowCounts | None = None

    def __len__(self) -> int:
        return len(self.users)

    def pairs(self) -> np.ndarray:
        """``[N, 2]`` int64 (user, item)."""
        return np.stack([self.users, self.items], axis=1)
