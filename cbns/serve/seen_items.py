"""Each user's seen items (train + validation): the items serving never recommends them.

A run saves them as ``seen_items.npz`` (:mod:`cbns.runs.seen_items_file`), so serving reads one
file. A run directory without that file (saved before runs wrote it, or holding only the cache
older serving code wrote) still serves: the dataset is loaded again as the run's config says,
the seeded validation split re-carved, the seen items computed as training did, and the file
written for the next load.
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from cbns.config import TrainConfig
from cbns.data.loading import load_data
from cbns.errors import CbnsError
from cbns.runs.seen_items_file import (
    SeenItemsUnavailable,
    read_seen_items,
    seen_matrix,
    source_key,
    write_seen_items,
)
from cbns.runs.source_record import check_data


def seen_items(run: Path, config: TrainConfig, num_users: int, items: np.ndarray) -> sp.csr_matrix:
    """``[num_users, len(items)]`` 0/1 CSR of the items each user saw in train or validation.

    Reads ``run/seen_items.npz`` when the run wrote it with these item embeddings ``items [I, D]``;
    otherwise says so in one line on stderr, rebuilds the dataset with
    :func:`cbns.data.loading.load_data` and writes the file (silently skipped when the run
    directory is read-only: the file only saves time). The rebuilt dataset must be the one the
    run recorded (:func:`cbns.runs.source_record.check_data`): :class:`CbnsError` naming the file
    that changed otherwise.
    """
    run = Path(run)
    try:
        return read_seen_items(run, items, num_users)
    except SeenItemsUnavailable as exc:
        print(f"cbns: note: {exc}; computing the seen items from the dataset {config.data.source}", file=sys.stderr)
    check_data(run, config)
    data = load_data(config)
    check_data(run, config, data)  # seen items of other data would hide the wrong items
    seen = seen_matrix(data)
    shape = (num_users, len(items))
    if seen.shape != shape:
        raise CbnsError(f"{config.data.source}: the dataset now has {seen.shape[0]:,} users x {seen.shape[1]:,} items, "
                        f"but the embeddings of {run} have {shape[0]:,} x {shape[1]:,}; it changed since training")
    with contextlib.suppress(CbnsError):
        write_seen_items(run, seen, items, source_key(config))
    return seen
