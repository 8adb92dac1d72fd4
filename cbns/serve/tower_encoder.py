"""The run's own user tower, rebuilt from ``model.pt`` and applied at request time.

Only the user tower is rebuilt (from the config and the ``user_tower.*`` entries of the saved
state): the item side is the run's exported ``item_embeddings.npy``, which the tower's output is
scored against. Histories are cut to the newest ``max_history`` items, as training and the
export cut them, so a user's own history as of the test gives back that user's stored row.

Attributes: the code tables of a tower's :class:`cbns.model.towers.feature_encoder.FeatureEncoder`
come from the data, not the checkpoint (non-persistent buffers). A query's codes are put in their
place for the call (under a lock, so concurrent callers do not see each other's), so the tower's
own forward computes the vector. A history query carries no attributes: a pooled tower that reads
them sees every column missing (code 0, as training saw a user without the attribute).
"""
from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cbns.config import TrainConfig
from cbns.data.features import FeatureColumn, FeatureTable
from cbns.data.history import HISTORY, HISTORY_LENGTH
from cbns.errors import CbnsError
from cbns.machine import resolve_device
from cbns.registry import USER_TOWERS
from cbns.runs.feature_vocabulary import FeatureVocabulary
from cbns.runs.model_file import read_model_file
from cbns.serve.query_kinds import cannot_answer, tower_kinds

#: Queries encoded per tower call (bounds the padded history tensor).
CHUNK = 4096


