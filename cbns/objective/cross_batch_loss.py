"""Cross-batch negative sampling as one loss module: in-batch negatives plus a FIFO memory bank.

CBNS (Wang, Zhu and He, SIGIR 2021) as a drop-in criterion for your own towers and loop::

    criterion = cbns.CrossBatchSoftmaxLoss(dim=64, memory_size=4096, item_counts=counts)
    loss = criterion(user_emb, item_emb, item_ids)     # [B, D], [B, D], [B]: row i's positive is item i
    loss.backward()

For each row i the candidates are the batch's items (row i's positive among them) and, after
``warmup_steps`` training steps, the ``memory_size`` most recently encoded items of earlier
batches (the bank: stored vectors, no gradient). Every column j gets the logQ correction

    l_ij = (u_i . v_j + b_j) / T - log q(j)

(the positive too; ``b`` is the optional learned item bias), every other copy of row i's positive
id, in the batch and in the bank, is masked (an accidental hit), and the value is the mean
cross-entropy of the softmax over the row's columns. ``q`` is the unigram ``count / total`` of
``item_counts``, or, without counts, a streaming estimate of each item's frequency (Yi et al.,
RecSys 2019; :class:`cbns.negatives.streaming_frequency.StreamingFrequency`); the bank stores each
row's ``log q`` as it was when the row was enqueued.

In training mode the module enqueues the batch's items (detached, with their ``log q``) after
scoring them, so forgetting a call cannot silently turn CBNS into in-batch; in eval mode it only
scores. With ``memory_size=0`` it is exactly in-batch sampled softmax. ``item_side="split"`` (the
default) trains the item tower on the softmax over the gradient-carrying columns only (the bank
takes softmax mass it cannot push back against, which lets an MLP item tower collapse under the
paper's ``joint`` form); it changes the gradients, not the value returned.

All state (the bank's vectors, ids, log q, write pointer and fill count, the step counter, the
unigram table or the streaming estimate) is in registered buffers: ``state_dict()`` saves it and
``.to(device)`` moves it.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cbns.config.choices import BANK_MODES, ITEM_SIDES
from cbns.distributed.gather import gather_batch
from cbns.negatives.base import log_unigram
from cbns.negatives.candidates import Candidates
from cbns.negatives.memory_bank import MemoryBank
from cbns.negatives.streaming_frequency import StreamingFrequency
from cbns.objective.loss import SampledSoftmaxLoss


class CrossBatchSoftmaxLoss(nn.Module):
    """The CBNS sampled-softmax loss with its own memory bank (see the module docstring).

    Args:
        dim: width D of the user and item vectors.
        memory_size: M, the bank's size in items (0 = in-batch only).
        item_counts: ``[I]`` training counts of every item (q = count / total; unseen items count
            as 1), or None for the streaming estimate of q (any non-negative ids then).
        warmup_steps: W, training steps scored against the batch alone before the bank is used
            (the bank fills during them).
        temperature: T > 0.
        item_side: ``split`` (default) or ``joint`` (the paper's form).
        logq_correction: subtract log q from every column (False: an ablation).
        bank_mode: ``stale`` (the stored vectors, as in the paper) or ``refresh`` (the stored ids
            re-encoded with ``encode_items`` at every step, with gradient).
        frequency_slots, frequency_alpha: the streaming estimate's hashed arrays and rate.
        gather_across_ranks: under torch.distributed, score every rank's rows against the items of
            every rank (gathered with the exact gradient) and enqueue the global batch, so that W
            ranks equal one process with the global batch. A no-op in one process.
        process_group: the group to gather over (default: the default group).
        check_inputs: also check values (ids in range, finite vectors); one device sync a step.
            Shapes are always checked.
        bank_dtype: the bank's storage type (bfloat16 halves its memory; it is scored in float32
            or the autocast dtype like the batch's items).
        precision: ``fp32``, or ``bf16``: the score and gradient products in bfloat16, the softmax,
            log q and the loss in float32 (:mod:`cbns.objective.precision`).
    """

    def __init__(self, dim: int, memory_size: int, *, item_counts: np.ndarray | None = None,
                 warmup_steps: int = 0, temperature: float = 0.1, item_side: str = "split",
                 logq_correction: bool = True, bank_mode: str = "stale", frequency_slots: int = 1 << 20,
                 frequency_alpha: float = 0.05, gather_across_ranks: bool = False, process_group=None,
                 check_inputs: bool = True, bank_dtype: torch.dtype = torch.float32, precision: str = "fp32"):
        super().__init__()
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be an integer >= 1, got {dim!r}")
        if not isinstance(memory_size, int) or memory_size < 0:
            raise ValueError(f"memory_size must be an integer >= 0, got {memory_size!r}")
        if not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an integer >= 0, got {warmup_steps!r}")
        if item_side not in ITEM_SIDES:
            raise ValueError(f"item_side must be one of {', '.join(ITEM_SIDES)}, got {item_side!r}")
        if bank_mode not in BANK_MODES:
            raise ValueError(f"bank_mode must be one of {', '.join(BANK_MODES)}, got {bank_mode!r}")
        self.dim, self.memory_size, self.warmup_steps, self.bank_mode = dim, memory_size, warmup_steps, bank_mode
        self.softmax = SampledSoftmaxLoss(temperature, logq_correction, item_side, precision)
        self.bank = MemoryBank(memory_size, dim, bank_dtype)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self._steps = 0  # the step counter as a Python int, so that warm-up needs no device read
        self.register_load_state_dict_post_hook(lambda module, _: setattr(module, "_steps", int(module.step)))
        if item_counts is None:
            self.num_items = None
            self.frequency = StreamingFrequency(frequency_slots, frequency_alpha)
        else:
            counts = np.asarray(item_counts)
            if counts.ndim != 1 or len(counts) == 0 or (counts < 0).any():
                raise ValueError(f"item_counts must be a non-empty 1-d array of counts >= 0, got shape "
                                 f"{counts.shape}")
            self.num_items = len(counts)
            self.frequency = None
            self.register_buffer("log_q", log_unigram(counts))
        self.gather_across_ranks, self.process_group = gather_across_ranks, process_group
        self.check_inputs = check_inputs

    @classmethod
    def from_config(cls, config, item_counts: np.ndarray, memory_size: int | None = None) -> CrossBatchSoftmaxLoss:
        """The loss a :class:`cbns.config.TrainConfig` describes (``memory_size`` overrides the
        config's: 0 for the in-batch sampler). ``item_frequency: streaming`` ignores the counts.
        Values are not checked here: the trainer's guard (:mod:`cbns.training.guards`) does it,
        naming the step."""
        counts = None if config.item_frequency == "streaming" else item_counts
        return cls(config.dim, config.memory_size if memory_size is None else memory_size, item_counts=counts,
                   warmup_steps=config.warmup_steps, temperature=config.temperature, item_side=config.item_side,
                   logq_correction=config.logq_correction, bank_mode=config.bank_mode,
                   frequency_slots=config.frequency_slots, frequency_alpha=config.frequency_alpha,
                   check_inputs=False, precision=config.precision)

    @property
    def bank_active(self) -> bool:
        """Whether the next step scores against the bank (past warm-up, and something in it)."""
        return self._steps >= self.warmup_steps and len(self.bank) > 0

    def forward(self, user_emb: torch.Tensor, item_emb: torch.Tensor, item_ids: torch.Tensor, *,
                item_bias: torch.Tensor | None = None, encode_items=None,
                enqueue_mask: torch.Tensor | None = None, rank_rows: list[int] | None = None) -> torch.Tensor:
        """The mean cross-entropy over the rows of ``user_emb``; enqueues the batch when training.

        Args:
            user_emb: ``[B, D]`` user vectors.
            item_emb: ``[B, D]`` item vectors; row i is user i's positive.
            item_ids: ``[B]`` int64 ids of those items (copies of one id may repeat).
            item_bias: ``[I]`` a learned per-item score offset (in dot-product units), looked up by
                id for every column, bank columns included; or a lookup ``ids [N] -> [N]`` of it
                (e.g. one whose gradient is row-sparse,
                :meth:`cbns.model.two_tower.TwoTower.item_bias_of`); or None.
            encode_items: ``ids [N] -> [N, D]``, the item tower; needed by ``bank_mode="refresh"``.
            enqueue_mask: ``[B]`` bool, the rows to enqueue (default: all); e.g. to keep padding
                rows out of the bank.
            rank_rows: with ``gather_across_ranks``, every rank's B when the caller knows them
                (saves asking the other ranks).
        """
        self._check(user_emb, item_emb, item_ids, enqueue_mask)
        pool = gather_batch(item_emb, item_ids, self.gather_across_ranks, self.process_group, rank_rows)
        logq = self._logq(pool.ids)
        sources = [Candidates(pool.emb, pool.ids, logq, source="inbatch", holds_positives=True,
                              positive_offset=pool.offset)]
        if self.bank_active:
            bank = self.bank.candidates()
            if self.bank_mode == "refresh":
                if encode_items is None:
                    raise ValueError("bank_mode='refresh' re-encodes the bank's ids: pass encode_items=<the item "
                                     "tower, ids [N] -> [N, D]>")
                bank = Candidates(encode_items(bank.ids), bank.ids, bank.logq, source="bank")
            sources.append(bank)
        if len(item_ids):
            local = logq[pool.offset:pool.offset + len(item_ids)]
            loss = self.softmax(user_emb, item_emb, item_ids, local, sources, item_bias)
        else:  # a rank without rows: zero, on the graph of every gathered tensor and parameter
            loss = zero_on_graph(user_emb, item_emb, sources, item_bias)
        if self.training:
            self._enqueue(pool, logq, enqueue_mask)
        return loss

    @torch.no_grad()
    def _enqueue(self, pool, logq: torch.Tensor, enqueue_mask: torch.Tensor | None) -> None:
        emb, ids = pool.emb.detach(), pool.ids
        if enqueue_mask is not None:
            keep = pool.rows(enqueue_mask.to(torch.uint8)).bool()
            emb, ids, logq = emb[keep], ids[keep], logq[keep]
        self.bank.enqueue(emb, ids, logq)
        self.step += 1
        self._steps += 1

    def _logq(self, ids: torch.Tensor) -> torch.Tensor:
        """``[N]`` log q of the step's items; the streaming estimate learns from them when training."""
        if self.frequency is None:
            return self.log_q[ids]
        return self.frequency.update(ids) if self.training else self.frequency.log_q(ids)

    def reset(self) -> None:
        """Empty the bank (the warm-up counter and the frequency estimate are kept)."""
        self.bank.clear()

    def _check(self, user_emb, item_emb, item_ids, enqueue_mask) -> None:
        if user_emb.dim() != 2 or item_emb.dim() != 2:
            raise ValueError(f"user_emb and item_emb must be [B, D], got {tuple(user_emb.shape)} and "
                             f"{tuple(item_emb.shape)}")
        if user_emb.shape[1] != self.dim or item_emb.shape[1] != self.dim:
            raise ValueError(f"the loss was built with dim={self.dim}, got user_emb of width {user_emb.shape[1]} "
                             f"and item_emb of width {item_emb.shape[1]}")
        if not (user_emb.shape[0] == item_emb.shape[0] == item_ids.shape[0]) or item_ids.dim() != 1:
            raise ValueError(f"user_emb [B, D], item_emb [B, D] and item_ids [B] must have the same B, got "
                             f"{user_emb.shape[0]}, {item_emb.shape[0]} and ids of shape {tuple(item_ids.shape)}")
        if item_ids.dtype != torch.long:
            raise ValueError(f"item_ids must be int64 (torch.long), got {item_ids.dtype}")
        if enqueue_mask is not None and (enqueue_mask.shape != item_ids.shape or enqueue_mask.dtype != torch.bool):
            raise ValueError(f"enqueue_mask must be a bool tensor of shape {tuple(item_ids.shape)}, got "
                             f"{enqueue_mask.dtype} of shape {tuple(enqueue_mask.shape)}")
        if not self.check_inputs or not len(item_ids):
            return
        low, high = int(item_ids.min()), int(item_ids.max())
        if low < 0 or (self.num_items is not None and high >= self.num_items):
            bound = f"[0, {self.num_items})" if self.num_items is not None else "non-negative"
            raise ValueError(f"item_ids must be {bound} (item_counts has {self.num_items} items), got ids from "
                             f"{low} to {high}")
        for name, t in (("user_emb", user_emb), ("item_emb", item_emb)):
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"{name} holds {int((~torch.isfinite(t)).sum())} NaN or infinite values")


def zero_on_graph(user_emb: torch.Tensor, item_emb: torch.Tensor, sources: list[Candidates],
                  item_bias: torch.Tensor | None = None) -> torch.Tensor:
    """A zero loss for a rank with no rows that still reaches every parameter (DDP waits for each)
    and every gathered tensor the other ranks' losses use (their backward is a collective)."""
    parts = [user_emb.sum(), item_emb.sum(), *(s.emb.sum() for s in sources if s.emb.requires_grad)]
    if item_bias is not None:
        empty = torch.zeros(0, dtype=torch.long, device=user_emb.device)
        parts.append((item_bias(empty) if callable(item_bias) else item_bias).sum())
    return 0.0 * torch.stack(parts).sum()
