"""``Recommender``: top-K items for known users, and similar items, from a run directory.

Loading reads the exported embeddings, the id maps and the item index if one was built (see
:mod:`cbns.ranking.item_index`); nothing is retrained or rebuilt. Seen items are loaded on first
use from the file the run saved (:mod:`cbns.serve.seen_items`). Every query method is vectorised: one
batched index search or chunked matrix product for all queries, no loop over users.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from cbns.errors import CbnsError
from cbns.ranking.filtered_search import index_top_k
from cbns.ranking.item_index import INDEX_FILE, ItemIndex, faiss_available
from cbns.ranking.numpy_topk import numpy_top_k
from cbns.serve.embeddings import load_embeddings
from cbns.serve.id_map import IdMap
from cbns.serve.ranked import Ranked


class Recommender:
    """Scores ``s(u, i) = users[u] . items[i]`` through ``index`` when given, exactly otherwise.

    Args:
        users: ``[U, D]`` float32 user vectors; items: ``[I, D]`` float32 item vectors.
        user_map, item_map: original id <-> row maps.
        index: an :class:`ItemIndex` over ``items``, or ``None`` for exact scoring.
        load_seen: returns the ``[U, I]`` CSR of seen items; called once, on first need.
        prior_column: the last column is the per-item ranking term (the popularity prior of
            :mod:`cbns.model.popularity_prior` and/or the learned item bias; a run exports it when its
            vectors are one wider than ``dim``): similar-item queries leave it out, so they rank
            by the towers' similarity alone.
    """

    def __init__(self, users: np.ndarray, items: np.ndarray, user_map: IdMap, item_map: IdMap,
                 index: ItemIndex | None = None, load_seen: Callable[[], sp.csr_matrix] | None = None,
                 prior_column: bool = False, device: str | None = "cpu"):
        self.users, self.items = users, items
        if device is not None:
            from cbns.machine import resolve_device

            device = resolve_device(device)
        self.device = device
        self._items_on_device = None
        self.prior_column = prior_column
        self.user_map, self.item_map = user_map, item_map
        self.index = index
        self._load_seen, self._seen = load_seen, None

    @classmethod
    def from_run(cls, run: str | Path, use_index: bool = True, device: str = "cpu") -> Recommender:
        """Load a run directory; ``use_index=False`` scores exactly even when an index was built.
        Exact scoring runs on ``device`` (``auto``: CUDA when present). Without faiss installed, a
        built index is left unused, with a note on stderr, and scoring is exact.

        Embedding files that are not the ones the run exported are refused (:class:`CbnsError`
        naming the file); a data file edited since training gets a note on stderr, since serving
        reads the run's own files (unless the seen items must be rebuilt from the data, which is
        then refused: :mod:`cbns.serve.seen_items`)."""
        from cbns.runs.run_dir import load_run_config
        from cbns.runs.source_record import changed_file, check_embeddings
        from cbns.serve.seen_items import seen_items

        run = Path(run)
        config = load_run_config(run)
        users, items = load_embeddings(run)
        check_embeddings(run, {"user_embeddings.npy": users, "item_embeddings.npy": items})
        changed = changed_file(run, config, missing=False)
        if changed is not None:  # serving reads the run's own files, so it still answers
            print(f"cbns: note: {changed}; serving the run as it was trained", file=sys.stderr)
        index = None
        if use_index and (run / INDEX_FILE).is_file() and not faiss_available():
            print(f"cbns: note: faiss is not installed, so {run / INDEX_FILE} is not used; scoring exactly",
                  file=sys.stderr)
        elif use_index:
            index = ItemIndex.load(run, items)
        return cls(users, items, IdMap.from_file(run / "user_ids.txt", len(users)),
                   IdMap.from_file(run / "item_ids.txt", len(items)), index,
                   lambda: seen_items(run, config, len(users), items),
                   prior_column=items.shape[1] == config.model.dim + 1,
                   device=device)

    @property
    def seen(self) -> sp.csr_matrix:
        """``[U, I]`` CSR: the train and validation items of each user."""
        if self._seen is None:
            if self._load_seen is None:
                raise CbnsError("exclude_seen needs the seen items, and this Recommender was built without them")
            self._seen = self._load_seen()
        return self._seen

    def recommend(self, user_ids: Iterable | object, k: int = 20, exclude_seen: bool = True) -> Ranked:
        """Top-``k`` items for each user in ``user_ids``: one original id or a list of them (a string
        is one id, never its characters). ``Ranked.queries`` and ``Ranked.ids`` hold the ids in the
        type the source had: ints for integer ids, strings for text ids (:class:`IdMap`).

        With ``exclude_seen`` a user's train and validation items are never returned, and each
        list still holds ``k`` items (fewer only when fewer than ``k`` unseen items exist).
        """
        return self.recommend_rows(self.user_map.to_rows(user_ids, "user"), k, exclude_seen)

    def recommend_rows(self, rows: np.ndarray, k: int = 20, exclude_seen: bool = True) -> Ranked:
        """:meth:`recommend` for internal user rows ``[Q]``."""
        _check_k(k)
        exclude = self.seen[rows] if exclude_seen else None
        scores, item_rows = self._top_k(self.users[rows], k, exclude)
        return self._ranked(self.user_map.to_ids(rows), scores, item_rows)

    def similar_items(self, item_ids: Iterable | object, k: int = 20) -> Ranked:
        """The ``k`` items whose vectors score highest against each given item's vector, itself
        excluded; ``item_ids`` is one original id or a list of them, as in :meth:`recommend`."""
        _check_k(k)
        rows = self.item_map.to_rows(item_ids, "item")
        itself = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), rows, np.arange(len(rows) + 1)),
                               shape=(len(rows), len(self.items)))
        queries = self.items[rows]
        if self.prior_column:
            queries = queries.copy()
            queries[:, -1] = 0.0
        scores, item_rows = self._top_k(queries, k, itself)
        return self._ranked(self.item_map.to_ids(rows), scores, item_rows)

    def _top_k(self, queries: np.ndarray, k: int, exclude: sp.csr_matrix | None) -> tuple[np.ndarray, np.ndarray]:
        if self.index is None and self.device is None:
            return numpy_top_k(queries, self.items, k, exclude)
        if self.index is None:
            import torch

            from cbns.ranking.topk import exact_top_k

            if self._items_on_device is None:
                self._items_on_device = torch.from_numpy(np.ascontiguousarray(self.items)).to(self.device)
            return exact_top_k(queries, self._items_on_device, k, exclude, device=self.device)
        return index_top_k(self.index, queries, self.items, k, exclude)

    def _ranked(self, queries: np.ndarray, scores: np.ndarray, rows: np.ndarray) -> Ranked:
        return Ranked(queries, self.item_map.to_ids(rows), rows, scores)


def _check_k(k: int) -> None:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise CbnsError(f"-k: must be an integer >= 1, got {k!r}")

