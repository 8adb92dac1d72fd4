"""Negative samplers. Each returns :class:`Candidates` records that one logits pipeline consumes.

Importing this package registers the built-in samplers in :data:`cbns.registry.SAMPLERS`, in the
order of the imports below, which is the order ``sampler`` lists them (so the imports are kept
in that order, not sorted). A new sampler is one module plus one import line here
(docs/extending.md).
"""
# ruff: noqa: I001
from cbns.negatives.base import NegativeSampler, log_unigram
from cbns.negatives.candidates import Candidates
from cbns.negatives.inbatch import InBatchSampler
from cbns.negatives.uniform import UniformSampler
from cbns.negatives.popularity import PopularitySampler
from cbns.negatives.mixed import MixedSampler
from cbns.negatives.cross_batch import CrossBatchSampler
from cbns.negatives.full import FullSoftmax
from cbns.negatives.memory_bank import MemoryBank
from cbns.negatives.streaming_frequency import StreamingFrequency

__all__ = ["Candidates", "CrossBatchSampler", "FullSoftmax", "InBatchSampler", "MemoryBank", "MixedSampler",
           "NegativeSampler", "PopularitySampler", "StreamingFrequency", "UniformSampler", "log_unigram"]
