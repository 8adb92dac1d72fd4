"""Reader for interaction tables (CSV, TSV, Parquet) with ids of any type."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cbns.errors import CbnsError

TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".parquet": None}
REQUIRED = ("user", "item")


def read_table(path: Path) -> pd.DataFrame:
    """Read a table with columns ``user``, ``item`` and optionally ``timestamp`` and ``rating``.

    Ids stay as read (strings, integers, ...); :func:`remap_ids` turns them into contiguous
    integers. Rows with a missing user or item are an error naming the line (header = line 1).
    """
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise CbnsError(f"{path}: unknown table format {suffix!r}; use .csv, .tsv or .parquet")
    if not path.is_file():
        raise CbnsError(f"{path}: no such file")
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep=TABLE_SUFFIXES[suffix], dtype=str, keep_default_na=False,
                                na_values=[""], skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise CbnsError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CbnsError(f"{path}: cannot parse the table: {first}") from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise CbnsError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(frame.columns) or 'none'}")
    if len(frame) == 0:
        raise CbnsError(f"{path}: the table has a header but no rows")
    for col in REQUIRED:
        bad = frame[col].isna().to_numpy()
        if bad.any():
            raise CbnsError(f"{path}:{int(np.argmax(bad)) + 2}: empty {col} id")
    for col in ("timestamp", "rating"):
        if col in frame.columns:
            values = pd.to_numeric(frame[col], errors="coerce")
            bad = values.isna().to_numpy()
            if bad.any():
                row = int(np.argmax(bad))
                raise CbnsError(f"{path}:{row + 2}: {col} {frame[col].iloc[row]!r} is not a number")
            frame[col] = values
    return frame


def remap_ids(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Map arbitrary ids to ``0..n-1`` in sorted order of the original ids.

    Returns ``(codes [N] int64, originals [n])``; ``originals[code]`` is the original id.
    """
    codes, uniques = pd.factorize(values, sort=True)
    return codes.astype(np.int64), np.asarray(uniques)
