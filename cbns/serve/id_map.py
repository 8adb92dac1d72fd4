"""Original ids <-> internal rows, read from a run's ``user_ids.txt`` / ``item_ids.txt``.

A remapped table writes line r = the original id of row r (ids of any type, written as text).
Without the file the dataset's own integer ids are the rows (LightGCN text, bundled Gowalla).
A query id is read by the loaders' rule (:mod:`cbns.data.id_text`): digits 0-9 only for integer
ids (``+1``, `` 7 `` and ``٣`` are refused, as a LightGCN file refuses them), the stripped text for
text ids.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from cbns.data.id_text import MAX_ID, integer_id, text_id
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
            parsed = [integer_id(x) for x in ids]
            for x, row in zip(ids, parsed):
                if row is None:
                    raise CbnsError(f"{label} {x!r}: not an id of this run: its ids are the integers "
                                    f"0..{self.size - 1}, written with the digits 0-9 only (no sign or spaces; "
                                    f"at most {MAX_ID})")
            rows = np.array(parsed, dtype=np.int64)
            known = rows < self.size
        else:
            cleaned = [text_id(x) for x in ids]
            for x, text in zip(ids, cleaned):
                if text is None:
                    raise CbnsError(f"{label} {str(x)!r}: not an id of this run: an id is text that is not empty "
                                    f"and holds no control character")
            text = np.array(cleaned, dtype=str)
            pos = np.minimum(np.searchsorted(self._sorted, text), self.size - 1)
            known = self._sorted[pos] == text if len(text) else np.zeros(0, dtype=bool)
            rows = self._order[pos].astype(np.int64)
        if not known.all():
            bad = np.flatnonzero(~known)
            more = f" (and {len(bad) - 1} more unknown)" if len(bad) > 1 else ""
            first = ids[bad[0]] if self.originals is None else str(text[bad[0]])
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

