"""Reading a run's exported embedding matrices (``user_embeddings.npy``, ``item_embeddings.npy``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cbns.errors import CbnsError
from cbns.runs.finite_rows import check_finite_rows


def load_matrix(path: Path) -> np.ndarray:
    """``[rows, D]`` float32, C-contiguous; :class:`CbnsError` naming the file when missing or malformed."""
    if not path.is_file():
        raise CbnsError(f"{path}: no such file; is this a directory written by cbns train?")
    try:
        matrix = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CbnsError(f"{path}: cannot read the embeddings ({type(exc).__name__})") from None
    if matrix.ndim != 2:
        raise CbnsError(f"{path}: expected a [rows, dim] matrix, got shape {matrix.shape}")
    if matrix.dtype.kind not in "fiu":
        raise CbnsError(f"{path}: expected numbers, got {matrix.dtype} values")
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    check_finite_rows(matrix, path, "the file is damaged or was edited; restore it from the run's own copy, "
                                    "or train the run again")
    return matrix


def load_embeddings(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(users [U, D], items [I, D])`` of run directory ``run``, checked to have the same width."""
    users = load_matrix(run / "user_embeddings.npy")
    items = load_matrix(run / "item_embeddings.npy")
    if users.shape[1] != items.shape[1]:
        raise CbnsError(f"{run}: user embeddings are {users.shape[1]}-d but item embeddings {items.shape[1]}-d")
    return users, items
