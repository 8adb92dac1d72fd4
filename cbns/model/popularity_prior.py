"""A popularity prior added to the ranking score, its strength chosen on validation.

With cosine scores the model cannot give an item a vector length, so it cannot say "this item is
popular with everyone" except through direction, and its full-ranking lists under-rank popular
items (measured on Gowalla; see the README). The prior adds it back at ranking time only:

    rank(u, i) = s(u, i) / T + beta * log(1 + count(i))

i.e. the model's softmax probability multiplied by ``count(i) ** beta``. Training is unchanged.
``beta`` is fixed by the user or chosen on the validation split after training (``auto``), from
:data:`PRIOR_GRID` (in one process the whole grid is ranked from one score product per user
chunk: :func:`cbns.evaluation.ranking.full_ranking_columns`). In dot-product units (what the
exported vectors carry) the added score is ``T * beta * log(1 + count(i))``: the item vectors get
it as one more column and the user vectors a column of ones, so ``user . item`` stays the ranking
score.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from cbns.config.word_or_number import PRIOR_MAX, parse_prior  # noqa: F401 (read here by the trainer)

#: The values of beta that ``auto`` tries, on the validation split.
PRIOR_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0)


def prior_column(counts: np.ndarray, beta: float, temperature: float) -> torch.Tensor:
    """``[I]`` float32: the prior in dot-product units, ``T * beta * log(1 + count)``."""
    return torch.from_numpy(temperature * beta * np.log1p(np.asarray(counts, dtype=np.float64))).float()


def choose_prior(score_with: Callable[[float], float], grid=PRIOR_GRID) -> tuple[float, dict[float, float]]:
    """The beta of ``grid`` with the highest ``score_with(beta)`` (a validation metric), the
    smallest on ties; and every score tried."""
    scores = {beta: score_with(beta) for beta in grid}
    best = max(scores.values())
    return min(b for b, s in scores.items() if s == best), scores


def strip_prior(items: np.ndarray, counts: np.ndarray, beta: float, temperature: float) -> np.ndarray:
    """Exported item vectors ``[I, D + 1]`` with the prior of strength ``beta`` taken out of their
    last column (what stays there is the learned item bias, or zeros); unchanged when ``beta`` is 0."""
    if beta <= 0:
        return items
    items = items.copy()
    items[:, -1] -= prior_column(counts, beta, temperature).numpy()
    return items
