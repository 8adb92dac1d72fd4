"""Negative samplers. Each returns :class:`Candidates` records that one logits pipeline consumes."""
from cbns.negatives.base import NegativeSampler, log_unigram
from cbns.negatives.candidates import Candidates
from cbns.negatives.cross_batch import BANK_MODES, CrossBatchSampler
from cbns.negatives.memory_bank import MemoryBank
from cbns.negatives.samplers import InBatchSampler, MixedSampler, PopularitySampler, UniformSampler
from cbns.negatives.streaming_frequency import StreamingFrequency

SAMPLERS = ("inbatch", "uniform", "popularity", "mns", "cbns")
#: How q of the positives' stream is known: ``static`` = unigram counts of train, read up front;
#: ``streaming`` = estimated during training (:class:`StreamingFrequency`).
ITEM_FREQUENCIES = ("static", "streaming")

__all__ = ["BANK_MODES", "Candidates", "CrossBatchSampler", "ITEM_FREQUENCIES", "InBatchSampler", "MemoryBank",
           "MixedSampler", "NegativeSampler", "PopularitySampler", "SAMPLERS", "StreamingFrequency", "UniformSampler",
           "log_unigram"]
