"""Reader for interaction tables (CSV, TSV, Parquet) with ids of any type.

The grammar, strictly enforced (anything else is a :class:`CbnsError` naming file and line):

* CSV/TSV: UTF-8 (a BOM is allowed), fields separated by ``,`` or a tab, RFC 4180 quoting with
  ``"`` (a quote right after the separator and spaces opens a quoted field). Blank and
  whitespace-only lines are skipped. The first record is the header; every later record has
  exactly as many fields.
* Columns are named case-insensitively, surrounding spaces ignored; ``user`` and ``item`` are
  required, ``timestamp`` and ``rating`` are optional and must be finite numbers, others are
  ignored. A name may occur once.
* Ids keep their text (CSV) or type (Parquet, read by :mod:`cbns.data.readers.parquet`: integers or
  strings, dictionary-encoded allowed), minus surrounding whitespace; they may not be empty or
  contain line breaks or other control characters (``user_ids.txt`` stores one id per line).
"""
from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cbns.errors import CbnsError

TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".parquet": None}
REQUIRED = ("user", "item")
NUMERIC = ("timestamp", "rating")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass
class Table:
    """The id columns of a table.

    Attributes:
        path: the file.
        user, item: ``[N]`` ids as read: an object array of ``str``, or int64.
        lines: ``[N]`` where each row starts: the line number (CSV/TSV) or the row number (Parquet).
        timestamp: ``[N]`` float64 event times when the table has a ``timestamp`` column (Parquet
            timestamp and date types as seconds since the epoch), else ``None``.
    """

    path: Path
    user: np.ndarray
    item: np.ndarray
    lines: np.ndarray
    timestamp: np.ndarray | None = None

    def where(self, row: int) -> str:
        """``path:line`` of CSV/TSV row ``row``, ``path: row n`` for Parquet."""
        if self.path.suffix.lower() == ".parquet":
            return f"{self.path}: row {int(self.lines[row])}"
        return f"{self.path}:{int(self.lines[row])}"

    def __len__(self) -> int:
        return len(self.user)


def read_table(path: Path) -> Table:
    """Read the ``user`` and ``item`` columns of a table, checking every row (see the module doc)."""
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise CbnsError(f"{path}: unknown table format {suffix!r}; use .csv, .tsv or .parquet")
    if not path.is_file():
        raise CbnsError(f"{path}: no such file")
    if suffix == ".parquet":
        from cbns.data.readers.parquet import read_parquet

        table = read_parquet(path)
    else:
        table = _read_delimited(path, TABLE_SUFFIXES[suffix])
    if len(table) == 0:
        raise CbnsError(f"{path}: the table has a header but no rows")
    return table


def remap_ids(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map arbitrary ids to ``0..n-1`` in sorted order of the original ids.

    Returns ``(codes [N] int64, originals [n])``; ``originals[code]`` is the original id.
    """
    codes, uniques = pd.factorize(values, sort=True)
    return codes.astype(np.int64), np.asarray(uniques, dtype=values.dtype)


def _read_delimited(path: Path, sep: str) -> Table:
    raw = _read_bytes(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise CbnsError(f"{path}:{line}: not UTF-8 text (byte {raw[exc.start]:#04x})") from None
    if not text.strip():
        raise CbnsError(f"{path}: the file is empty")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True, skipinitialspace=True)
    header, users, items, lines, numbers = None, [], [], [], {}
    end = 0
    try:
        for record in reader:
            start, end = end + 1, reader.line_num
            if not record or record == [""]:  # a blank or whitespace-only line
                continue
            if header is None:
                header = columns(f"{path}:{start}", record)
                numbers = {c: [] for c in NUMERIC if c in header}
                user_at, item_at = header.index("user"), header.index("item")
                number_at = {c: header.index(c) for c in numbers}
                continue
            if len(record) != len(header):
                raise CbnsError(f"{path}:{start}: expected {len(header)} fields like the header, got "
                                f"{len(record)}: {_short(sep.join(record))}")
            users.append(record[user_at])
            items.append(record[item_at])
            lines.append(start)
            for c, at in number_at.items():
                numbers[c].append(record[at])
    except csv.Error as exc:
        raise CbnsError(f"{path}:{end + 1}: cannot parse the table ({exc})") from None
    if header is None:
        raise CbnsError(f"{path}: the file is empty")
    table = Table(path, np.array(users, dtype=object), np.array(items, dtype=object),
                  np.array(lines, dtype=np.int64))
    for column in REQUIRED:
        check_string_ids(table, column, getattr(table, column))
    for column, values in numbers.items():
        _check_numbers(table, column, values)
    if "timestamp" in numbers:
        table.timestamp = np.array(numbers["timestamp"], dtype=np.float64)
    return table


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CbnsError(f"{path}: cannot read ({exc.strerror or exc})") from None


def columns(where: str, record: list[str]) -> list[str]:
    """The header's column names, normalised; ``where`` names the header in errors."""
    names = [name.strip().lower() for name in record]
    for name in sorted(set(names)):
        if names.count(name) > 1:
            raise CbnsError(f"{where}: column {name!r} occurs {names.count(name)} times among the columns")
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise CbnsError(f"{where}: missing column(s) {', '.join(missing)}; found {', '.join(map(repr, names))}")
    return names


def check_string_ids(table: Table, column: str, values: np.ndarray) -> None:
    """Strip ``values`` (object array of str) in place; no empty ids, no control characters."""
    values[:] = [v.strip() for v in values]
    bad = {v for v in pd.unique(values) if v == "" or _CONTROL.search(v)}
    if bad:
        row = next(r for r, v in enumerate(values) if v in bad)
        value = values[row]
        what = "empty" if value == "" else f"control character {_CONTROL.search(value).group()!r} in"
        raise CbnsError(f"{table.where(row)}: {what} {column} id" + ("" if value == "" else f" {value!r}"))


def _check_numbers(table: Table, column: str, values) -> None:
    ok: dict = {}
    for row, value in enumerate(values):
        good = ok.get(value)
        if good is None:
            good = ok[value] = _finite(value)
        if not good:
            raise CbnsError(f"{table.where(row)}: {column} {value!r} is not a finite number")


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError, OverflowError):
        return False


def _short(text: str, limit: int = 60) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."
