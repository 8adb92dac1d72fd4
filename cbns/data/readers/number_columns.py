"""Numeric columns of a text table (``rating``, ``timestamp``): what Python's ``float`` reads,
finite, checked once per distinct value.

Plain decimals (``-12``, ``3.5``, ``1e3``) are converted by pyarrow in one pass (it rounds as
Python does: tests/data/readers/test_number_columns.py); any other spelling Python accepts
(`` 7 ``, ``+1``, ``1_0``) is read per distinct value by ``float`` itself.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cbns.data.readers.locator import Locator
from cbns.errors import CbnsError

PLAIN_DECIMAL = r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$"


def text_numbers(rows: Locator, column: str, values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """``[N]`` float64 of a string column; :class:`CbnsError` naming the first row that does not
    hold a finite number."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if len(values) and pc.all(pc.match_substring_regex(values, PLAIN_DECIMAL)).as_py():
        numbers = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
        raw = None
    else:
        encoded = values.dictionary_encode()
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        raw = encoded.dictionary.to_pylist()
        numbers = np.array([_float(v) for v in raw], dtype=np.float64)[indices]
    bad = ~np.isfinite(numbers)
    if bad.any():
        row = int(np.argmax(bad))
        value = values[row].as_py()
        raise CbnsError(f"{rows.where(row)}: {column} {value!r} is not a finite number")
    return numbers


def _float(value: str) -> float:
    try:
        return float(value)
    except (ValueError, OverflowError):
        return float("nan")
