"""Splitting an :class:`EventLog` into train / valid / test: random, leave-one-out, temporal.

``random``    a seeded 20% of each user's distinct items is test; validation is carved from train
              later (:func:`cbns.data.holdout.carve_validation`), as for any other dataset.
``loo``       leave-one-out by time: each user's last event is test, the one before it valid
              (users with 2 events: test only; with 1: train only). Ties in time keep file order.
``temporal``  global time cuts: the latest ``TEST_FRACTION`` of all events is test, the
              ``valid_fraction`` of all events just before them valid; events at the same time as
              a cut fall on the later side. Users or items first seen after a cut stay in.

A (user, item) pair is one interaction (:mod:`cbns.data.row_rules`): its first event in time (file
order among equal times) is kept and the repeats are dropped before the split, and counted. So a
pair never lands in two parts (the evaluator masks a user's earlier items, so a repeat could never
be retrieved), and the last event of leave-one-out is the user's last new item. ML-100k and the
Amazon sequences have no repeated pairs, so nothing is dropped there.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from cbns.config.choices import SPLITS
from cbns.data.events import EventLog
from cbns.data.holdout import holdout_mask
from cbns.data.interactions import Interactions
from cbns.data.row_rules import RowCounts, first_of_each_pair, pair_keys
from cbns.errors import CbnsError, Opt

#: Share of events held out as test by the random and temporal splits.
TEST_FRACTION = 0.2


def split_events(log: EventLog, split: str, valid_fraction: float = 0.1, seed: int = 0,
                 source: str | None = None) -> Interactions:
    """The :class:`Interactions` of ``log`` under ``split`` (see the module docstring); ``source``
    (the file, default ``log.name``) is named when the split leaves no training or test events."""
    if split not in SPLITS:
        raise CbnsError(Opt("split"), f": must be one of {', '.join(SPLITS)}, got {split!r}")
    order = np.lexsort((np.arange(len(log)), log.times, log.users))  # by user, time, file position
    first = first_of_each_pair(log.users[order], log.items[order], log.num_items)
    order = order[first]
    users, items, times = log.users[order], log.items[order], log.times[order]
    rows = dataclasses.replace(log.rows) if log.rows is not None else RowCounts(len(log))
    rows.duplicates += int(len(first) - first.sum())
    if split == "random":
        part = _random_parts(users, items, log.num_items, seed)
    elif split == "loo":
        part = _loo_parts(users)
    else:
        part = _temporal_parts(times, valid_fraction)
    pick = {name: part == code for code, name in enumerate(("train", "valid", "test"))}
    if not pick["test"].any():
        raise CbnsError(f"{log.name}: the {split} split leaves no test events (every user has one event?)")
    if not pick["train"].any():
        raise CbnsError(f"{source or log.name}: the {split} split leaves no training events", *_why_no_train(
            split, times, part), "; use ", Opt("split", "random"))
    pairs = np.stack([users, items], axis=1)
    return Interactions(
        log.name, log.num_users, log.num_items,
        train=pairs[pick["train"]], test=pairs[pick["test"]], valid=pairs[pick["valid"]],
        user_ids=log.user_ids, item_ids=log.item_ids,
        train_time=times[pick["train"]], valid_time=times[pick["valid"]], test_time=times[pick["test"]],
        user_features=log.user_features, item_features=log.item_features, split=split, rows=rows)


def _why_no_train(split: str, times: np.ndarray, part: np.ndarray) -> tuple:
    """Why every distinct event of a split went to valid or test, for its one-line error."""
    if split == "temporal":
        cut = times[part > 0].min()
        return (f": {int((times == cut).sum()):,} of its {len(times):,} events share the earliest time {cut:g}, "
                f"and events at a cut's time fall on the later side",)
    return ()  # loo and random always keep some: a user's earlier items, 80% of the pairs


def _random_parts(users, items, num_items, seed) -> np.ndarray:
    """0 = train, 2 = test, for distinct pairs: the holdout runs over them in sorted pair order."""
    pairs = np.stack([users, items], axis=1)
    order = np.argsort(pair_keys(users, items, num_items), kind="stable")  # distinct: np.unique's order
    part = np.zeros(len(users), dtype=np.int64)
    held = holdout_mask(pairs[order], TEST_FRACTION, seed)
    part[order] = np.where(held, 2, 0)
    return part


def _loo_parts(users) -> np.ndarray:
    """Events sorted by (user, time): last of each user -> test (2), second-to-last -> valid (1)."""
    counts = np.bincount(users)
    ends = np.cumsum(counts)[users]                    # one past the user's last event
    from_end = ends - np.arange(len(users))            # 1 for the last event, 2 for the one before
    n = counts[users]
    part = np.zeros(len(users), dtype=np.int64)
    part[(from_end == 1) & (n >= 2)] = 2
    part[(from_end == 2) & (n >= 3)] = 1
    return part


def _temporal_parts(times, valid_fraction) -> np.ndarray:
    sorted_times = np.sort(times)
    n = len(times)
    test_cut = sorted_times[min(n - 1, int(np.floor(n * (1 - TEST_FRACTION))))]
    valid_cut = sorted_times[min(n - 1, int(np.floor(n * (1 - TEST_FRACTION - valid_fraction))))]
    part = np.zeros(n, dtype=np.int64)
    if valid_fraction > 0:
        part[times >= valid_cut] = 1
    part[times >= test_cut] = 2
    return part
