"""Original ids <-> internal rows, read from a run's ``user_ids.txt`` / ``item_ids.txt``.

A remapped table writes line r = the original id of row r (ids of any type, written as text).
Without the file the dataset's own integer ids are the rows (LightGCN text, bundled Gowalla).
A query id is read by the loaders' rule (:mod:`cbns.data.id_text`): digits 0-9 only for integer
ids (``+1``, `` 7 `` and ``٣`` are refused, as a LightGCN file refuses them), the stripped text for
text ids.

The ids come back in the type the source had: a file whose every line is a decimal integer (what
a table with integer id columns writes) gives ints, any other file gives strings, and a run
without a file gives its integer rows. A text source whose every id happens to be written as a
canonical decimal integer (``12``, not ``012``) cannot be told from an integer one and also
gives ints; a query finds its row either way (ids are compared as text).
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from cbns.data.id_text import MAX_ID, integer_id, text_id
from cbns.errors import CbnsError, UnknownIdError

#: A line of an id file that an integer id column writes: a canonical decimal int64.
_INTEGER_LINE = re.compile(r"0|-?[1-9][0-9]{0,18}")


class IdMap:
    """Translate between original ids and rows ``0..n-1``.

    With a file, original ids are the strings on its lines (an int you pass is compared as its
    text, so ``42`` finds the line ``42``); :meth:`to_ids` gives them back as ints when every line
    is a decimal integer (``integers``), else as strings. Without one, the ids are the integers
    ``0..n-1``.
    """

    def __init__(self, size: int, originals: np.ndarray | None = None, source: str = "ids",
                 integers: bool = False):
        self.size, self.originals, self.source = size, originals, source
        self._values = None
        if originals is not None:
            self._order = np.argsort(originals, kind="stable")
            self._sorted = originals[self._order]
            if integers:
                self._values = np.array([int(x) for x in originals], dtype=np.int64)

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
        integers = all(_INTEGER_LINE.fullmatch(line) and -2**63 <= int(line) < 2**63 for line in lines)
        return cls(size, np.array(lines, dtype=str), f"ids in {path}", integers=integers)

    def to_rows(self, ids: Iterable, label: str = "id") -> np.ndarray:
        """``[N]`` int64 rows of ``ids``, one id or a list of them (a string is one id, never its
        characters); :class:`CbnsError` naming the first unknown id (as ``label``)."""
        ids = list(ids) if _many(ids) else [ids]
        if self.originals is None:
            parsed = [integer_id(x) for x in ids]
            for x, row in zip(ids, parsed):
                if row is None:
                    raise UnknownIdError(f"{label} {x!r}: not an id of this run: its ids are the integers "
                                    f"0..{self.size - 1}, written with the digits 0-9 only (no sign or spaces; "
                                    f"at most {MAX_ID})")
            rows = np.array(parsed, dtype=np.int64)
            known = rows < self.size
        else:
            cleaned = [text_id(x) for x in ids]
            for x, text in zip(ids, cleaned):
                if text is None:
                    raise UnknownIdError(f"{label} {str(x)!r}: not an id of this run: an id is text that is not empty "
                                    f"and holds no control character")
            text = np.array(cleaned, dtype=str)
            pos = np.minimum(np.searchsorted(self._sorted, text), self.size - 1)
            known = self._sorted[pos] == text if len(text) else np.zeros(0, dtype=bool)
            rows = self._order[pos].astype(np.int64)
        if not known.all():
            bad = np.flatnonzero(~known)
            more = f" (and {len(bad) - 1} more unknown)" if len(bad) > 1 else ""
            first = ids[bad[0]] if self.originals is None else str(text[bad[0]])
            raise UnknownIdError(f"{label} {first!r}: not in this run ({self.size:,} known, {self.source}){more}")
        return rows

    def to_ids(self, rows: np.ndarray) -> np.ndarray:
        """Original ids of ``rows`` (any shape), as Python ints or strings (see the class
        docstring); ``-1`` rows (padding) become ``None``."""
        rows = np.asarray(rows)
        pad = rows < 0
        if self.originals is None:
            out = rows.astype(object)
        else:
            table = self._values if self._values is not None else self.originals
            out = table[np.where(pad, 0, rows)].astype(object)
        out[pad] = None
        return out



def _many(ids) -> bool:
    """Whether ``ids`` is a collection of ids rather than one id (a string, bytes or a scalar)."""
    if isinstance(ids, (str, bytes)) or getattr(ids, "ndim", 1) == 0:
        return False
    return isinstance(ids, Iterable)
