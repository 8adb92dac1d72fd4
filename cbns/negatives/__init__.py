"""Negative sources. Each yields :class:`Candidates` records that one objective consumes.

The sources are pure candidate producers: they import nothing from :mod:`cbns.objective`, which
combines them into the corrected, masked sampled softmax and owns the step counter. The names
``--sampler`` accepts, and which sources each one combines, are registered in
:mod:`cbns.objective.samplers` (docs/extending.md).
"""
from cbns.negatives.candidates import Candidates
from cbns.negatives.drawn_source import DrawnSource
from cbns.negatives.inbatch import InBatchSource
from cbns.negatives.log_unigram import log_unigram
from cbns.negatives.memory_bank import MemoryBank
from cbns.negatives.popularity import PopularitySource
from cbns.negatives.source import NegativeSource, StepBatch
from cbns.negatives.streaming_frequency import StreamingFrequency
from cbns.negatives.uniform import UniformSource

__all__ = ["Candidates", "DrawnSource", "InBatchSource", "MemoryBank", "NegativeSource", "PopularitySource",
           "StepBatch", "StreamingFrequency", "UniformSource", "log_unigram"]
