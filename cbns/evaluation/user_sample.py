"""A seeded sample of the users an evaluation averages over, for catalogs too big to rank for all."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def sample_users(relevant: sp.csr_matrix, n: int, seed: int) -> np.ndarray | None:
    """``n`` users drawn without replacement (seeded), ascending, among those with a relevant item
    in ``relevant [U, I]``; None (every such user) when ``n`` is 0 or at least their number."""
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    if not n or n >= len(users):
        return None
    return np.sort(np.random.default_rng(seed).choice(users, n, replace=False))


def users_with_items(relevant: sp.csr_matrix) -> int:
    """How many users have a relevant item (the users a full evaluation averages over)."""
    return int((np.diff(relevant.indptr) > 0).sum())
