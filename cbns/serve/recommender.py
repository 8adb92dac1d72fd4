"""``Recommender``: top-K items for known users, for histories and attributes given at request
time (through a :class:`cbns.serve.user_encoder.UserEncoder`), and similar items, from a run directory.

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

from cbns.errors import CbnsError, UnknownIdError
from cbns.ranking.filtered_search import index_top_k
from cbns.ranking.item_index import INDEX_FILE, ItemIndex, faiss_available
from cbns.ranking.numpy_topk import numpy_top_k
from cbns.serve.embeddings import load_embeddings
from cbns.serve.id_map import IdMap
from cbns.serve.query_kinds import cannot_answer
from cbns.serve.ranked import Ranked
from cbns.serve.user_encoder import UserEncoder, encoder_from_run


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
        user_encoder: encodes histories and/or attributes at request time (its ``kinds``), or
            None: only trained users by id.
    """

    def __init__(self, users: np.ndarray, items: np.ndarray, user_map: IdMap, item_map: IdMap,
                 index: ItemIndex | None = None, load_seen: Callable[[], sp.csr_matrix] | None = None,
                 prior_column: bool = False, device: str | None = "cpu", user_encoder: UserEncoder | None = None):
        self.users, self.items = users, items
        self.user_encoder = user_encoder
        if device is not None:
            from cbns.machine import resolve_device

            device = resolve_device(device)
        self.device = device
        self._items_on_device = self._padded_items = None
        self.prior_column = prior_column
        self.user_map, self.item_map = user_map, item_map
        self.index = index
        self._load_seen, self._seen = load_seen, None

    @classmethod
    def from_run(cls, run: str | Path, use_index: bool = True, device: str = "cpu",
                 user_encoder: UserEncoder | None | str = "auto") -> Recommender:
        """Load a run directory; ``use_index=False`` scores exactly even when an index was built.
        ``user_encoder="auto"`` answers history and attribute queries as the run's user tower can
        (:func:`cbns.serve.user_encoder.encoder_from_run`; its model file is read on the first
        such query); None answers trained users only; or give an encoder.
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
        if isinstance(user_encoder, str):
            if user_encoder != "auto":
                raise CbnsError(f"user_encoder: 'auto', None or an encoder, got {user_encoder!r}")
            user_encoder = encoder_from_run(run, items, device)
        return cls(users, items, IdMap.from_file(run / "user_ids.txt", len(users)),
                   IdMap.from_file(run / "item_ids.txt", len(items)), index,
                   lambda: seen_items(run, config, len(users), items),
                   prior_column=items.shape[1] == config.model.dim + 1,
                   device=device, user_encoder=user_encoder)

    @property
    def query_kinds(self) -> frozenset[str]:
        """What this recommender answers: ``user`` (trained users by id) and the encoder's kinds
        (``history``, ``features``)."""
        return frozenset({"user"}) | (self.user_encoder.kinds if self.user_encoder is not None else frozenset())

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

    def recommend_history(self, histories: Iterable[Iterable], k: int = 20, exclude_seen: bool = True) -> Ranked:
        """Top-``k`` items for each history in ``histories``: a list of original item ids per
        query, oldest first (the order matters to a GRU tower; a history longer than the run's
        ``max_history`` is cut to its newest items, as training cut it). The user vector comes
        from the run's user tower, or a fold-in for an ID tower (:mod:`cbns.serve.fold_in`).

        With ``exclude_seen`` a query's own items are never returned. ``Ranked.queries`` holds
        each history as its list of ids. An unknown item id is an
        :class:`cbns.errors.UnknownIdError`; an empty history or a run that cannot encode
        histories a :class:`CbnsError`.
        """
        _check_k(k)
        self._require("history")
        lists = [list(h) if not isinstance(h, (str, bytes)) else [h] for h in histories]
        for q, ids in enumerate(lists):
            if not ids:
                raise CbnsError(f"history {q}: empty; a history query needs at least one item id")
        rows = []
        for q, ids in enumerate(lists):
            try:
                rows.append(self.item_map.to_rows(ids, "item"))
            except UnknownIdError as exc:  # say which query, when several are asked at once
                raise UnknownIdError(f"history {q}: {exc}") from None
        vectors = self.user_encoder.encode_history(rows)
        exclude = None
        if exclude_seen:
            flat = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
            indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
            exclude = sp.csr_matrix((np.ones(len(flat), dtype=np.float32), flat, indptr),
                                    shape=(len(rows), len(self.items)))
            exclude.sum_duplicates()
        scores, item_rows = self._top_k(vectors, k, exclude)
        return self._ranked(_objects([self.item_map.to_ids(r).tolist() for r in rows]), scores, item_rows)

    def recommend_features(self, features: Iterable[dict], k: int = 20) -> Ranked:
        """Top-``k`` items for each mapping of user attribute names to raw values (a list of
        values for a multi-valued attribute; an attribute left out counts as missing), encoded
        by the run's feature user tower. ``Ranked.queries`` holds the mappings. An attribute
        name the run does not have is a :class:`CbnsError`, a value no training user had an
        :class:`cbns.errors.UnknownIdError`."""
        _check_k(k)
        self._require("features")
        rows = [features] if isinstance(features, dict) else list(features)
        vectors = self.user_encoder.encode_features(rows)
        scores, item_rows = self._top_k(vectors, k, None)
        return self._ranked(_objects(rows), scores, item_rows)

    def _require(self, kind: str) -> None:
        if kind not in self.query_kinds:
            why = "" if self.user_encoder is not None else " (no user encoder: trained users only)"
            raise cannot_answer(kind, self.query_kinds, why)

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

            from cbns.ranking.topk import exact_top_k, padded_items

            if self._items_on_device is None:  # laid out once: a query of one user must not copy the catalog
                self._items_on_device = torch.from_numpy(np.ascontiguousarray(self.items)).to(self.device)
                self._padded_items = padded_items(self._items_on_device)
            return exact_top_k(queries, self._items_on_device, k, exclude, device=self.device,
                               padded=self._padded_items)
        return index_top_k(self.index, queries, self.items, k, exclude)

    def _ranked(self, queries: np.ndarray, scores: np.ndarray, rows: np.ndarray) -> Ranked:
        return Ranked(queries, self.item_map.to_ids(rows), rows, scores)


def _objects(values: list) -> np.ndarray:
    """``[Q]`` object array holding each value as it is (lists and dicts stay whole)."""
    out = np.empty(len(values), dtype=object)
    for q, value in enumerate(values):
        out[q] = value
    return out


def _check_k(k: int) -> None:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise CbnsError(f"-k: must be an integer >= 1, got {k!r}")

