"""The training objective a :class:`cbns.config.TrainConfig` names: loss and negatives in one module."""
from __future__ import annotations

import numpy as np
from torch import nn

from cbns.registry import SAMPLERS


def build_objective(config, item_counts: np.ndarray, gather_across_ranks: bool = False,
                    process_group=None) -> nn.Module:
    """``config.sampler.name``'s objective: a module called as ``objective(user_emb, item_emb, item_ids,
    item_bias=..., encode_items=...)`` that returns the step's loss and updates its own state.

    The registered spec builds it (:meth:`cbns.objective.sampler_spec.SamplerSpec.build`;
    :mod:`cbns.objective.samplers` lists what each built-in name builds).
    ``config`` must be resolved: options left ``auto`` depend on the data and the towers
    (:func:`cbns.training.recipe.resolve`; :func:`cbns.api.assemble` and :func:`cbns.train` resolve
    them).
    """
    left = [name for name in ("sampler", "item_side") if config[name] == "auto"
            and not (name == "item_side" and config.sampler.name == "full")]  # the full softmax has no item side
    if left:
        raise ValueError(f"{', '.join(left)} still 'auto': resolve the config for the data first "
                         f"(cbns.training.recipe.resolve(config, num_items, num_train_pairs))")
    objective = SAMPLERS.get(config.sampler.name).build(config, item_counts)
    objective.gather_across_ranks, objective.process_group = gather_across_ranks, process_group
    return objective
