"""How the rows of a source are read: the names of a table's columns and the rating threshold.

A table (CSV, TSV, Parquet) names its columns; the options say which column holds the users, the
items, the ratings and the event times (``user_column`` ... ``time_column``; matched like the
header itself, case-insensitively and without surrounding spaces). ``min_rating`` R keeps only
the rows rated R or more, for tables with a rating column and MovieLens-100k's ``u.data``; the
sources without ratings (LightGCN text, sequence files, the bundled Gowalla) refuse it, as they
refuse column names.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from cbns.config.word_or_number import parse_min_rating
from cbns.errors import CbnsError, FlagsOnly, Opt

#: The column names a table is read with unless told otherwise.
DEFAULT_COLUMNS = {"user_column": "user", "item_column": "item", "rating_column": "rating",
                   "time_column": "timestamp"}


@dataclass(frozen=True)
class ReadOptions:
    """The column names (normalised: stripped, lower case) and the rating threshold (None = off)."""

    user_column: str = "user"
    item_column: str = "item"
    rating_column: str = "rating"
    time_column: str = "timestamp"
    min_rating: float | None = None

    def __post_init__(self):
        for f in fields(self):
            if f.name.endswith("_column"):
                object.__setattr__(self, f.name, normalise(getattr(self, f.name)))
        if self.user_column == self.item_column:
            raise CbnsError(Opt("item_column", self.item_column), ": the same column as ", Opt("user_column"),
                            "; the users and the items must come from two columns")
        for role in ("rating_column", "time_column"):
            name = getattr(self, role)
            if name in (self.user_column, self.item_column) and self.explicit(role):
                raise CbnsError(Opt(role, name), f": that column holds the "
                                f"{'users' if name == self.user_column else 'items'}; choose another column")
        if self.rating_column == self.time_column:
            raise CbnsError(Opt("time_column", self.time_column), ": the same column as ", Opt("rating_column"))

    @classmethod
    def from_config(cls, data) -> ReadOptions:
        """The reading options of the data section ``data`` (a :class:`cbns.config.DataConfig`)."""
        return cls(**{name: getattr(data, name) for name in DEFAULT_COLUMNS},
                   min_rating=parse_min_rating(data.min_rating))

    def explicit(self, role: str) -> bool:
        """Whether column option ``role`` (``user_column``, ...) differs from its default."""
        return getattr(self, role) != DEFAULT_COLUMNS[role]

    def role_of(self, name: str) -> str | None:
        """``user``, ``item``, ``rating``, ``timestamp`` for the column that plays it, else None.

        A rating or time column left at its default name that the user or item column claims
        plays no other role."""
        if name == self.user_column:
            return "user"
        if name == self.item_column:
            return "item"
        if name == self.rating_column:
            return "rating"
        if name == self.time_column:
            return "timestamp"
        return None

    def column_option(self, role: str) -> Opt:
        """The option naming the column of ``role``: ``user_column`` for ``user``, ...
        ``time_column`` for ``timestamp``."""
        return Opt({"timestamp": "time"}.get(role, role) + "_column")

    def column_name(self, role: str) -> str:
        return getattr(self, {"timestamp": "time"}.get(role, role) + "_column")

    def refuse_for(self, source: str, columns: bool = True, ratings: bool = True) -> None:
        """:class:`CbnsError` for the options ``source`` cannot use: column names when it has no
        named columns (``columns`` False), a rating threshold when it has no ratings."""
        if not columns:
            for role in DEFAULT_COLUMNS:
                if self.explicit(role):
                    raise CbnsError(Opt(role, getattr(self, role)), f": {source} has no named columns; "
                                    f"the column options apply to CSV, TSV and Parquet tables; drop the ",
                                    FlagsOnly("flag", otherwise="option"))
        if not ratings and self.min_rating is not None:
            raise CbnsError(Opt("min_rating", f"{self.min_rating:g}"), f": {source} has no ratings; drop the ",
                            FlagsOnly("flag", otherwise="option"))


def normalise(name: str) -> str:
    """A column name as headers are matched: surrounding spaces dropped, lower case."""
    return str(name).strip().lower()


#: The options of a plain read: default column names, no rating threshold.
DEFAULT_READ = ReadOptions()
