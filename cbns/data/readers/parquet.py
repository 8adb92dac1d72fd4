"""Reader for Parquet interaction tables: the user and item columns, type-checked, column by column
in C++ (pyarrow), row group by row group for the progress bar.

Ids must be integer or string columns (dictionary-encoded allowed) without nulls; the time and
rating columns, when present, numeric (the time column may also be a timestamp or date type) and
finite. Rows are named by number in errors (``file.parquet: row 3``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cbns.data.load_progress import LoadProgress
from cbns.data.read_options import ReadOptions
from cbns.data.readers.id_columns import IdColumn, integer_ids, string_ids
from cbns.data.readers.locator import Locator
from cbns.data.readers.table_columns import ID_ROLES, NUMBER_ROLES, Table, columns
from cbns.errors import CbnsError


def read_parquet(path: Path, options: ReadOptions, progress: LoadProgress) -> Table:
    """The columns ``options`` names, checked as :mod:`cbns.data.readers.tables` describes."""
    try:
        file = pq.ParquetFile(path)
        schema = file.schema_arrow
        roles = columns(f"{path}: schema", [str(name) for name in schema.names], options)
        wanted = {role: schema.names[at] for role, at in roles.items()}
        progress.start(f"reading {path.name}", file.metadata.num_rows, unit="rows")
        groups = []
        for group in range(file.num_row_groups):
            groups.append(file.read_row_group(group, columns=list(dict.fromkeys(wanted.values()))))
            progress.advance(groups[-1].num_rows)
        data = pa.concat_tables(groups) if groups else schema.empty_table()
    except (pa.ArrowException, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CbnsError(f"{path}: cannot read the Parquet file: {first}") from None
    rows = Locator(path)
    progress.stage("checking ids")
    user, item = (_ids(rows, role, data.column(wanted[role])) for role in ID_ROLES)
    numbers = {role: _numbers(rows, role, data.column(wanted[role])) for role in NUMBER_ROLES if role in wanted}
    return Table(rows, user, item, timestamp=numbers.get("timestamp"), rating=numbers.get("rating"))


def _ids(rows: Locator, column: str, values: pa.ChunkedArray) -> IdColumn:
    kind = values.type
    if pa.types.is_dictionary(kind):
        values, kind = values.cast(kind.value_type), kind.value_type
    if values.null_count:
        row = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
        raise CbnsError(f"{rows.where(row)}: empty {column} id (null)")
    if pa.types.is_integer(kind):
        if pa.types.is_unsigned_integer(kind) and len(values) and pc.max(values).as_py() > np.iinfo(np.int64).max:
            raise CbnsError(f"{rows.path}: column {column} holds ids above {np.iinfo(np.int64).max}")
        return integer_ids(values.to_numpy().astype(np.int64))
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return string_ids(rows, column, values)
    raise CbnsError(f"{rows.path}: column {column} has type {kind}; ids must be integers or strings")


def _numbers(rows: Locator, column: str, values: pa.ChunkedArray) -> np.ndarray:
    kind = values.type
    if column == "timestamp" and (pa.types.is_timestamp(kind) or pa.types.is_date(kind)):
        numbers, bad = None, values.is_null().to_numpy(zero_copy_only=False)
    elif pa.types.is_integer(kind) or pa.types.is_floating(kind):
        numbers = values.to_numpy().astype(np.float64)
        bad = ~np.isfinite(numbers)
    else:
        raise CbnsError(f"{rows.path}: column {column} has type {kind}; it must hold numbers")
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        shown = "null" if values[row].as_py() is None else repr(float(numbers[row]))
        raise CbnsError(f"{rows.where(row)}: {column} {shown} is not a finite number")
    return numbers if numbers is not None else _epoch_seconds(values)


def _epoch_seconds(values) -> np.ndarray:
    """``[N]`` float64 seconds since the epoch of a (null-free) timestamp or date column."""
    kind = values.type
    if pa.types.is_date(kind):
        return values.cast(pa.date32()).cast(pa.int32()).to_numpy().astype(np.float64) * 86400.0
    seconds = values.cast(pa.timestamp("us", tz=kind.tz)).cast(pa.int64()).to_numpy()
    return seconds.astype(np.float64) / 1e6
