"""No sampling: every item of the catalogue is a negative (the exact softmax)."""
from __future__ import annotations

import numpy as np

from cbns.negatives.base import NegativeSampler
from cbns.registry import SAMPLERS


@SAMPLERS.register("full")
class FullSoftmax(NegativeSampler):
    """Every item is a column of every row's softmax; no log q (nothing is drawn): the objective the
    sampled softmaxes estimate, the reference row of the sampler tables. Not a ceiling of the
    retrieval metrics: on MovieLens-100k CBNS ranks better than it (BENCHMARKS.md, "The recipe").
    Trained by :class:`cbns.objective.full_softmax_loss.FullSoftmaxLoss`."""

    summary = "every item a negative: the exact softmax (the objective the samplers estimate)"

    @classmethod
    def objective_from_config(cls, config, item_counts: np.ndarray):
        from cbns.objective.full_softmax_loss import FullSoftmaxLoss

        return FullSoftmaxLoss.from_config(config, item_counts)

    @classmethod
    def negatives_per_row(cls, batch_size: int, config) -> None:
        """Every item but the row's positive: the catalogue's size, which a config does not know."""
        return None
