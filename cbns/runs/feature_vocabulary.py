"""The user attribute vocabularies a run saves, so that raw values given at request time find
their codes without the dataset.

A run whose user tower reads attributes writes ``user_features.json``::

    {"columns": [{"name": "gender", "multi": false, "width": 1, "values": ["F", "M"]}, ...]}

``values[c - 1]`` is the raw value (as text) of code c of that column; code 0 means missing, as
in :class:`cbns.data.features.FeatureColumn`. The codes follow the column the tower was trained
on, so the same raw value maps to the same embedding row as in training. numpy only: an exported
bundle reads it without torch.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from cbns.data.features import FeatureTable
from cbns.errors import CbnsError, UnknownIdError
from cbns.runs.atomic import atomic_write_text

USER_FEATURES_FILE = "user_features.json"


def write_user_features(out: Path, table: FeatureTable | None) -> None:
    """Write ``out/user_features.json`` for ``table`` (nothing when there is no table or a column
    holds no raw values)."""
    if table is None or not len(table) or any(col.values is None for col in table.columns):
        return
    columns = [{"name": col.name, "multi": col.multi, "width": int(col.codes.shape[1]), "values": list(col.values)}
               for col in table.columns]
    atomic_write_text(Path(out) / USER_FEATURES_FILE, json.dumps({"columns": columns}) + "\n")


class FeatureVocabulary:
    """Raw attribute values -> the ``[Q, width]`` code arrays of each column.

    Args:
        columns: ``[{"name", "multi", "width", "values"}, ...]`` as in the file.
        source: where they came from, for messages.
    """

    def __init__(self, columns: Sequence[Mapping], source: str = USER_FEATURES_FILE):
        self.columns, self.source = list(columns), source
        self._codes = [{v: c + 1 for c, v in enumerate(col["values"])} for col in self.columns]

    @classmethod
    def from_table(cls, table: FeatureTable, source: str) -> FeatureVocabulary:
        """The vocabulary of the columns of ``table`` (each must hold its raw values)."""
        return cls([{"name": c.name, "multi": c.multi, "width": int(c.codes.shape[1]), "values": list(c.values)}
                    for c in table.columns], source)

    @classmethod
    def read(cls, run: Path) -> FeatureVocabulary | None:
        """The run's vocabulary, or None when it did not save one; :class:`CbnsError` for a damaged file."""
        path = Path(run) / USER_FEATURES_FILE
        if not path.is_file():
            return None
        try:
            columns = json.loads(path.read_text(encoding="utf-8"))["columns"]
            for col in columns:
                if not (isinstance(col["name"], str) and isinstance(col["multi"], bool)
                        and isinstance(col["width"], int) and col["width"] >= 1
                        and all(isinstance(v, str) for v in col["values"])):
                    raise ValueError
        except (ValueError, KeyError, TypeError):
            raise CbnsError(f"{path}: not an attribute vocabulary written by cbns train; the run directory "
                            f"is damaged") from None
        return cls(columns, str(path))

    @property
    def names(self) -> list[str]:
        return [col["name"] for col in self.columns]

    def codes(self, rows: Sequence[Mapping[str, object]]) -> list[np.ndarray]:
        """One ``[Q, width]`` int64 array per column for the ``Q`` queries ``rows``.

        A row maps attribute names (as the run names them, or without the ``user:`` prefix the
        columns of an attribute table get) to raw values: one value, or a list of them for a multi-valued
        column (a column the row leaves out, or gives as None or ``[]``, is missing: code 0, as a
        missing value was in training). An attribute name the run does not have is a
        :class:`CbnsError`, a value no training row had an :class:`UnknownIdError` (its embedding
        was never trained), each naming the attribute.
        """
        found = [[[] for _ in rows] for _ in self.columns]
        where = {name: k for k, name in enumerate(self.names)}
        for k, name in enumerate(self.names):  # a table's columns are named "user:<column>": the bare name too
            where.setdefault(name.removeprefix("user:"), k)
        for q, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise CbnsError(f"features query {q}: expected attribute names and values, got {type(row).__name__}")
            for name, value in row.items():
                if name not in where:
                    raise CbnsError(f"features query {q}: attribute {name!r}: not an attribute of this run's user "
                                    f"tower; it reads {', '.join(map(repr, self.names))}")
                k = where[name]
                col = self.columns[k]
                values = [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]
                if len(values) > 1 and not col["multi"]:
                    raise CbnsError(f"features query {q}: attribute {name!r}: takes one value, got {len(values)}")
                for text in dict.fromkeys(_text(v) for v in values):
                    code = self._codes[k].get(text)
                    if code is None:
                        raise UnknownIdError(f"features query {q}: attribute {name!r} value {text!r}: no training "
                                             f"row had it ({len(col['values']):,} known values, {self.source})")
                    found[k][q].append(code)
        out = []
        for col, lists in zip(self.columns, found):  # padded with 0, which the tower skips
            codes = np.zeros((len(rows), max([col["width"], *map(len, lists)])), dtype=np.int64)
            for q, row_codes in enumerate(lists):
                codes[q, :len(row_codes)] = row_codes
            out.append(codes)
        return out


def _text(value: object) -> str:
    """A raw value as the column's vocabulary spells it (the loaders keep values as text)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
