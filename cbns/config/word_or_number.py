"""The options that take a word or a number, parsed in one place so that checking a config needs
neither the data readers nor the model: ``min_rating`` (read by :mod:`cbns.data.read_options`)
and ``popularity_prior`` (used by :mod:`cbns.model.popularity_prior`)."""
from __future__ import annotations

import math

#: The largest beta a user may fix. At 100 the prior already outweighs any cosine score / T a
#: thousand times over (log(1 + count) >= 0.69 for a seen item), so the ranking is popularity
#: alone; larger values change nothing but overflow float32 (1e100 ranks every item at inf).
PRIOR_MAX = 100.0


def parse_min_rating(value: str) -> float | None:
    """``off`` -> None (every row is kept); else a finite number; ValueError otherwise."""
    text = str(value).strip().lower()
    if text == "off":
        return None
    number = float(text)  # ValueError for anything else
    if not math.isfinite(number):
        raise ValueError(f"must be off or a finite number, got {value}")
    return number


def parse_prior(value: str) -> float | None:
    """``auto`` -> None (choose on validation), ``off`` -> 0, else a number in ``[0, PRIOR_MAX]``;
    ValueError (its message the detail) otherwise."""
    text = str(value).strip().lower()
    if text == "auto":
        return None
    if text == "off":
        return 0.0
    try:
        beta = float(text)
    except ValueError:
        raise ValueError(f"must be auto, off or a number in [0, {PRIOR_MAX:g}], got {value!r}") from None
    if not 0 <= beta <= PRIOR_MAX:  # NaN fails both
        raise ValueError(f"must be auto, off or a number in [0, {PRIOR_MAX:g}] (at {PRIOR_MAX:g} the ranking is "
                         f"popularity alone), got {value!r}")
    return beta
