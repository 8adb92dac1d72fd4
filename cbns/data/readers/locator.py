"""Naming a row of a table file in an error: ``path:line`` for text, ``path: row n`` for Parquet."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np


class Locator:
    """Where data row ``r`` (0-based) of a table file is.

    Args:
        path: the file.
        line_of: ``row -> line number`` for text files (computed on the first error only, so a
            clean file never pays for it); ``None`` for Parquet, whose rows are numbered from 1.
        original: ``[n]`` the file's row of each row, when rows were dropped (see :meth:`subset`).
    """

    def __init__(self, path: Path, line_of: Callable[[int], int] | None = None,
                 original: np.ndarray | None = None):
        self.path, self._line_of, self._original = Path(path), line_of, original

    def where(self, row: int) -> str:
        row = int(row if self._original is None else self._original[row])
        if self._line_of is None:
            return f"{self.path}: row {row + 1}"
        return f"{self.path}:{int(self._line_of(row))}"

    def subset(self, kept: np.ndarray) -> Locator:
        """The locator of the rows ``kept [n]`` (file rows, or rows of this locator)."""
        original = kept if self._original is None else self._original[kept]
        return Locator(self.path, self._line_of, original)
