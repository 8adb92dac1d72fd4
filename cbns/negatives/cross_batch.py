"""Cross-batch negative sampling (Wang, Zhu and He, SIGIR 2021): in-batch plus a FIFO bank."""
from __future__ import annotations

import numpy as np
import torch

from cbns.config.choices import BANK_MODES
from cbns.negatives.base import NegativeSampler
from cbns.negatives.candidates import Candidates
from cbns.negatives.memory_bank import MemoryBank
from cbns.registry import SAMPLERS


@SAMPLERS.register("cbns")
class CrossBatchSampler(NegativeSampler):
    """In-batch negatives, plus after ``warmup_steps`` steps the ``memory_size`` most recently
    encoded items of earlier batches.

    After every optimizer step :meth:`observe` enqueues the step's item vectors (detached) with
    their ids and log q; the bank fills during warm-up, so it is full when it is switched on.
    """

    summary = "in-batch + a FIFO bank of the M most recently encoded items (after W warm-up steps)"
    options = ("memory_size", "warmup_steps", "bank_mode")

    @classmethod
    def from_config(cls, config, item_counts: np.ndarray) -> CrossBatchSampler:
        return cls(item_counts, config.memory_size, config.dim, config.warmup_steps, bank_mode=config.bank_mode,
                   seed=config.seed + 1)

    @classmethod
    def objective_from_config(cls, config, item_counts: np.ndarray):
        """Training uses :class:`cbns.objective.cross_batch_loss.CrossBatchSoftmaxLoss`, which owns
        its bank; this class is the same method as a source of candidates, for those who compose
        their own loss."""
        from cbns.objective.cross_batch_loss import CrossBatchSoftmaxLoss

        return CrossBatchSoftmaxLoss.from_config(config, item_counts)

    @classmethod
    def negatives_per_row(cls, batch_size: int, config) -> int:
        return batch_size - 1 + config.memory_size

    def __init__(self, item_counts: np.ndarray, memory_size: int, dim: int, warmup_steps: int = 0,
                 bank_mode: str = "stale", seed: int = 0):
        super().__init__(item_counts, seed)
        if bank_mode not in BANK_MODES:
            raise ValueError(f"bank mode must be one of {', '.join(BANK_MODES)}, got {bank_mode!r}")
        self.bank = MemoryBank(memory_size, dim)
        self.warmup_steps = warmup_steps
        self.bank_mode = bank_mode

    @property
    def bank_active(self) -> bool:
        return int(self.step) >= self.warmup_steps and len(self.bank) > 0

    def negatives(self, item_ids, item_emb, encode_items) -> list[Candidates]:
        sources = [self.inbatch(item_ids, item_emb)]
        if self.bank_active:
            bank = self.bank.candidates()
            if self.bank_mode == "refresh":
                bank = Candidates(encode_items(bank.ids), bank.ids, bank.logq, source="bank")
            sources.append(bank)
        return sources

    @torch.no_grad()
    def observe(self, item_ids, item_emb) -> None:
        self.bank.enqueue(item_emb, item_ids, self.log_q[item_ids])
        super().observe(item_ids, item_emb)
