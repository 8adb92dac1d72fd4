"""The columns of a table that cbns reads (:class:`Table`), and the roles of a header's columns
(:func:`columns`): shared by the CSV/TSV and Parquet readers and :mod:`cbns.data.readers.tables`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cbns.data.read_options import ReadOptions
from cbns.data.readers.id_columns import IdColumn
from cbns.data.readers.locator import Locator
from cbns.errors import CbnsError

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
        named = [options.column_option(role) for role in ID_ROLES if options.column_name(role) in missing]
        raise CbnsError(f"{where}: missing column(s) {', '.join(missing)}; found {found}; say which column "
                        f"holds them with ", *_joined(named, " / "))
    for role in NUMBER_ROLES:
        name = options.column_name(role)
        flag_role = {"timestamp": "time_column", "rating": "rating_column"}[role]
        if name not in names and options.explicit(flag_role):
            raise CbnsError(f"{where}: no column {name!r} (", options.column_option(role), f"); found {found}")
    roles = {}
    for at, name in enumerate(names):
        role = options.role_of(name)
        if role is not None:
            roles[role] = at
    return roles


def _joined(parts: list, separator: str) -> list:
    """``parts`` with ``separator`` between them, as message parts."""
    out = []
    for part in parts:
        out += [separator, part] if out else [part]
    return out
