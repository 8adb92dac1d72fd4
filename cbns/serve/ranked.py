"""The answer of a recommendation query: top-K lists for several queries, padded to one width."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cbns.errors import CbnsError


@dataclass
class Ranked:
    """Top-K lists for ``Q`` queries (users, or items for similar items), best first.

    Attributes:
        queries: ``[Q]`` object array of the query ids (original ids, as the run spells them).
        ids: ``[Q, K]`` object array of original item ids; ``None`` in padding slots.
        rows: ``[Q, K]`` int64 internal item rows; ``-1`` in padding slots.
        scores: ``[Q, K]`` float32 dot-product scores; ``-inf`` in padding slots.

    A list is shorter than ``K`` only when fewer than ``K`` items are left to recommend (e.g. a
    user has seen all but a few items); its padding sits at the end of the row.
    """

    queries: np.ndarray
    ids: np.ndarray
    rows: np.ndarray
    scores: np.ndarray

    @property
    def counts(self) -> np.ndarray:
        """``[Q]`` int: the real (unpadded) length of each list."""
        return (self.rows >= 0).sum(axis=1)

    def lists(self) -> list[list[tuple[object, float]]]:
        """One ``[(item id, score), ...]`` list per query, padding dropped."""
        return [[(i, float(s)) for i, s, r in zip(ids, scores, rows) if r >= 0]
                for ids, scores, rows in zip(self.ids, self.scores, self.rows)]

    def to_json(self, query_key: str = "user") -> list[dict]:
        """``[{query_key: id, "items": [{"item": id, "score": s}, ...]}, ...]`` for ``json.dumps``;
        :class:`CbnsError` for a score JSON cannot hold (finite vectors whose product overflows)."""
        real = self.rows >= 0
        if not np.isfinite(self.scores[real]).all():
            q, k = np.argwhere(real & ~np.isfinite(self.scores))[0]
            raise CbnsError(f"the score of item {self.ids[q, k]!r} for {query_key} {self.queries[q]!r} is "
                            f"{self.scores[q, k]}: the embeddings overflow float32; JSON cannot hold it")
        return [{query_key: _plain(q), "items": [{"item": _plain(i), "score": round(s, 6)} for i, s in pairs]}
                for q, pairs in zip(self.queries, self.lists())]


def _plain(value):
    """A JSON-serialisable scalar (numpy ints and strings become Python ones)."""
    return value.item() if isinstance(value, np.generic) else value
