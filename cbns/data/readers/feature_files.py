"""Reader for user or item attribute tables (CSV, TSV, Parquet) named in the config.

The table has a key column (``user`` or ``item``, holding the dataset's original ids) and one
column per attribute. Every value is a category (numbers too: ``1`` and ``2`` are two codes). A
column is multi-valued when a cell holds a list (Parquet) or ``|``-separated tokens (``a|b|c``);
an empty cell is "missing". Rows whose key is not in the dataset are ignored; ids without a row
get "missing" in every column; a file none of whose keys is an id of the dataset (most likely
another id scheme) is a warning on stderr that names it. A header naming one column twice is
refused.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cbns.data.features import FeatureTable, categorical_column, multi_column
from cbns.data.readers.file_checks import require_file
from cbns.data.readers.tables import TABLE_SUFFIXES
from cbns.errors import CbnsError, Opt

MULTI_SEPARATOR = "|"


def read_feature_file(path: str | Path, key: str, columns: Sequence[str], ids: np.ndarray | None,
                      num_rows: int) -> FeatureTable:
    """The attributes in ``path`` for the ``num_rows`` internal ids whose originals are ``ids``.

    Args:
        key: ``user`` or ``item``: the name of the key column, and of the config option.
        columns: the attribute columns to use; empty = every column but the key.
        ids: ``ids[r]`` is the original id of internal id r, or ``None`` when they coincide.
    """
    path = Path(path)
    option = Opt(f"{key}_features", path)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise CbnsError(option, f": unknown table format {path.suffix!r}; use .csv, .tsv or .parquet")
    require_file(path, f"{key}_features")
    try:
        if path.suffix.lower() == ".parquet":
            frame = pd.read_parquet(path)
            header = [str(c) for c in frame.columns]
        else:
            csv = {"sep": TABLE_SUFFIXES[path.suffix.lower()], "dtype": str, "keep_default_na": False,
                   "skipinitialspace": True}
            header = list(pd.read_csv(path, header=None, nrows=1, **csv).iloc[0])  # pandas renames repeats
            frame = pd.read_csv(path, **csv)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CbnsError(option, f": cannot parse the table: {first}") from None
    frame.columns = [str(c).strip() for c in header]
    repeated = frame.columns[frame.columns.duplicated()]
    if len(repeated):
        raise CbnsError(option, f": column {repeated[0]!r} appears more than once in the header; "
                        f"give each column its own name")
    if key not in frame.columns:
        raise CbnsError(option, f": no {key!r} key column; found {', '.join(frame.columns) or 'none'}")
    wanted = list(columns) or [c for c in frame.columns if c != key]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise CbnsError(Opt(f"{key}_feature_columns"), f": column(s) {', '.join(missing)} not in {path}; "
                        f"found {', '.join(frame.columns)}")
    keys = frame[key].astype(str).to_numpy()
    duplicated = pd.Series(keys).duplicated().to_numpy()
    if duplicated.any():
        row = int(np.argmax(duplicated))
        raise CbnsError(f"{path}:{row + 2}: {key} {keys[row]!r} appears twice")
    originals = np.arange(num_rows) if ids is None else ids
    rows = pd.Index(keys).get_indexer([str(x) for x in originals])
    found = rows >= 0
    if num_rows and not found.any():  # most likely another id scheme: say so, the run goes on without them
        example = f"its keys look like {keys[0]!r}, the dataset's {key}s like {str(originals[0])!r}" if len(keys) \
            else "it has no rows"
        print(f"cbns: warning: {path}: none of its {len(keys):,} {key} keys is one of the dataset's {key} ids (0 of "
              f"{num_rows:,} {key}s matched; {example}); every {key}'s attributes are missing", file=sys.stderr)
    rows = np.maximum(rows, 0)
    table = []
    for name in wanted:
        cells = [_tokens(v) for v in frame[name].to_numpy()[rows]]
        multi = any(len(t) > 1 for t in cells) or any(_is_list(v) for v in frame[name].to_numpy())
        if multi:
            table.append(multi_column(f"{key}:{name}", cells, found))
        else:
            table.append(categorical_column(f"{key}:{name}", [t[0] if t else None for t in cells], found))
    return FeatureTable(num_rows, table)


def _is_list(value) -> bool:
    return isinstance(value, (list, tuple, np.ndarray)) or (isinstance(value, str) and MULTI_SEPARATOR in value)


def _tokens(value) -> list[str]:
    """A cell as its list of tokens ([] when missing)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v) for v in value if not pd.isna(v) and str(v) != ""]
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    text = str(value).strip()
    return [t.strip() for t in text.split(MULTI_SEPARATOR) if t.strip()] if text else []
