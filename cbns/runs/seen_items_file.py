"""Each user's seen items, saved with the run: ``seen_items.npz`` in the run directory.

Serving never recommends a user's train or validation items. The run writes them when it is
saved, from the very dataset it trained on, so serving need not parse the data again and re-carve
the seeded validation split. The file is an ``np.savez`` archive
(uncompressed: on Gowalla 3.4 MB, written in 0.08 s against 1.1 s compressed):

    format         1
    indptr         [U + 1] int: the CSR row pointers of the ``[U, I]`` 0/1 matrix
    indices        [nnz] int: each user's items, ascending within the row
    shape          [2]: ``(U, I)``
    items_digest   the hash (:func:`cbns.ranking.item_index.items_digest`) of the run's
                   ``item_embeddings.npy``: the run the file belongs to
    source         ``data|seed=..|valid_fraction=..[|split=..][|min_rating=..]``: the dataset
                   options it came from, for reading only

A file without ``format`` (the cache serving used to write on first use, keyed by ``source``
alone) or whose digest or shape is not the run's is refused by :func:`read_seen_items`: the
digest ties the file to one run, so a file of a run trained on other data or with other options
(another ``min_rating``, say) into the same directory is never used for this one.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from cbns.config import TrainConfig
from cbns.data.interactions import Interactions
from cbns.ranking.item_index import items_digest
from cbns.runs.atomic import atomic_write_with

SEEN_FILE = "seen_items.npz"
FORMAT = 1


class SeenItemsUnavailable(Exception):
    """The run directory holds no usable seen-items file; the message says why."""


def seen_matrix(data: Interactions) -> sp.csr_matrix:
    """``[num_users, num_items]`` 0/1 float32 CSR: the items each user saw in train or validation."""
    seen = (data.matrix("train") + data.matrix("valid")).tocsr()
    seen.sort_indices()
    seen.data[:] = 1.0
    return seen


def source_key(config: TrainConfig) -> str:
    """The dataset options the seen items follow from, for people reading the file (the check is
    the item embeddings' hash): the data, the seed, the validation carve and the rating filter."""
    key = f"{config.data.source}|seed={config.training.seed}|valid_fraction={config.data.valid_fraction}"
    key = key if config.data.split == "random" else f"{key}|split={config.data.split}"
    return key if config.data.min_rating == "off" else f"{key}|min_rating={config.data.min_rating}"


def write_seen_items(run: Path, seen: sp.csr_matrix, items: np.ndarray, source: str) -> Path:
    """Write ``seen [U, I]`` as ``run/seen_items.npz``, atomically, for the run whose item
    embeddings are ``items [I, D]``; :class:`cbns.errors.CbnsError` if the disk refuses."""
    path = Path(run) / SEEN_FILE
    arrays = {"format": np.array(FORMAT), "indptr": seen.indptr, "indices": seen.indices,
              "shape": np.array(seen.shape), "items_digest": np.array(items_digest(items)),
              "source": np.array(source)}
    atomic_write_with(path, lambda fh: np.savez(fh, **arrays))
    return path


def read_seen_items(run: Path, items: np.ndarray, num_users: int) -> sp.csr_matrix:
    """The ``[num_users, len(items)]`` 0/1 CSR saved in ``run/seen_items.npz`` with the item
    embeddings ``items``; :class:`SeenItemsUnavailable` when the file is missing, unreadable, of
    the older cache format, or written for other embeddings."""
    path = Path(run) / SEEN_FILE
    if not path.is_file():
        raise SeenItemsUnavailable(f"{path}: no such file (the run was saved without it)")
    shape = (num_users, len(items))
    try:
        with np.load(path, allow_pickle=False) as z:
            if "format" not in z.files:
                raise SeenItemsUnavailable(f"{path}: the cache of an older cbns, not written by the run")
            if int(z["format"]) != FORMAT:
                raise SeenItemsUnavailable(f"{path}: format {int(z['format'])}, this cbns reads {FORMAT}")
            if str(z["items_digest"]) != items_digest(items):
                raise SeenItemsUnavailable(f"{path}: written with other item embeddings than the run's")
            saved = tuple(int(n) for n in z["shape"])
            if saved != shape:
                raise SeenItemsUnavailable(f"{path}: holds {saved[0]:,} users x {saved[1]:,} items, the run "
                                           f"{shape[0]:,} x {shape[1]:,}")
            indptr, indices = z["indptr"], z["indices"]
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise SeenItemsUnavailable(f"{path}: cannot read it ({type(exc).__name__})") from None
    if len(indptr) != num_users + 1 or indptr[-1] != len(indices) or (len(indices) and (
            indices.min() < 0 or indices.max() >= shape[1])):
        raise SeenItemsUnavailable(f"{path}: damaged (its rows do not fit {shape[0]} users x {shape[1]} items)")
    return sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr), shape=shape)
