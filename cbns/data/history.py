"""Users' time-ordered histories, and the history context a user tower sees at each moment.

A history is passed to towers as two tensors (the keys of the context mapping):

    ``history``         ``[B, L]`` int64 item ids, oldest first, right-padded with 0
    ``history_length``  ``[B]`` int64, how many leading entries of the row are real (0..L)

Towers must ignore the padded entries (their value 0 is a real item id).

Training (:meth:`HistoryContext.for_pairs`): the history of train pair k is the user's train
events strictly before k's time (never the target, nothing later, nothing simultaneous), the
newest ``max_len`` of them. Evaluation (:meth:`HistoryContext.for_users`): on ``valid`` every
train event of the user, on ``test`` every train and valid event (again the newest ``max_len``).
Without event times the file order stands in for time.
"""
from __future__ import annotations

import numpy as np
import torch

from cbns.data.interactions import Interactions

HISTORY = "history"
HISTORY_LENGTH = "history_length"


class UserHistories:
    """The events of each user sorted by time (ties in input order), as one CSR over users.

    Args:
        users, items: ``[N]`` int64 events; times: ``[N]`` their times.
        num_users: size of the user id space.
    """

    def __init__(self, users: np.ndarray, items: np.ndarray, times: np.ndarray, num_users: int):
        n = len(users)
        order = np.lexsort((np.arange(n), times, users))
        sorted_users, sorted_times = users[order], times[order]
        self.items = torch.from_numpy(items[order].astype(np.int64))
        counts = np.bincount(users, minlength=num_users)
        self.indptr = torch.from_numpy(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
        # For event k: one past the last sorted event of its user strictly earlier in time, i.e.
        # the start of the group of events sharing k's (user, time).
        first_of_group = np.ones(n, dtype=bool)
        first_of_group[1:] = (sorted_users[1:] != sorted_users[:-1]) | (sorted_times[1:] != sorted_times[:-1])
        group_start = np.maximum.accumulate(np.where(first_of_group, np.arange(n), 0))
        before = np.empty(n, dtype=np.int64)
        before[order] = group_start
        self.before_end = torch.from_numpy(before)
        self.user_of = torch.from_numpy(users.astype(np.int64))

    def before(self, index: torch.Tensor, max_len: int) -> dict[str, torch.Tensor]:
        """The history of input events ``index [B]``: the user's events strictly earlier."""
        return self.window(self.indptr[self.user_of[index]], self.before_end[index], max_len)

    def latest(self, max_len: int) -> dict[str, torch.Tensor]:
        """``[num_users, L]``: every user's newest ``max_len`` events."""
        return self.window(self.indptr[:-1], self.indptr[1:], max_len)

    def window(self, starts: torch.Tensor, ends: torch.Tensor, max_len: int) -> dict[str, torch.Tensor]:
        """Rows ``items[max(start, end - max_len):end]``, right-padded to ``max_len``: the width is the
        same for every batch, so a step's shapes do not depend on its users (a captured or
        compiled step sees one shape)."""
        starts = torch.maximum(starts, ends - max_len)
        lengths = ends - starts
        width = max(1, max_len)
        offsets = starts[:, None] + torch.arange(width)
        real = torch.arange(width) < lengths[:, None]
        last = max(len(self.items) - 1, 0)
        history = self.items[offsets.clamp(max=last)] if len(self.items) else offsets.new_zeros(offsets.shape)
        return {HISTORY: history.masked_fill(~real, 0), HISTORY_LENGTH: lengths}


class HistoryContext:
    """Builds the user tower's context from a dataset (see the module docstring)."""

    def __init__(self, data: Interactions, max_len: int = 50):
        self.data, self.max_len = data, max_len
        self.train = _histories(data, ("train",))
        self._at = {}

    def for_pairs(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """Context of the train pairs ``index [B]`` (rows of ``data.train``)."""
        return self.train.before(index, self.max_len)

    def for_users(self, part: str) -> dict[str, torch.Tensor]:
        """``[num_users, L]`` context for evaluating ``part`` (``valid`` or ``test``); cached."""
        if part not in self._at:
            seen = ("train",) if part == "valid" else ("train", "valid")
            self._at[part] = _histories(self.data, seen).latest(self.max_len)
        return self._at[part]


def _histories(data: Interactions, parts: tuple[str, ...]) -> UserHistories:
    """The events of ``parts``; without timestamps, file order (parts in the given order)."""
    pairs = np.concatenate([getattr(data, p) for p in parts])
    if all(data.times(p) is not None for p in parts):
        times = np.concatenate([data.times(p) for p in parts]).astype(np.float64)
    else:
        times = np.arange(len(pairs), dtype=np.float64)
    return UserHistories(pairs[:, 0], pairs[:, 1], times, data.num_users)
