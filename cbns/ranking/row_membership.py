"""Which items a user row of a sparse ``[users, items]`` matrix holds (seen items to exclude,
held-out items to find): the rows as coordinates, and vectorised membership tests on them.

Not to be confused with :mod:`cbns.model.sparse_rows`, the row-sparse gradient of a table lookup.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def coordinates(matrix: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(local [n], cols [n])`` int64: the non-zeros of ``matrix[rows]``, ``local`` counting the
    position of the row in ``rows`` (``0..len(rows)-1``), ``cols`` the column of each."""
    sub = matrix[np.asarray(rows, dtype=np.int64)]
    local = np.repeat(np.arange(len(rows), dtype=np.int64), np.diff(sub.indptr))
    return local, sub.indices.astype(np.int64)


def contains(matrix: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``[R, C]`` bool: is ``cols[r, c]`` a non-zero column of row ``rows[r]`` of ``matrix``?

    Args:
        matrix: ``[N, I]`` CSR (e.g. each user's seen items).
        rows: ``[R]`` int row indices into ``matrix``.
        cols: ``[R, C]`` int column indices; negative entries (padding) are never contained.

    One sort and one ``searchsorted`` over the keys ``r * I + col``, so no loop over rows.
    """
    cols = np.asarray(cols, dtype=np.int64)
    width = matrix.shape[1]
    local, found = coordinates(matrix, rows)
    keys = np.sort(local * width + found)
    if len(keys) == 0:
        return np.zeros(cols.shape, dtype=bool)
    query = np.arange(len(rows), dtype=np.int64)[:, None] * width + cols
    pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return (keys[pos] == query) & (cols >= 0)
