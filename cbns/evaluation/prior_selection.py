"""The popularity prior a trained model ranks with: fixed by the config, or chosen on validation.

``auto`` trains with no prior; once training is over (the best weights restored), every beta of
:data:`cbns.model.popularity_prior.PRIOR_GRID` is validated and the one with the best Recall@K
(K = the first cut-off) is kept, the smallest on ties. In one process, with exact ranking of up
to :data:`cbns.ranking.topk.ITEM_BLOCK` items, the whole grid is ranked from one score product
per user chunk (:func:`cbns.evaluation.ranking.full_ranking_columns`); elsewhere one beta at a
time, through :meth:`cbns.evaluation.evaluator.Evaluator.evaluate`.
"""
from __future__ import annotations

from tqdm.auto import tqdm

from cbns.config import TrainConfig
from cbns.data.interactions import Interactions
from cbns.evaluation.evaluator import Evaluator
from cbns.evaluation.ranking import full_ranking_columns, ranking_matrices, scoring_vectors
from cbns.model.popularity_prior import PRIOR_GRID, choose_prior, parse_prior, prior_column
from cbns.model.two_tower import TwoTower
from cbns.ranking.topk import ITEM_BLOCK


def set_prior(model: TwoTower, data: Interactions, config: TrainConfig, beta: float) -> None:
    """Rank with the popularity prior of strength ``beta`` (0: none); see :mod:`cbns.model.popularity_prior`."""
    model.set_prior(prior_column(data.item_counts(), beta, config.loss.temperature))


def select_prior(model: TwoTower, data: Interactions, config: TrainConfig, evaluator: Evaluator,
                 best_valid: dict[str, float], verbose: bool = False) -> tuple[dict, dict[str, float]]:
    """``(prior, valid)``: the prior record of ``metrics.json`` and the validation metrics under it;
    ``model`` is left ranking with that prior.

    ``best_valid`` holds the validation metrics of the weights ``model`` has now (the best epoch,
    validated with no prior under ``auto``), ``{}`` when none was validated; it is what ``valid``
    is when the prior is fixed or there is no validation split. The record is ``{"beta",
    "chosen_on"}``, and under ``auto`` the validation Recall@K of every beta tried.
    """
    key = f"recall@{config.evaluation.ks[0]}"
    beta = parse_prior(config.evaluation.popularity_prior)
    if beta is not None:
        return {"beta": beta, "chosen_on": "fixed by popularity_prior"}, best_valid
    if not len(data.valid):
        return {"beta": 0.0, "chosen_on": "none: auto needs a validation split"}, best_valid
    tried = {0.0: best_valid} if best_valid else {}  # the best epoch was validated with no prior
    swept = sweep_priors(model, data, config, evaluator, [b for b in PRIOR_GRID if b not in tried])

    def valid_with(b: float) -> float:
        if b in tried:
            return tried[b][key]
        if b in swept:
            return swept[b][key]
        set_prior(model, data, config, b)
        tried[b] = evaluator.evaluate(model, "valid")
        return tried[b][key]

    best_beta, _ = choose_prior(valid_with)
    set_prior(model, data, config, best_beta)
    if best_beta not in tried:  # the chosen prior's metrics from the one-product path of evaluate()
        tried[best_beta] = evaluator.evaluate(model, "valid")
    tried = dict(sorted({**swept, **tried}.items()))
    prior = {"beta": best_beta, "chosen_on": f"valid {key}",
             f"valid {key} by beta": {str(b): round(m[key], 6) for b, m in tried.items()}}
    if verbose:
        tqdm.write(f"popularity prior: beta {best_beta} (valid {key} {tried[0.0][key]:.4f} -> "
                   f"{tried[best_beta][key]:.4f})")
    return prior, tried[best_beta]


def sweep_priors(model: TwoTower, data: Interactions, config: TrainConfig, evaluator: Evaluator,
                 betas: list[float]) -> dict[float, dict[str, float]]:
    """Validation metrics under each prior of ``betas`` from one score product per user chunk, in a
    single process with exact ranking of up to :data:`cbns.ranking.topk.ITEM_BLOCK` items;
    ``{}`` elsewhere (the caller then evaluates one prior at a time). The model is left with no prior."""
    if not betas or evaluator.ctx.distributed or config.evaluation.eval_index != "exact" or data.num_items > ITEM_BLOCK:
        return {}
    evaluator.settle()
    set_prior(model, data, config, 0.0)
    context = evaluator.context("valid")
    relevant, exclude = ranking_matrices(data, "valid")
    users, items, column = scoring_vectors(model, data, context)
    counts = data.item_counts()
    priors = [prior_column(counts, b, config.loss.temperature).to(items.device) for b in betas]
    found = full_ranking_columns(users, items, relevant, exclude, priors, config.evaluation.ks,
                                 rows=evaluator.users["valid"], item_bias=column)
    return dict(zip(betas, found))
