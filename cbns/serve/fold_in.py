"""Fold-in: a user vector for an ID user tower from a history, against the run's fixed item vectors.

An ID tower is a table with one row per trained user, so it has nothing to apply to a new
history. Fold-in fits a fresh row instead: the vector ``u`` that makes the history likely under
the model the run trained, a softmax over every item with the run's temperature ``T``::

    log p(i | u) = (u . v_i + b_i) / T - log sum_j exp((u . v_j + b_j) / T)

``v_i`` is item i's vector and ``b_i`` its ranking term (the learned bias and the popularity
prior: the last column of a run's vectors when they are ``D + 1`` wide). ``u`` starts at the mean
of the history's item vectors (``steps = 0`` returns that mean alone) and takes ``steps`` gradient
ascent steps of size ``lr`` on the mean log-likelihood of the history; the gradient is
``(mean_h v_h - sum_j p(j | u) v_j) / T``. When the run scores by cosine, ``u`` is put back on the
unit sphere after every step, as the stored rows are. Item vectors stay fixed: folding in one user
never changes what other users get.

The defaults were chosen on validation users (``benchmarks/fold_in_recall.py``;
docs/serving.md gives the figures and the command). numpy only: an exported bundle folds in
without torch.
"""
from __future__ import annotations

import numpy as np

from cbns.serve.query_kinds import cannot_answer

#: Gradient steps and step size of :func:`fold_in` unless given (chosen on validation users).
DEFAULT_STEPS = 20
DEFAULT_LR = 0.05
#: Queries folded in together (bounds the ``[chunk, I]`` score matrix).
CHUNK = 256


def fold_in(items: np.ndarray, histories: list[np.ndarray], temperature: float, normalize: bool = True,
            extra_column: bool = False, steps: int = DEFAULT_STEPS, lr: float = DEFAULT_LR,
            start: np.ndarray | None = None) -> np.ndarray:
    """``[Q, D']`` float32 user vectors for ``Q`` histories (``[n_q]`` int item rows, n_q >= 1;
    repeats count as often as they occur) against ``items [I, D']`` (see the module docstring).

    With ``extra_column`` the last column of ``items`` is the ranking term ``b`` and the returned
    vectors end in a column of ones, as a run's stored user rows do. ``start`` (``[Q, D']``, as
    returned) continues from earlier vectors instead of the history's mean, so ``steps`` more
    steps after ``n`` give what ``n + steps`` steps give (a sweep over ``steps`` walks once).
    """
    if steps < 0 or lr < 0 or temperature <= 0:
        raise ValueError(f"fold_in: steps and lr must be >= 0 and temperature > 0, got {steps}, {lr}, {temperature}")
    items = np.asarray(items, dtype=np.float32)
    vectors = items[:, :-1] if extra_column else items
    bias = items[:, -1] if extra_column else np.zeros(len(items), dtype=np.float32)
    out = np.empty((len(histories), vectors.shape[1]), dtype=np.float32)
    for begin in range(0, len(histories), CHUNK):
        chunk = [np.asarray(h, dtype=np.int64) for h in histories[begin:begin + CHUNK]]
        target = np.stack([vectors[h].mean(0) for h in chunk]) if chunk else np.zeros((0, vectors.shape[1]))
        if start is not None:
            users = np.array(start[begin:begin + len(chunk), :vectors.shape[1]], dtype=np.float32)
        else:
            users = _unit(target) if normalize else target.copy()
        for _ in range(steps):
            logits = (users @ vectors.T + bias) / temperature                    # [q, I]
            logits -= logits.max(axis=1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(axis=1, keepdims=True)
            users = users + lr * (target - p @ vectors) / temperature
            if normalize:
                users = _unit(users)
        out[begin:begin + len(chunk)] = users
    if extra_column:
        out = np.concatenate([out, np.ones((len(out), 1), dtype=np.float32)], axis=1)
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class FoldInEncoder:
    """The :class:`cbns.serve.user_encoder.UserEncoder` of a run with an ID user tower: history
    queries by :func:`fold_in` over the run's item vectors ``items [I, D']``."""

    kinds = frozenset({"history"})

    def __init__(self, items: np.ndarray, temperature: float, normalize: bool = True, extra_column: bool = False,
                 steps: int = DEFAULT_STEPS, lr: float = DEFAULT_LR):
        self.items, self.temperature, self.normalize = items, temperature, normalize
        self.extra_column, self.steps, self.lr = extra_column, steps, lr

    def encode_history(self, histories: list[np.ndarray]) -> np.ndarray:
        return fold_in(self.items, histories, self.temperature, self.normalize, self.extra_column,
                       self.steps, self.lr)

    def encode_features(self, rows: list[dict[str, object]]) -> np.ndarray:
        raise cannot_answer("features", {"user", "history"}, " (its user tower is 'id': a table of trained users)")
