"""Original ids <-> internal rows, read from a run's ``user_ids.txt`` / ``item_ids.txt``.

A remapped table writes line r = the original id of row r (ids of any type, written as text).
Without the file the dataset's own integer ids are the rows (LightGCN text, bundled Gowalla).
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from cbns.errors import CbnsError


class IdMap:
    """Translate between original ids and rows ``0..n-1``.

    With a file, original ids are the strings on its lines (an int you pass is compared as its
    text, so ``42`` finds the line ``42``). Without one, the ids are the integers ``0..n-1``.
    """

    def __init__(self, size: int, originals: np.ndarray | None = None, source: str = "ids"):
        self.size, self.originals, self.source = size, originals, source
        if originals is not None:
            self._order = np.argsort(originals, kind="stable")
            self._sorted = originals[self._order]

    @classmethod
    def from_file(cls, path: Path, size: int) -> IdMap:
        """The map of ``path`` if it exists, else the identity over ``size`` rows."""
        if not path.is_file():
            return cls(size, None, f"integer ids 0..{size - 1}")
        lines = path.read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if len(lines) != size:
            raise CbnsError(f"{path}: {len(lines)} ids for {size} embedding rows; the run directory is inconsistent")
        return cls(size, np.array(lines, dtype=str), f"ids in {path}")

    def to_rows(self, ids: Iterable, label: str = "id") -> np.ndarray:
        """``[N]`` int64 rows of ``ids``; :class:`CbnsError` naming the first unknown id (as ``label``)."""
        ids = list(ids)
        if self.originals is None:
            rows = np.array([_as_int(x) for x in ids], dtype=np.int64)
            known = (rows >= 0) & (rows < self.size)
        else:
            text = np.array([str(x) for x in ids], dtype=str)
            pos = np.minimum(np.searchsorted(self._sorted, text), self.size - 1)
            known = self._sorted[pos] == text if len(text) else np.zeros(0, dtype=bool)
            rows = self._order[pos].astype(np.int64)
        if not known.all():
            bad = np.flatnonzero(~known)
            more = f" (and {len(bad) - 1} more unknown)" if len(bad) > 1 else ""
            first = ids[bad[0]] if self.originals is None else str(ids[bad[0]])
            raise CbnsError(f"{label} {first!r}: not in this run ({self.size:,} known, {self.source}){more}")
        return rows

    def to_ids(self, rows: np.ndarray) -> np.ndarray:
        """Original ids of ``rows`` (any shape); ``-1`` rows (padding) become ``None``."""
        rows = np.asarray(rows)
        pad = rows < 0
        if self.originals is None:
            out = rows.astype(object)
        else:
            out = self.originals[np.where(pad, 0, rows)].astype(object)
        out[pad] = None
        return out


def _as_int(value) -> int:
    """An integer id from an int or its decimal text; -1 (unknown) for anything else."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        return -1
