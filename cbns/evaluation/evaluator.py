"""Validation and the test of a training run: which users, which ranking, and what metrics.json says of them."""
from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch

from cbns.config import TrainConfig
from cbns.data.interactions import Interactions
from cbns.distributed.context import DistContext
from cbns.evaluation.sharded import evaluate_sharded
from cbns.evaluation.user_sample import sample_users, users_with_items
from cbns.model.two_tower import TwoTower


class Evaluator:
    """Ranks ``valid`` or ``test`` for a model under training, as ``config`` says.

    Each part is averaged over a seeded sample of its users (``config.evaluation.eval_users`` for ``valid``,
    seed ``config.training.seed + 4``; ``config.evaluation.test_users`` for ``test``, seed
    ``config.training.seed + 5``; every
    user with held-out items when the sample is 0 or covers them all). Ranking is exact, sharded
    over the ranks of ``ctx`` (:func:`cbns.evaluation.sharded.evaluate_sharded`); validation with
    ``config.evaluation.eval_index`` other than ``exact`` takes the top-K from an item index instead
    (:func:`cbns.evaluation.index_eval.validate_with_index`; faiss, imported only then), and its
    first such validation also measures the index's recall against exact ranking of the same
    users (:attr:`index_info`).

    ``contexts`` (a :class:`cbns.data.history.HistoryContext`) gives history user towers their
    histories as of each part. ``settle`` is called before every evaluation, so the tables'
    rows are up to the current step when they are read whole (row-wise Adam's catch-up:
    :meth:`cbns.training.trainer.Trainer.settle`).
    """

    def __init__(self, config: TrainConfig, data: Interactions, contexts=None, ctx: DistContext | None = None,
                 settle: Callable[[], None] | None = None):
        self.config, self.data, self.contexts = config, data, contexts
        self.ctx = ctx or DistContext()
        self.settle = settle or (lambda: None)
        has_valid = len(data.valid) > 0
        #: the users each part averages over (None: all of them)
        self.users: dict[str, np.ndarray | None] = {
            "valid": sample_users(data.matrix("valid"), config.evaluation.eval_users, config.training.seed + 4)
            if has_valid else None,
            "test": sample_users(data.matrix("test"), config.evaluation.test_users, config.training.seed + 5)}
        #: the item index of the last index-validated run: its build and search seconds, and
        #: (measured once) its recall against exact ranking; None with exact validation
        self.index_info: dict | None = None

    def context(self, part: str) -> Mapping[str, torch.Tensor] | None:
        """The user tower's context for scoring ``part`` (None for towers without a history)."""
        return self.contexts.for_users(part) if self.contexts is not None else None

    def evaluate(self, model: TwoTower, part: str) -> dict[str, float]:
        """Metrics of ``part`` (``valid`` or ``test``) for ``model`` over the part's users."""
        cfg = self.config
        self.settle()
        context = self.context(part)
        users = self.users[part]
        if part == "valid" and cfg.evaluation.eval_index != "exact":
            from cbns.evaluation.index_eval import validate_with_index  # faiss, imported only when used
            from cbns.ranking.index_spec import IndexSpec

            metrics, self.index_info = validate_with_index(
                model, self.data, part, cfg.evaluation.ks, IndexSpec(cfg.evaluation.eval_index), users, context,
                compare_exact=self.index_info is None)
            return metrics
        return evaluate_sharded(model, self.data, part, cfg.evaluation.ks, self.ctx, user_context=context, users=users)

    def summary(self) -> dict:
        """How validation and the test were ranked and over how many users, for ``metrics.json``."""
        cfg, summary = self.config, {}
        for part, seed in (("valid", cfg.training.seed + 4), ("test", cfg.training.seed + 5)):
            if part == "valid" and not len(self.data.valid):
                continue
            sample, total = self.users[part], users_with_items(self.data.matrix(part))
            summary[part] = {"users": total if sample is None else len(sample), "of": total,
                             "sample_seed": seed if sample is not None else None}
        if "valid" in summary:
            summary["valid"]["ranking"] = cfg.evaluation.eval_index
        return summary