class TowerUserEncoder:
    """User vectors from the run's pooled, GRU or feature user tower (see the module docstring).

    Args:
        run: the run directory (``model.pt`` and, for attributes, ``user_features.json``).
        config: its configuration; extra_column: append the column of ones the run's vectors
            carry for the per-item ranking term; device: where the tower runs.

    ``model.pt`` is read on the first query, so building one costs nothing until it is used.
    """

    def __init__(self, run: Path, config: TrainConfig, extra_column: bool, device: str = "cpu"):
        self.run, self.config, self.extra_column = Path(run), config, extra_column
        self.name = config.model.user_tower
        self.kinds = tower_kinds(self.name)
        self.device = resolve_device(device)
        self._tower, self._vocabulary = None, None
        self._lock = threading.Lock()

    @property
    def tower(self) -> torch.nn.Module:
        """The user tower with the run's weights, in eval mode (read once)."""
        with self._lock:
            if self._tower is None:
                self._tower = self._build()
        return self._tower

    def encode_history(self, histories: list[np.ndarray]) -> np.ndarray:
        """``[Q, D']`` float32 from ``Q`` histories of item rows (oldest first, each non-empty)."""
        if "history" not in self.kinds:
            raise cannot_answer("history", {"user", *self.kinds}, f" (its user tower is {self.name!r})")
        tower, limit = self.tower, self.config.model.max_history
        parts = []
        for start in range(0, len(histories), CHUNK):
            chunk = [np.asarray(h, dtype=np.int64)[-limit:] for h in histories[start:start + CHUNK]]
            lengths = np.array([len(h) for h in chunk], dtype=np.int64)
            padded = np.zeros((len(chunk), max(1, int(lengths.max(initial=0)))), dtype=np.int64)
            for q, h in enumerate(chunk):
                padded[q, :len(h)] = h
            context = {HISTORY: torch.from_numpy(padded).to(self.device),
                       HISTORY_LENGTH: torch.from_numpy(lengths).to(self.device)}
            codes = None if getattr(tower, "features", None) is None else \
                [np.zeros((len(chunk), 1), dtype=np.int64)] * tower.features.num_columns  # attributes missing
            parts.append(self._call(tower, codes, lambda ids: tower(ids, context), len(chunk)))
        return self._finish(torch.cat(parts) if parts else torch.zeros(0, self.config.model.dim))

    def encode_features(self, rows: list[dict[str, object]]) -> np.ndarray:
        """``[Q, D']`` float32 from raw attribute values (:meth:`FeatureVocabulary.codes`).

        The feature tower's input includes the user's id embedding, which a new user does not
        have: the mean of the trained users' id rows stands in (the input an average user gives
        the MLP), so the attributes decide where the vector moves from there.
        """
        if "features" not in self.kinds:
            raise cannot_answer("features", {"user", *self.kinds}, f" (its user tower is {self.name!r})")
        tower = self.tower
        codes = self.vocabulary.codes(rows)
        mean_id = tower.embedding.weight.detach().mean(0)

        def forward(ids):
            return tower.mlp(torch.cat([mean_id.expand(len(ids), -1), tower.features(ids)], dim=-1))
        return self._finish(self._call(tower, codes, forward, len(rows)))

    @property
    def vocabulary(self) -> FeatureVocabulary:
        """The raw values of each attribute code: the run's ``user_features.json``, or for a run
        saved without it, rebuilt from the dataset its config names (a note on stderr)."""
        if self._vocabulary is None:
            vocabulary = FeatureVocabulary.read(self.run)
            if vocabulary is None:
                from cbns.data.loading import load_data
                from cbns.runs.source_record import check_data

                print(f"cbns: note: {self.run} has no user_features.json; reading the attribute values from "
                      f"the dataset {self.config.data.source}", file=sys.stderr)
                check_data(self.run, self.config)
                table = load_data(self.config).user_features
                if table is None or any(c.values is None for c in table.columns):
                    raise CbnsError(f"{self.run}: the dataset gives no attribute values to read a features query by")
                vocabulary = FeatureVocabulary.from_table(table, f"the dataset {self.config.data.source}")
            bags = self.tower.features.bags
            sizes = [len(col["values"]) + 1 for col in vocabulary.columns]
            saved = [bag.num_embeddings for bag in bags]
            if sizes != saved:
                raise CbnsError(f"{vocabulary.source}: attribute vocabularies of {sizes} codes, but the model file's "
                                f"tables have {saved}; the run directory is inconsistent")
            self._vocabulary = vocabulary
        return self._vocabulary

    def _call(self, tower, codes: list[np.ndarray] | None, forward, count: int) -> torch.Tensor:
        """``forward(ids)`` with ids ``0..count-1`` and, when given, ``codes`` (one ``[count, L]``
        array per attribute column) as the tower's code tables for the call."""
        ids = torch.arange(count, device=self.device)
        with self._lock, torch.no_grad():
            if codes is None:
                return forward(ids)
            features = tower.features
            kept = [getattr(features, f"codes_{k}") for k in range(features.num_columns)]
            try:
                for k, column in enumerate(codes):
                    setattr(features, f"codes_{k}", torch.from_numpy(column).to(self.device))
                return forward(ids)
            finally:
                for k, table in enumerate(kept):
                    setattr(features, f"codes_{k}", table)

    def _finish(self, vectors: torch.Tensor) -> np.ndarray:
        """Normalised as the run's vectors are, with their column of ones when they have one."""
        if self.config.model.normalize:
            vectors = F.normalize(vectors, dim=-1)
        out = vectors.detach().cpu().numpy().astype(np.float32)
        if self.extra_column:
            out = np.concatenate([out, np.ones((len(out), 1), dtype=np.float32)], axis=1)
        return np.ascontiguousarray(out)

    def _build(self) -> torch.nn.Module:
        import cbns.model.towers  # noqa: F401  (registers the built-in towers)

        payload = read_model_file(self.run)
        state = {k[len("user_tower."):]: v for k, v in payload["model"].items() if k.startswith("user_tower.")}
        table = _placeholder_table(state)
        try:
            tower = USER_TOWERS.get(self.name).from_config(self.config.model, "user", int(payload["num_users"]),
                                                            int(payload["num_items"]), table)
            tower.load_state_dict(state)
        except (RuntimeError, KeyError) as exc:
            raise CbnsError(f"{self.run}: the model file does not hold the {self.name!r} user tower its config "
                            f"names ({type(exc).__name__}); the run directory is inconsistent") from None
        return tower.eval().to(self.device)


def _placeholder_table(state: dict) -> FeatureTable | None:
    """A one-row attribute table shaped like the tower's saved code embeddings (vocabulary sizes
    from ``features.bags.<k>.weight``), so the tower can be built without the data; the codes
    themselves are put in per query."""
    sizes = []
    while f"features.bags.{len(sizes)}.weight" in state:
        sizes.append(state[f"features.bags.{len(sizes)}.weight"].shape[0])
    if not sizes:
        return None
    return FeatureTable(1, [FeatureColumn(f"column{k}", np.zeros((1, 1), dtype=np.int64), size)
                            for k, size in enumerate(sizes)])
