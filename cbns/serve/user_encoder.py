"""Encoding a user at request time: the protocol a :class:`cbns.serve.Recommender` queries, and
the choice of encoder for a run directory.

A stored user row answers only for users the run was trained on, as they were at the test. The
user tower answers for anyone: a history of item rows (pooled and GRU towers), raw attribute
values (the feature tower). An ID tower has no function to apply, so a history is folded in
against the run's fixed item vectors instead (:mod:`cbns.serve.fold_in`).

Every encoder returns vectors in the space of the run's ``user_embeddings.npy``: normalised when
the run scores by cosine, with the trailing column of ones when the run's vectors carry the
per-item ranking term (``[Q, D + 1]``), so ``vector . items.T`` is the ranking score.

This module imports no torch: the torch encoder (:mod:`cbns.serve.tower_encoder`) is imported
only when a run that needs it is asked a question.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from cbns.serve.query_kinds import tower_kinds


@runtime_checkable
class UserEncoder(Protocol):
    """Request-time user vectors.

    ``kinds`` is a subset of ``{"history", "features"}``: the questions it answers.
    ``encode_history(histories)``: each ``[n_q]`` int64 array holds the internal item rows of one
    query, oldest first (``n_q >= 1``); returns ``[Q, D']`` float32.
    ``encode_features(rows)``: raw attribute values by attribute name, one mapping per query;
    returns ``[Q, D']`` float32. A kind not in ``kinds`` raises :class:`CbnsError`.
    """

    kinds: frozenset[str]

    def encode_history(self, histories: list[np.ndarray]) -> np.ndarray: ...

    def encode_features(self, rows: list[dict[str, object]]) -> np.ndarray: ...


def encoder_from_run(run: Path, items: np.ndarray, device: str = "cpu") -> UserEncoder | None:
    """The encoder of run directory ``run`` (item vectors ``items [I, D']``), or None when its
    user tower was built in Python (``cbns.train(user_tower=...)``: the model file cannot be
    rebuilt from the config) or is one this module does not know.

    Pooled, GRU and feature towers: :class:`cbns.serve.tower_encoder.TowerUserEncoder`, which
    reads ``model.pt`` on its first query (a ``--user`` query never pays for it). ID towers:
    :class:`cbns.serve.fold_in.FoldInEncoder` over ``items``, numpy only.
    """
    from cbns.runs.run_dir import load_run_config

    run = Path(run)
    config = load_run_config(run)
    if _custom_user_tower(run):
        return None
    name = config.model.user_tower
    extra_column = items.shape[1] == config.model.dim + 1
    if name == "id":
        from cbns.serve.fold_in import FoldInEncoder

        return FoldInEncoder(items, temperature=config.loss.temperature, normalize=config.model.normalize,
                             extra_column=extra_column)
    if not tower_kinds(name):
        return None
    from cbns.serve.tower_encoder import TowerUserEncoder

    return TowerUserEncoder(run, config, extra_column, device)


def _custom_user_tower(run: Path) -> bool:
    """Whether ``metrics.json`` records a user tower built in Python (``"custom: Class"``)."""
    try:
        towers = json.loads((run / "metrics.json").read_text(encoding="utf-8")).get("towers") or {}
    except (OSError, ValueError):
        return False
    return str(towers.get("user", "")).startswith("custom")
