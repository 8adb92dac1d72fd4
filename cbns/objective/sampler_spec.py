"""What a ``--sampler`` name stands for: the spec that builds its training objective.

The entries of :data:`cbns.registry.SAMPLERS` are :class:`SamplerSpec` subclasses (class
attributes and class methods only; nothing is instantiated). The config, the CLI's help, the study
and the memory estimate read their ``summary``, ``options`` and :meth:`~SamplerSpec.negatives_per_row`;
:func:`cbns.objective.build.build_objective` calls :meth:`~SamplerSpec.build`.
"""
from __future__ import annotations

import numpy as np
from torch import nn

from cbns.negatives.source import NegativeSource
from cbns.objective.sampled_objective import SampledSoftmaxObjective


class SamplerSpec:
    """A sampler: the negative sources a config asks for, and the objective that scores them.

    A spec that draws negatives implements :meth:`sources` (and :meth:`negatives_per_row`); the
    default :meth:`build` scores them with :class:`SampledSoftmaxObjective`. A spec whose
    objective is not a sampled softmax (the exact softmax) overrides :meth:`build` instead.
    """

    #: One line for ``--sampler``'s help (the registry name comes from the registration).
    summary = ""
    #: The config options this sampler reads beyond the common ones (for help and checks).
    options: tuple[str, ...] = ()

    @classmethod
    def sources(cls, sampler, item_counts: np.ndarray, seed: int) -> list[NegativeSource]:
        """The negative sources the sampler section ``sampler`` (a :class:`cbns.config.SamplerConfig`)
        asks for, in column order (``item_counts [I]``: all ones under the streaming estimate;
        ``seed`` seeds the sources that draw)."""
        raise NotImplementedError(f"{cls.__qualname__} names no negative sources: implement sources() or build()")

    @classmethod
    def negatives_per_row(cls, batch_size: int, sampler) -> int | None:
        """How many negatives one row's softmax sees at batch size ``batch_size`` (None: every item)."""
        return batch_size - 1

    @classmethod
    def build(cls, config, item_counts: np.ndarray) -> nn.Module:
        """The training objective of ``config`` (resolved: no option left ``auto``)."""
        streaming = config.sampler.item_frequency == "streaming"
        sources = cls.sources(config.sampler, np.ones_like(item_counts) if streaming else item_counts,
                              config.training.seed + 1)
        return SampledSoftmaxObjective.from_config(config, item_counts, sources)
