"""The batched scoring behind the HTTP service: one :class:`cbns.serve.recommender.Recommender`
call per batch of requests of one kind.

A batch key is ``("user", k, exclude_seen)``, ``("history", k, exclude_seen)``, ``("features", k)``
or ``("similar", k)``; the payloads of a batch are what that kind's Recommender method takes for
one query (a user's internal row, a history of item ids, an attribute dict, an item id). The
answer of each query is its list of ``{"item": id, "score": s}``, best first.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from cbns.errors import CbnsError


def batch_scorer(recommender):
    """``score(key, payloads) -> [items list per payload]`` over ``recommender`` (see the module)."""

    def score(key: Hashable, payloads: Sequence[object]) -> list[list[dict]]:
        kind, k = key[0], key[1]
        if kind == "user":
            ranked = recommender.recommend_rows(np.asarray(payloads, dtype=np.int64), k, key[2])
        elif kind == "history":
            ranked = recommender.recommend_history([list(h) for h in payloads], k, key[2])
        elif kind == "features":
            ranked = recommender.recommend_features(list(payloads), k)
        elif kind == "similar":
            ranked = recommender.similar_items(list(payloads), k)
        else:
            raise CbnsError(f"unknown query kind {kind!r}")
        return [entry["items"] for entry in ranked.to_json("query")]

    return score
