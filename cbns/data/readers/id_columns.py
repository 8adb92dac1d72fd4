"""Id columns of a table: codes ``0..n-1`` in sorted order of the original ids, checked once per
distinct id rather than once per row.

A string id keeps its text minus surrounding whitespace (what Python's ``str.strip`` removes); it
may not be empty or hold a line break or another control character (``user_ids.txt`` stores one
id per line): :mod:`cbns.data.id_text`. Two spellings that strip to the same text are one id.
Integer ids keep their value. Strings sort by code point (UTF-8 byte order is the same order),
integers numerically.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cbns.data.id_text import CONTROL
from cbns.data.readers.locator import Locator
from cbns.errors import CbnsError

#: Every character ``str.isspace()`` is true for (tests/data/readers/test_id_columns.py checks it).
WHITESPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) \
    + "\u2028\u2029\u202f\u205f\u3000"


def _re2_class(chars: str) -> str:
    return "[" + "".join(f"\\x{{{ord(c):x}}}" for c in chars) + "]"


#: Ids that need Python's attention (RE2, run by pyarrow over the distinct ids): empty, with
#: whitespace at either end, or holding a control character. The others are taken as they are.
_NEEDS_A_LOOK = (f"^$|^{_re2_class(WHITESPACE)}|{_re2_class(WHITESPACE)}$|"
                 "[\\x{0}-\\x{1f}\\x{7f}-\\x{9f}\\x{2028}\\x{2029}]")


@dataclass
class IdColumn:
    """``codes [N]`` int64 in ``[0, n)``; ``originals [n]`` the sorted distinct ids (an object array
    of ``str``, or int64), ``originals[codes[r]]`` the id of row r."""

    codes: np.ndarray
    originals: np.ndarray

    @property
    def kind(self) -> str:
        return "integers" if self.originals.dtype.kind in "iu" else "strings"

    def __len__(self) -> int:
        return len(self.codes)

    def take(self, keep: np.ndarray) -> IdColumn:
        """The rows where ``keep [N]`` is True; ids that no longer occur are dropped (the codes stay
        in sorted order of the originals)."""
        codes = self.codes[keep]
        present = np.zeros(len(self.originals), dtype=bool)
        present[codes] = True
        if present.all():
            return IdColumn(codes, self.originals)
        renumber = np.cumsum(present) - 1
        return IdColumn(renumber[codes], self.originals[present])


def remap_ids(values) -> tuple[np.ndarray, np.ndarray]:
    """Map ids (an array or Series of any one type) to ``0..n-1`` in sorted order of the ids.

    Returns ``(codes [N] int64, originals [n])``; ``originals[code]`` is the original id.
    """
    codes, uniques = pd.factorize(values, sort=True)
    return codes.astype(np.int64), np.asarray(uniques, dtype=values.dtype)


def integer_ids(values: np.ndarray) -> IdColumn:
    """An :class:`IdColumn` of int64 ``values [N]``."""
    return IdColumn(*remap_ids(values.astype(np.int64)))


def string_ids(rows: Locator, column: str, values: pa.Array | pa.ChunkedArray) -> IdColumn:
    """An :class:`IdColumn` of null-free strings, stripped and checked (see the module doc);
    :class:`CbnsError` naming the first row whose id is empty or holds a control character."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_large_string(values.type):
        values = values.cast(pa.string())
    encoded = values.dictionary_encode()
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    distinct = encoded.dictionary
    look = np.flatnonzero(pc.match_substring_regex(distinct, _NEEDS_A_LOOK).to_numpy(zero_copy_only=False))
    if len(look):
        texts = distinct.to_pylist()
        bad = []
        for k in look:
            texts[k] = texts[k].strip()
            if texts[k] == "" or CONTROL.search(texts[k]):
                bad.append(k)
        if bad:
            row = int(np.flatnonzero(np.isin(indices, bad))[0])
            value = texts[indices[row]]
            what = "empty" if value == "" else f"control character {CONTROL.search(value).group()!r} in"
            raise CbnsError(f"{rows.where(row)}: {what} {column} id" + ("" if value == "" else f" {value!r}"))
        distinct = pa.array(texts, pa.string())
    uniques = pc.unique(distinct)
    ordered = uniques.take(pc.array_sort_indices(uniques))
    position = pc.index_in(distinct, value_set=ordered).to_numpy(zero_copy_only=False).astype(np.int64)
    originals = np.asarray(ordered.to_numpy(zero_copy_only=False), dtype=object)
    return IdColumn(position[indices], originals)
