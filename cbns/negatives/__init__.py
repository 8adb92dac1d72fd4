"""Negative samplers. Each returns :class:`Candidates` records that one logits pipeline consumes."""
from cbns.negatives.base import NegativeSampler, log_unigram
from cbns.negatives.candidates import Candidates
from cbns.negatives.cross_batch import BANK_MODES, CrossBatchSampler
from cbns.negatives.memory_bank import MemoryBank
from cbns.negatives.samplers import InBatchSampler, MixedSampler, PopularitySampler, UniformSampler

SAMPLERS = ("inbatch", "uniform", "popularity", "mns", "cbns")

__all__ = ["BANK_MODES", "Candidates", "CrossBatchSampler", "InBatchSampler", "MemoryBank", "MixedSampler",
           "NegativeSampler", "PopularitySampler", "SAMPLERS", "UniformSampler", "log_unigram"]
