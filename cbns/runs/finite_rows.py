"""Exported embeddings hold finite numbers: checked where a run writes them and where serving
reads them, so a NaN never reaches a ranking (or a JSON answer, which cannot carry one)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cbns.errors import NonFiniteError


def check_finite_rows(matrix: np.ndarray, path: Path, advice: str) -> None:
    """:class:`NonFiniteError` naming the first row of ``matrix`` (embeddings bound for or read from
    ``path``) that holds a NaN or an infinity: a ranking over it would be meaningless, and JSON
    cannot carry it."""
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        count = int((~np.isfinite(matrix)).sum())
        raise NonFiniteError(f"{path}: row {row} holds {matrix[row][~np.isfinite(matrix[row])][0]} "
                             f"({count:,} non-finite values in all); {advice}")

