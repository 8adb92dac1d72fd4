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
scores; under ``torch.no_grad()`` (a validation loss) it only scores too, in either mode, so the
bank, the step counter and the streaming estimate see training batches only. In eval mode with
gradients flowing it warns once that nothing is being updated. With ``memory_size=0`` it is
exactly in-batch sampled softmax.

The vectors are scored as given: the loss does not normalise them. The default temperature 0.1
is meant for unit vectors (cosine scores, what the towers of :class:`cbns.model.two_tower.TwoTower`
return with ``normalize=True``, the config's default); with raw dot products choose T for their
scale. ``item_side="split"`` (the default, right for any towers: the loss cannot see them) trains
the item tower on the softmax over the gradient-carrying columns only (the bank takes softmax
mass it cannot push back against, which lets an MLP item tower collapse under the paper's
``joint`` form); it changes the gradients, not the value returned. ``joint`` is what the
config's ``item_side: auto`` picks when both towers are ID tables (:mod:`cbns.training.recipe`).

It is :class:`cbns.objective.sampled_objective.SampledSoftmaxObjective` with two sources,
:class:`cbns.negatives.inbatch.InBatchSource` and :class:`cbns.negatives.memory_bank.MemoryBank`
(``criterion.bank``), and what ``--sampler cbns`` and ``--sampler inbatch`` (``memory_size=0``)
train with. All state (the bank's vectors, ids, log q, write pointer and fill count, the step
counter, the unigram table or the streaming estimate) is in registered buffers: ``state_dict()``
saves it (keys ``step``, ``log_q``, ``bank.*``, ``frequency.*``) and ``.to(device)`` moves it.
"""
from __future__ import annotations

import numpy as np
import torch

from cbns.config.choices import BANK_MODES, ITEM_SIDES
from cbns.negatives.inbatch import InBatchSource
from cbns.negatives.memory_bank import MemoryBank
from cbns.negatives.streaming_frequency import StreamingFrequency
from cbns.objective.input_checks import integer_argument
from cbns.objective.loss import SampledSoftmaxLoss
from cbns.objective.sampled_objective import SampledSoftmaxObjective


class CrossBatchSoftmaxLoss(SampledSoftmaxObjective):
    """The CBNS sampled-softmax loss with its own memory bank (see the module docstring).

    The defaults are the config's (:class:`cbns.config.TrainConfig`) except where a loss alone
    cannot know what the config knows: ``dim`` is required (it must equal the towers' width),
    ``item_side`` is ``split`` (the config's ``auto`` picks from the towers), and without
    ``item_counts`` q is estimated on the fly (docs/library.md has the table).

    Args:
        dim: width D of the user and item vectors.
        memory_size: M, the bank's size in items (0 = in-batch only); 4096, as in the config.
        item_counts: ``[I]`` training counts of every item (q = count / total; unseen items count
            as 1), or None for the streaming estimate of q (any non-negative ids then).
        warmup_steps: W, training steps scored against the batch alone before the bank is used
            (the bank fills during them).
        temperature: T, finite and > 0 (0.1 suits unit vectors; the loss does not normalise).
        item_side: ``split`` (default) or ``joint`` (the paper's form; better for two ID tables).
        logq_correction: subtract log q from every column (False: an ablation).
        bank_mode: ``stale`` (the stored vectors, as in the paper) or ``refresh`` (the stored ids
            re-encoded with ``encode_items`` at every step, with gradient).
        frequency_slots, frequency_alpha: the streaming estimate's hashed arrays and rate.
        gather_across_ranks: under torch.distributed, score every rank's rows against the items of
            every rank (gathered with the exact gradient) and enqueue the global batch, so that W
            ranks equal one process with the global batch. A no-op in one process.
        process_group: the group to gather over (default: the default group).
        check_inputs: also check values (ids in range, finite vectors) on the first call that has
            rows (a few device reads there, none after). Shapes are always checked.
        bank_dtype: the bank's storage type (bfloat16 halves its memory; it is scored in float32
            or the autocast dtype like the batch's items).
        precision: ``fp32``, or ``bf16``: the score and gradient products in bfloat16, the softmax,
            log q and the loss in float32 (:mod:`cbns.objective.precision`).
    """

    def __init__(self, dim: int, memory_size: int = 4096, *, item_counts: np.ndarray | None = None,
                 warmup_steps: int = 0, temperature: float = 0.1, item_side: str = "split",
                 logq_correction: bool = True, bank_mode: str = "stale", frequency_slots: int = 1 << 20,
                 frequency_alpha: float = 0.05, gather_across_ranks: bool = False, process_group=None,
                 check_inputs: bool = True, bank_dtype: torch.dtype = torch.float32, precision: str = "fp32"):
        dim = integer_argument("dim", dim, 1)
        memory_size = integer_argument("memory_size", memory_size, 0)
        warmup_steps = integer_argument("warmup_steps", warmup_steps, 0)
        if not isinstance(item_side, str) or item_side not in ITEM_SIDES:
            auto = (": 'auto' is the config's, resolved from the towers, which a loss does not see; pass 'joint' "
                    "for two ID tables, 'split' otherwise" if item_side == "auto" else "")
            raise ValueError(f"item_side must be one of {', '.join(ITEM_SIDES)}, got {item_side!r}{auto}")
        if bank_mode not in BANK_MODES:
            raise ValueError(f"bank_mode must be one of {', '.join(BANK_MODES)}, got {bank_mode!r}")
        loss = SampledSoftmaxLoss(temperature, logq_correction, item_side, precision)
        bank = MemoryBank(memory_size, dim, bank_dtype, warmup_steps=warmup_steps, mode=bank_mode)
        frequency = StreamingFrequency(frequency_slots, frequency_alpha) if item_counts is None else None
        super().__init__([InBatchSource(), bank], loss, item_counts=item_counts, frequency=frequency, dim=dim,
                         gather_across_ranks=gather_across_ranks, process_group=process_group,
                         check_inputs=check_inputs)
        self.memory_size = memory_size

    @classmethod
    def from_config(cls, config, item_counts: np.ndarray, memory_size: int | None = None) -> CrossBatchSoftmaxLoss:
        """The loss a :class:`cbns.config.TrainConfig` describes (``memory_size`` overrides the
        config's: 0 for the in-batch sampler). ``item_frequency: streaming`` ignores the counts.
        Values are not checked here: the trainer's guard (:mod:`cbns.training.guards`) does it,
        naming the step."""
        counts = None if config.sampler.item_frequency == "streaming" else item_counts
        sampler, loss = config.sampler, config.loss
        return cls(config.model.dim, sampler.memory_size if memory_size is None else memory_size, item_counts=counts,
                   warmup_steps=sampler.warmup_steps, temperature=loss.temperature, item_side=loss.item_side,
                   logq_correction=config.loss.logq_correction, bank_mode=config.sampler.bank_mode,
                   frequency_slots=config.sampler.frequency_slots, frequency_alpha=config.sampler.frequency_alpha,
                   check_inputs=False, precision=config.training.precision)

    @property
    def warmup_steps(self) -> int:
        """W, the training steps before the bank is used."""
        return self.bank.warmup_steps

    @property
    def bank_mode(self) -> str:
        """``stale`` or ``refresh``."""
        return self.bank.mode

    @property
    def bank_active(self) -> bool:
        """Whether the next step scores against the bank (past warm-up, and something in it)."""
        return self.bank.active(self._steps)
