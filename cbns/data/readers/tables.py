"""Reader for interaction tables (CSV, TSV, Parquet) with ids of any type.

The grammar, strictly enforced (anything else is a :class:`CbnsError` naming file and line):

* CSV/TSV (:mod:`cbns.data.readers.delimited`): UTF-8 (a BOM is allowed), fields separated by
  ``,`` or a tab, RFC 4180 quoting with ``"`` (a quote right after the separator and spaces opens
  a quoted field). Blank and whitespace-only lines are skipped. The first record is the header;
  every later record has exactly as many fields.
* Columns are named case-insensitively, surrounding spaces ignored; a name may occur once. The
  user and item columns are required (``user`` and ``item`` unless ``user_column`` /
  ``item_column`` name others); the rating and time columns (``rating``, ``timestamp``, or
  ``rating_column`` / ``time_column``) are optional and must hold finite numbers; other
  columns are ignored.
* Ids keep their text (CSV) or type (Parquet, read by :mod:`cbns.data.readers.parquet`: integers or
  strings, dictionary-encoded allowed), minus surrounding whitespace; they may not be empty or
  contain line breaks or other control characters (:mod:`cbns.data.readers.id_columns`).
"""
from __future__ import annotations

from pathlib import Path

from cbns.data.load_progress import LoadProgress
from cbns.data.read_options import DEFAULT_READ, ReadOptions
from cbns.data.readers.file_checks import require_file
from cbns.data.readers.table_columns import Table
from cbns.errors import CbnsError, Opt

TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".parquet": None}


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
        raise CbnsError(Opt("min_rating", f"{options.min_rating:g}"), f": {path} has no {options.rating_column!r} "
                        f"column; name the column of ratings with ", Opt("rating_column"))
    return table
