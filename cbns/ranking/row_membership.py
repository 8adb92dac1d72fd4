"""Which items a user row of a sparse ``[users, items]`` matrix holds (seen items to exclude,
held-out items to find): the rows as coordinates, and vectorised membership tests on them.

Not to be confused with :mod:`cbns.model.sparse_rows`, the row-sparse gradient of a table lookup.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:  # RowKeys imports torch when built: serving a bundle reads contains() without torch
    import torch


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


class RowKeys:
    """The non-zeros of ``matrix[rows]`` as sorted int64 keys ``position * width + column``
    (``position`` counting the row's place in ``rows``), built once on the host and handed to the
    device one block of rows at a time: what a ranking that visits ``rows`` block by block needs,
    to exclude items (:meth:`fill`) and to find held-out ones (:meth:`hits`), with no read back from
    the device.

    Args:
        matrix: ``[N, I]`` CSR.
        rows: ``[R]`` the rows, in the order the ranking visits them.
        width: the row stride of the keys, at least ``I`` (the padded width of a score block, so
            that a block's keys are flat offsets into it).
        device: where the blocks go. On a GPU the keys are pinned once, so that each block's copy is
            asynchronous (no host wait); on the CPU a block is a view, nothing is copied.
    """

    def __init__(self, matrix: sp.csr_matrix, rows: np.ndarray, width: int, device: torch.device):
        import torch

        if width < matrix.shape[1]:
            raise ValueError(f"width {width} is below the matrix's {matrix.shape[1]} columns")
        sub = matrix[np.asarray(rows, dtype=np.int64)]
        sub.sort_indices()
        #: ``[R + 1]`` host offsets: the keys of rows ``a..b-1`` are ``keys[starts[a]:starts[b]]``
        self.starts = sub.indptr.astype(np.int64)
        position = np.repeat(np.arange(len(rows), dtype=np.int64), np.diff(self.starts))
        keys = torch.from_numpy(position * width + sub.indices.astype(np.int64))
        self.width, self.device = width, torch.device(device)
        self.keys = keys.pin_memory() if self.device.type == "cuda" else keys

    def block(self, a: int, b: int) -> torch.Tensor:
        """``[n]`` sorted keys of rows ``a..b-1`` relative to row ``a`` (``(position - a) * width +
        column``) on the device: flat offsets into a ``[b - a, width]`` block."""
        keys = self.keys[self.starts[a]:self.starts[b]].to(self.device, non_blocking=True)
        return keys - a * self.width if a else keys

    def fill(self, block: torch.Tensor, a: int, value: float) -> None:
        """Set ``block[r, c] = value`` (in place) for every non-zero ``c`` of row ``rows[a + r]``;
        ``block``: ``[n, width]`` contiguous, rows ``a..a+n-1``. A fill by flat index, whose
        value is a kernel argument: no host tensor is made or copied per call."""
        keys = self.block(a, a + block.shape[0])
        if len(keys):
            block.view(-1).index_fill_(0, keys, value)

    def hits(self, top: torch.Tensor, a: int) -> torch.Tensor:
        """``[n, K]`` bool on the device: is ``top[r, j]`` a non-zero column of row ``rows[a + r]``?
        ``top``: ``[n, K]`` int64 columns (negative ones, padding, never match). One
        ``searchsorted`` of the block's queries into its sorted keys."""
        import torch

        keys = self.block(a, a + top.shape[0])
        if not len(keys):
            return torch.zeros(top.shape, dtype=torch.bool, device=top.device)
        query = torch.arange(top.shape[0], device=top.device)[:, None] * self.width + top
        pos = torch.searchsorted(keys, query).clamp_(max=len(keys) - 1)
        return (keys[pos] == query) & (top >= 0)
