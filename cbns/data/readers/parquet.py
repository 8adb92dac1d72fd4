"""Reader for Parquet interaction tables: the ``user`` and ``item`` columns, type-checked.

Ids must be integer or string columns (dictionary-encoded allowed) without nulls; ``timestamp``
and ``rating``, when present, numeric (``timestamp`` may also be a timestamp or date type) and
finite. Rows are named by number in errors (``file.parquet: row 3``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cbns.data.readers.tables import NUMERIC, Table, check_string_ids, columns
from cbns.errors import CbnsError


def read_parquet(path: Path) -> Table:
    """The id columns of a Parquet file, checked as :mod:`cbns.data.readers.tables` describes."""
    try:
        data = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CbnsError(f"{path}: cannot read the Parquet file: {first}") from None
    names = columns(f"{path}: schema", [str(name) for name in data.schema.names])
    rows = np.arange(1, data.num_rows + 1, dtype=np.int64)
    table = Table(path, np.empty(0), np.empty(0), rows)
    table.user = _parquet_ids(table, "user", data.column(names.index("user")))
    table.item = _parquet_ids(table, "item", data.column(names.index("item")))
    for column in NUMERIC:
        if column in names:
            _parquet_numbers(table, column, data.column(names.index(column)))
    return table


def _parquet_ids(table: Table, column: str, values) -> np.ndarray:
    kind = values.type
    if pa.types.is_dictionary(kind):
        values, kind = values.cast(kind.value_type), kind.value_type
    if values.null_count:
        row = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
        raise CbnsError(f"{table.where(row)}: empty {column} id (null)")
    if pa.types.is_integer(kind):
        if pa.types.is_unsigned_integer(kind) and len(values) and pc.max(values).as_py() > np.iinfo(np.int64).max:
            raise CbnsError(f"{table.path}: column {column} holds ids above {np.iinfo(np.int64).max}")
        return values.to_numpy().astype(np.int64)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        ids = np.array(values.to_pylist(), dtype=object)
        check_string_ids(table, column, ids)
        return ids
    raise CbnsError(f"{table.path}: column {column} has type {kind}; ids must be integers or strings")


def _parquet_numbers(table: Table, column: str, values) -> None:
    kind = values.type
    if column == "timestamp" and (pa.types.is_timestamp(kind) or pa.types.is_date(kind)):
        numbers, bad = None, values.is_null().to_numpy(zero_copy_only=False)
    elif pa.types.is_integer(kind) or pa.types.is_floating(kind):
        numbers = values.to_numpy(zero_copy_only=False).astype(np.float64)
        bad = ~np.isfinite(numbers)
    else:
        raise CbnsError(f"{table.path}: column {column} has type {kind}; it must hold numbers")
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        shown = "null" if values[row].as_py() is None else repr(float(numbers[row]))
        raise CbnsError(f"{table.where(row)}: {column} {shown} is not a finite number")
    if column == "timestamp":
        table.timestamp = numbers if numbers is not None else _epoch_seconds(values)


def _epoch_seconds(values) -> np.ndarray:
    """``[N]`` float64 seconds since the epoch of a (null-free) timestamp or date column."""
    kind = values.type
    if pa.types.is_date(kind):
        return values.cast(pa.date32()).cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.float64) * 86400.0
    seconds = values.cast(pa.timestamp("us", tz=kind.tz)).cast(pa.int64()).to_numpy(zero_copy_only=False)
    return seconds.astype(np.float64) / 1e6
