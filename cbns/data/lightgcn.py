"""Reader for the LightGCN text format: one line per user, ``user item item ...``, 0-based ids."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cbns.errors import CbnsError


def read_lightgcn_file(path: Path) -> np.ndarray:
    """Read one file into ``[N, 2]`` int64 (user, item) pairs.

    Every token must be a non-negative integer; a user may have no items on its line. Blank lines
    are skipped. A file without any pair is an error, since it would train or test nothing.
    """
    if not path.is_file():
        raise CbnsError(f"{path}: no such file")
    users: list[np.ndarray] = []
    items: list[np.ndarray] = []
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.strip()
            if not line:
                continue
            tokens = line.split()
            try:
                ids = np.array([int(t) for t in tokens], dtype=np.int64)
            except ValueError:
                bad = next(t for t in tokens if not _is_int(t))
                raise CbnsError(f"{path}:{lineno}: id {bad.decode(errors='replace')!r} is not an integer") from None
            if (ids < 0).any():
                raise CbnsError(f"{path}:{lineno}: ids must be >= 0, got {int(ids[ids < 0][0])}")
            if len(ids) > 1:
                users.append(np.full(len(ids) - 1, ids[0], dtype=np.int64))
                items.append(ids[1:])
    if not items:
        raise CbnsError(f"{path}: no (user, item) pairs in the file")
    return np.stack([np.concatenate(users), np.concatenate(items)], axis=1)


def _is_int(token: bytes) -> bool:
    try:
        int(token)
    except ValueError:
        return False
    return True
