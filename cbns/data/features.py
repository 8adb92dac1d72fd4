"""Categorical and multi-valued (multi-hot) attributes of users or items, as padded code arrays."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class FeatureColumn:
    """One attribute of every row (user or item), as integer codes.

    Attributes:
        name: the column's label.
        codes: ``[N, L]`` int64; code 0 means "missing / padding", real values are ``1..vocab-1``.
            A categorical column has ``L == 1``; a multi-valued one holds up to ``L`` codes per
            row, left-aligned and 0-padded (the tower averages their embeddings).
        vocab: number of codes, 0 included.
        multi: True for a multi-valued (multi-hot) column.
        values: the raw value of each code ``1..vocab-1`` as text (``values[c - 1]`` is code c), so
            that a value given at request time finds its code; None when the column was built from
            codes alone.
    """

    name: str
    codes: np.ndarray
    vocab: int
    multi: bool = False
    values: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.codes.ndim != 2:
            raise ValueError(f"feature column {self.name}: codes must be [N, L], got shape {self.codes.shape}")


@dataclass
class FeatureTable:
    """The attribute columns of ``num_rows`` users or items (row r = internal id r)."""

    num_rows: int
    columns: list[FeatureColumn] = field(default_factory=list)

    def __post_init__(self):
        for col in self.columns:
            if len(col.codes) != self.num_rows:
                raise ValueError(f"feature column {col.name}: {len(col.codes)} rows, expected {self.num_rows}")

    def __len__(self) -> int:
        return len(self.columns)

    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def merged(self, other: FeatureTable | None) -> FeatureTable:
        """The columns of both tables (``other`` after ``self``)."""
        if other is None:
            return self
        return FeatureTable(self.num_rows, [*self.columns, *other.columns])


def categorical_column(name: str, values: Sequence, present: np.ndarray | None = None) -> FeatureColumn:
    """A single-valued column from one raw value per row (``None`` or ``present[r] == False``: missing).

    Codes follow the sorted order of the distinct values (as strings), starting at 1.
    """
    return multi_column(name, [[] if v is None else [v] for v in values], present, multi=False)


def multi_column(name: str, token_lists: Sequence[Sequence], present: np.ndarray | None = None,
                 multi: bool = True) -> FeatureColumn:
    """A multi-valued column from a list of raw tokens per row (an empty list: missing)."""
    rows = [list(t) if present is None or present[r] else [] for r, t in enumerate(token_lists)]
    vocab = sorted({str(t) for row in rows for t in row})
    code = {t: c + 1 for c, t in enumerate(vocab)}
    width = max(1, max((len(set(map(str, row))) for row in rows), default=1))
    codes = np.zeros((len(rows), width), dtype=np.int64)
    for r, row in enumerate(rows):
        distinct = list(dict.fromkeys(str(t) for t in row))
        codes[r, :len(distinct)] = [code[t] for t in distinct]
    return FeatureColumn(name, codes, len(vocab) + 1, multi, tuple(vocab))
