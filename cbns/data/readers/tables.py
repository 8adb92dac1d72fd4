"""Reader for interaction tables (CSV, TSV, Parquet) with ids of any type.

The grammar, strictly enforced (anything else is a :class:`CbnsError` naming file and line):

* CSV/TSV (:mod:`cbns.data.readers.delimited`): UTF-8 (a BOM is allowed), fields separated by
  ``,`` or a tab, RFC 4180 quoting with ``"`` (a quote right after the separator and spaces opens
  a quoted field). Blank and whitespace-only lines are skipped. The first record is the header;
  every later record has exactly as many fields.
* Columns are named case-insensitively, surrounding spaces ignored; a name may occur once. The
  user and item columns are required (``user`` and ``item`` unless ``--user-column`` /
  ``--item-column`` name others); the rating and time columns (``rating``, ``timestamp``, or
  ``--rating-column`` / ``--time-column``) are optional and must hold finite numbers; other
  columns are ignored.
* Ids keep their text (CSV) or type (Parquet, read by :mod:`cbns.data.readers.parquet`: integers or
  strings, dictionary-encoded allowed), minus surrounding whitespace; they may not be empty or
  contain line breaks or other control characters (:mod:`cbns.data.readers.id_columns`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cbns.data.load_progress import LoadProgress
from cbns.data.read_options import DEFAULT_READ, ReadOptions
from cbns.data.readers.file_checks import require_file
from cbns.data.readers.id_columns import IdColumn
from cbns.data.readers.locator import Locator
from cbns.errors import CbnsError

TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".parquet": None}
#: The roles a table's columns play, in the order they are checked.
ID_ROLES = ("user", "item")
NUMBER_ROLES = ("timestamp", "rating")


@dataclass
class Table:
    """The columns of a table that cbns reads.

    Attributes:
        rows: names a row in errors (``path:line``, or ``path: row n`` for Parquet).
        user, item: the id columns, ``[N]`` codes and the sorted original ids.
        timestamp: ``[N]`` float64 event times when the table has a time column (Parquet
            timestamp and date types as seconds since the epoch), else ``None``.
        rating: ``[N]`` float64 ratings when the table has a rating column, else ``None``.
    """

    rows: Locator
    user: IdColumn
    item: IdColumn
    timestamp: np.ndarray | None = None
    rating: np.ndarray | None = None

    @property
    def path(self) -> Path:
        return self.rows.path

    def where(self, row: int) -> str:
        return self.rows.where(row)

    def take(self, keep: np.ndarray) -> Table:
        """The rows where ``keep [N]`` is True (ids that no longer occur are dropped)."""
        pick = (lambda a: None if a is None else a[keep])  # noqa: E731
        return Table(self.rows.subset(np.flatnonzero(keep)), self.user.take(keep), self.item.take(keep),
                     pick(self.timestamp), pick(self.rating))

    def __len__(self) -> int:
        return len(self.user)


def read_table(path: Path, options: ReadOptions = DEFAULT_READ, progress: LoadProgress | None = None) -> Table:
    """Read the columns ``options`` names from a table, checking every row (see the module doc)."""
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise CbnsError(f"{path}: unknown table format {suffix!r}; use .csv, .tsv or .parquet")
    require_file(path)
    progress = progress or LoadProgress(enabled=False)
    if suffix == ".parquet":
        from cbns.data.readers.parquet import read_parquet

        table = read_parquet(path, options, progress)
    else:
        from cbns.data.readers.delimited import read_delimited

        table = read_delimited(path, TABLE_SUFFIXES[suffix], options, progress)
    if len(table) == 0:
        raise CbnsError(f"{path}: the table has a header but no rows")
    if options.min_rating is not None and table.rating is None:
        raise CbnsError(f"--min-rating {options.min_rating:g}: {path} has no {options.rating_column!r} column; "
                        f"name the column of ratings with --rating-column")
    return table


def columns(where: str, record: list[str], options: ReadOptions) -> dict[str, int]:
    """``{role: column index}`` of a header (``user``, ``item`` and, when present, ``timestamp``,
    ``rating``); ``where`` names the header in errors."""
    names = [name.strip().lower() for name in record]
    for name in sorted(set(names)):
        if names.count(name) > 1:
            raise CbnsError(f"{where}: column {name!r} occurs {names.count(name)} times among the columns")
    found = ", ".join(map(repr, names))
    missing = [options.column_name(role) for role in ID_ROLES if options.column_name(role) not in names]
    if missing:
        flags = " / ".join(options.column_flag(role) for role in ID_ROLES
                           if options.column_name(role) in missing)
        raise CbnsError(f"{where}: missing column(s) {', '.join(missing)}; found {found}; say which column "
                        f"holds them with {flags}")
    for role in NUMBER_ROLES:
        name = options.column_name(role)
        flag_role = {"timestamp": "time_column", "rating": "rating_column"}[role]
        if name not in names and options.explicit(flag_role):
            raise CbnsError(f"{where}: no column {name!r} ({options.column_flag(role)}); found {found}")
    roles = {}
    for at, name in enumerate(names):
        role = options.role_of(name)
        if role is not None:
            roles[role] = at
    return roles
