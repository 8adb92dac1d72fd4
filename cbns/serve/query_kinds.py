"""The kinds of query a recommender answers, and the error for one it cannot."""
from __future__ import annotations

from cbns.errors import CbnsError

#: The query kinds a :class:`cbns.serve.Recommender` may answer, in the order messages list them.
QUERY_KINDS = ("user", "history", "features")


def cannot_answer(kind: str, kinds: frozenset[str] | set[str], why: str = "") -> CbnsError:
    """The error for a ``kind`` query to a model that answers ``kinds`` only."""
    listed = ", ".join(k for k in QUERY_KINDS if k in kinds) or "nothing"
    return CbnsError(f"this run cannot answer a {kind} query{why}; it answers: {listed}")


def tower_kinds(user_tower: str) -> frozenset[str]:
    """The request-time query kinds a registered user tower answers (beyond stored users)."""
    return {"id": frozenset({"history"}), "pooled": frozenset({"history"}), "gru": frozenset({"history"}),
            "features": frozenset({"features"})}.get(user_tower, frozenset())
