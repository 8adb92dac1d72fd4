"""Each user's seen items (train + validation), cached in the run directory as ``seen_items.npz``.

Rebuilding the dataset means parsing it and re-carving the seeded validation split; the cache
makes every later load a single ``.npz`` read. The cache records the dataset options it was
built from and the matrix shape, and is rebuilt when they no longer match the run's config.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from cbns.config import TrainConfig
from cbns.data.loading import load_data
from cbns.errors import CbnsError

SEEN_FILE = "seen_items.npz"


def _source_key(config: TrainConfig) -> str:
    key = f"{config.data}|seed={config.seed}|valid_fraction={config.valid_fraction}"
    return key if config.split == "random" else f"{key}|split={config.split}"


def seen_items(run: Path, config: TrainConfig, shape: tuple[int, int]) -> sp.csr_matrix:
    """``[num_users, num_items]`` 0/1 CSR of the items each user saw in train or validation.

    Reads ``run/seen_items.npz`` when it matches ``config`` and ``shape``; otherwise rebuilds the
    dataset with :func:`cbns.runs.run_dir.load_data` and writes the cache (silently skipped when the run
    directory is read-only: the cache only saves time).
    """
    path = run / SEEN_FILE
    cached = _read_cache(path, _source_key(config), shape)
    if cached is not None:
        return cached
    data = load_data(config)
    seen = (data.matrix("train") + data.matrix("valid")).tocsr()
    seen.data[:] = 1.0
    if seen.shape != shape:
        raise CbnsError(f"{config.data}: the dataset now has {seen.shape[0]:,} users x {seen.shape[1]:,} items, "
                        f"but the embeddings of {run} have {shape[0]:,} x {shape[1]:,}; it changed since training")
    try:
        tmp = run / (SEEN_FILE + ".tmp.npz")
        np.savez_compressed(tmp, indptr=seen.indptr, indices=seen.indices, shape=np.array(seen.shape),
                            source=np.array(_source_key(config)))
        tmp.replace(path)
    except OSError:
        pass
    return seen


def _read_cache(path: Path, source: str, shape: tuple[int, int]) -> sp.csr_matrix | None:
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            if str(z["source"]) != source or tuple(z["shape"]) != tuple(shape):
                return None
            indptr, indices = z["indptr"], z["indices"]
    except (OSError, KeyError, ValueError):
        return None
    data = np.ones(len(indices), dtype=np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=shape)
