"""The built-in samplers: what each ``--sampler`` name builds.

Importing this module registers them in :data:`cbns.registry.SAMPLERS`, in the order below,
which is the order ``--sampler`` lists them. ``inbatch`` and ``cbns`` are
:class:`~cbns.objective.cross_batch_loss.CrossBatchSoftmaxLoss` (no bank, a bank); ``uniform``,
``popularity`` and ``mns`` are :class:`~cbns.objective.sampled_objective.SampledSoftmaxObjective`
with their sources; ``full`` is the exact softmax,
:class:`~cbns.objective.full_softmax_loss.FullSoftmaxLoss`, which samples nothing.
"""
from __future__ import annotations

from cbns.negatives.inbatch import InBatchSource
from cbns.negatives.popularity import PopularitySource
from cbns.negatives.uniform import UniformSource
from cbns.objective.cross_batch_loss import CrossBatchSoftmaxLoss
from cbns.objective.full_softmax_loss import FullSoftmaxLoss
from cbns.objective.sampler_spec import SamplerSpec
from cbns.registry import SAMPLERS


@SAMPLERS.register("inbatch")
class InBatch(SamplerSpec):
    """The other positives of the batch; they follow the unigram distribution, q = count / total."""

    summary = "the other positives of the batch (q = unigram)"

    @classmethod
    def build(cls, config, item_counts):
        return CrossBatchSoftmaxLoss.from_config(config, item_counts, memory_size=0)


@SAMPLERS.register("uniform")
class Uniform(SamplerSpec):
    """``N`` items drawn uniformly from the catalogue per step, shared by the batch; q = 1/|I|."""

    summary = "N items drawn uniformly per step (q = 1/|I|)"
    options = ("num_negatives",)

    @classmethod
    def sources(cls, sampler, item_counts, seed):
        return [UniformSource(len(item_counts), sampler.num_negatives, seed=seed)]

    @classmethod
    def negatives_per_row(cls, batch_size, sampler):
        return sampler.num_negatives


@SAMPLERS.register("popularity")
class Popularity(SamplerSpec):
    """``N`` items drawn from q(i) proportional to count(i)^alpha (alpha=1: unigram, 0: uniform)."""

    summary = "N items drawn from count^alpha per step"
    options = ("num_negatives", "popularity_alpha")

    @classmethod
    def sources(cls, sampler, item_counts, seed):
        return [PopularitySource(item_counts, sampler.num_negatives, alpha=sampler.popularity_alpha,
                                 seed=seed)]

    @classmethod
    def negatives_per_row(cls, batch_size, sampler):
        return sampler.num_negatives


@SAMPLERS.register("mns")
class Mixed(SamplerSpec):
    """Mixed negative sampling (Yang et al., WWW 2020): in-batch negatives (unigram q) plus ``N``
    uniform ones (q = 1/|I|), each source corrected with its own q."""

    summary = "in-batch + N uniform (mixed negative sampling, Yang et al. 2020)"
    options = ("num_negatives",)

    @classmethod
    def sources(cls, sampler, item_counts, seed):
        return [InBatchSource(), UniformSource(len(item_counts), sampler.num_negatives, seed=seed)]

    @classmethod
    def negatives_per_row(cls, batch_size, sampler):
        return batch_size - 1 + sampler.num_negatives


@SAMPLERS.register("cbns")
class CrossBatch(SamplerSpec):
    """Cross-batch negative sampling (Wang, Zhu and He, SIGIR 2021): in-batch negatives, plus after
    ``warmup_steps`` steps the ``memory_size`` most recently encoded items of earlier batches."""

    summary = "in-batch + a FIFO bank of the M most recently encoded items (after W warm-up steps)"
    options = ("memory_size", "warmup_steps", "bank_mode")

    @classmethod
    def build(cls, config, item_counts):
        return CrossBatchSoftmaxLoss.from_config(config, item_counts)

    @classmethod
    def negatives_per_row(cls, batch_size, sampler):
        return batch_size - 1 + sampler.memory_size


@SAMPLERS.register("full")
class Full(SamplerSpec):
    """No sampling: every item of the catalogue is a column of every row's softmax, with no log q
    (nothing is drawn). The objective the sampled softmaxes estimate, the reference row of the
    sampler tables; not a ceiling of the retrieval metrics (on MovieLens-100k CBNS ranks better)."""

    summary = "every item a negative: the exact softmax (the objective the samplers estimate)"

    @classmethod
    def build(cls, config, item_counts):
        return FullSoftmaxLoss.from_config(config, item_counts)

    @classmethod
    def negatives_per_row(cls, batch_size, sampler):
        """Every item but the row's positive: the catalogue's size, which a config does not know."""
        return None
