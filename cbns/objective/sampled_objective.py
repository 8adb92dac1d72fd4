"""The training objective: a list of negative sources scored by one corrected, masked sampled softmax.

``loss = objective(user_emb, item_emb, item_ids, item_bias=..., encode_items=...)`` runs one step:

1. gather the step's positives over ranks (:func:`cbns.distributed.gather.gather_batch`; a no-op
   in one process);
2. their log q under the positives' stream: the unigram table of ``item_counts``, or a streaming
   estimate (:class:`cbns.negatives.streaming_frequency.StreamingFrequency`) that learns from
   every training step;
3. each source's candidates (:class:`cbns.negatives.source.NegativeSource`), in order;
4. the loss over them (:class:`cbns.objective.loss.SampledSoftmaxLoss`: temperature, logQ
   correction, accidental-hit mask, fused when the first source holds the positives);
5. in training mode with gradients enabled, the writes: every source observes the step's
   positives (the memory bank enqueues them, detached, with their log q), the streaming estimate
   learns from them and the step counter advances. Under ``torch.no_grad()`` (a validation loss)
   and in eval mode the objective only scores: its state is left exactly as it was (a drawing
   source's generator included). In eval mode
   with gradients flowing it warns, once, that nothing is being updated.

The objective owns the one step counter (a buffer, mirrored as a Python int so that a source's
warm-up needs no device read). All state (the counter, the unigram table or the streaming
estimate, each source's buffers and generator) is in the module's ``state_dict``.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from cbns.distributed.gather import gather_batch
from cbns.negatives.drawn_source import DrawnSource
from cbns.negatives.log_unigram import log_unigram
from cbns.negatives.source import NegativeSource, StepBatch
from cbns.negatives.streaming_frequency import StreamingFrequency
from cbns.objective.empty_rank import zero_on_graph
from cbns.objective.input_checks import check_counts, check_inputs, integer_argument
from cbns.objective.loss import SampledSoftmaxLoss, build_loss
from cbns.objective.old_state_keys import rename_sampler_keys


class SampledSoftmaxObjective(nn.Module):
    """``sources`` scored by ``loss`` (see the module docstring).

    Args:
        sources: the negative sources, in column order; only the first may hold the positives
            (:class:`cbns.negatives.inbatch.InBatchSource`). Each is filed under its ``name``.
        loss: the sampled softmax (temperature, logQ, item side, precision).
        item_counts: ``[I]`` training counts of every item (q = count / total; unseen items count
            as 1), or None for the streaming estimate (any non-negative ids then).
        frequency: the streaming estimate used when ``item_counts`` is None (default: 2^20 slots,
            rate 0.05).
        dim: D, checked against the inputs' width (None: not checked).
        gather_across_ranks: under torch.distributed, score every rank's rows against the items of
            every rank (gathered with the exact gradient) and let the sources observe the global
            batch, so that W ranks equal one process with the global batch. A no-op in one process.
        process_group: the group to gather over (default: the default group).
        check_inputs: also check values (ids in range, finite vectors) on the first call that has
            rows: a few device reads there, none after (a step on a GPU never waits for them).
            Shapes and types are always checked (they are known on the host).
    """

    def __init__(self, sources: Sequence[NegativeSource], loss: SampledSoftmaxLoss | None = None, *,
                 item_counts: np.ndarray | None = None, frequency: StreamingFrequency | None = None,
                 dim: int | None = None, gather_across_ranks: bool = False, process_group=None,
                 check_inputs: bool = True):
        super().__init__()
        if isinstance(sources, NegativeSource) or not isinstance(sources, Sequence) or isinstance(sources, str):
            raise TypeError(f"sources must be a list of negative sources, got {type(sources).__name__}")
        if not sources:
            raise ValueError("an objective needs at least one negative source, got none")
        wrong = [type(s).__name__ for s in sources if not isinstance(s, NegativeSource)]
        if wrong:
            raise TypeError(f"sources must be NegativeSource modules (cbns.negatives), got {', '.join(wrong)}")
        if loss is not None and not isinstance(loss, SampledSoftmaxLoss):
            raise TypeError(f"loss must be a cbns.objective.loss.SampledSoftmaxLoss, got {type(loss).__name__}")
        self.softmax = loss if loss is not None else SampledSoftmaxLoss()
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self._steps = 0  # the step counter as a Python int, so that warm-up needs no device read
        self.register_load_state_dict_post_hook(lambda module, _: setattr(module, "_steps", int(module.step)))
        if item_counts is None:
            self.num_items = None
            self.frequency = frequency if frequency is not None else StreamingFrequency()
        else:
            counts = check_counts(item_counts)
            self.num_items = len(counts)
            self.frequency = None
            self.register_buffer("log_q", log_unigram(counts))
        self.sources = list(sources)
        self._longest_warmup = max([getattr(s, "warmup_steps", 0) for s in self.sources] + [0])
        for source in self.sources:
            name, k = source.name, 1
            while hasattr(self, name):
                name, k = f"{source.name}_{k}", k + 1
            self.add_module(name, source)
        self.dim = None if dim is None else integer_argument("dim", dim, 1)
        self._warned_eval = False
        self.gather_across_ranks, self.process_group = gather_across_ranks, process_group
        self.check_inputs = check_inputs
        self._values_checked = False

    @classmethod
    def from_config(cls, config, item_counts: np.ndarray, sources: Sequence[NegativeSource],
                    **kwargs) -> SampledSoftmaxObjective:
        """``sources`` with the loss a :class:`cbns.config.TrainConfig` describes; ``item_frequency:
        streaming`` ignores the counts. Values are not checked here: the trainer's guard
        (:mod:`cbns.training.guards`) does it, naming the step."""
        sampler = config.sampler
        streaming = sampler.item_frequency == "streaming"
        frequency = StreamingFrequency(sampler.frequency_slots, sampler.frequency_alpha) if streaming else None
        return cls(sources, build_loss(config.loss, config.training.precision),
                   item_counts=None if streaming else item_counts, frequency=frequency, dim=config.model.dim,
                   check_inputs=False, **kwargs)

    def forward(self, user_emb: torch.Tensor, item_emb: torch.Tensor, item_ids: torch.Tensor, *,
                item_bias: torch.Tensor | None = None, encode_items=None,
                enqueue_mask: torch.Tensor | None = None, rank_rows: list[int] | None = None) -> torch.Tensor:
        """The mean cross-entropy over the rows of ``user_emb``; observes the batch when training
        (training mode and gradients enabled; see the module docstring).

        Args:
            user_emb: ``[B, D]`` user vectors.
            item_emb: ``[B, D]`` item vectors; row i is user i's positive.
            item_ids: ``[B]`` int64 ids of those items (copies of one id may repeat).
            item_bias: ``[I]`` a learned per-item score offset (in dot-product units), looked up by
                id for every column, bank columns included; or a lookup ``ids [N] -> [N]`` of it
                (e.g. one whose gradient is row-sparse,
                :meth:`cbns.model.two_tower.TwoTower.item_bias_of`); or None.
            encode_items: ``ids [N] -> [N, D]``, the item tower; needed by the sources that encode
                items (drawn negatives, a refreshed bank).
            enqueue_mask: ``[B]`` bool, the rows the sources observe (default: all); e.g. to keep
                padding rows out of the bank.
            rank_rows: with ``gather_across_ranks``, every rank's B when the caller knows them
                (saves asking the other ranks).
        """
        values = self.check_inputs and not self._values_checked
        check_inputs(user_emb, item_emb, item_ids, enqueue_mask, self.dim, self.num_items, values, item_bias)
        self._values_checked = self._values_checked or (values and len(item_ids) > 0)
        updating = self.training and torch.is_grad_enabled()
        if not self.training and not self._warned_eval and torch.is_grad_enabled() and (
                user_emb.requires_grad or item_emb.requires_grad):
            self._warned_eval = True
            warnings.warn(f"{type(self).__name__} is in eval mode while gradients flow: it scores but does not "
                          f"update its memory bank, step counter or frequency estimate; call .train() before "
                          f"training steps", stacklevel=4)  # the caller of loss(...), past Module.__call__
        pool = gather_batch(item_emb, item_ids, self.gather_across_ranks, self.process_group, rank_rows)
        logq = self._logq(pool.ids, updating)
        batch = StepBatch(pool.emb, pool.ids, logq, pool.offset, self._step_seen(), encode_items)
        # Scoring only: a drawing source's generator is put back, so that validation draws do not
        # shift the negatives of the training steps that follow.
        drawn = [] if updating else [(s, s.get_extra_state()) for s in self.sources if isinstance(s, DrawnSource)]
        candidates = [c for source in self.sources for c in source.negatives(batch)]
        for source, state in drawn:
            source.set_extra_state(state)
        if len(item_ids):
            positive_logq = None  # (the fused loss reads each positive from the leading block)
            if not (candidates and candidates[0].holds_positives):
                local = logq[pool.offset:pool.offset + len(item_ids)]
                positive_logq = self.sources[0].positive_logq(item_ids, local)
            loss = self.softmax(user_emb, item_emb, item_ids, positive_logq, candidates, item_bias)
        else:  # a rank without rows: zero, on the graph of every gathered tensor and parameter
            loss = zero_on_graph(user_emb, item_emb, candidates, item_bias)
        if updating:
            self._observe(pool, logq, enqueue_mask)
        return loss

    def _step_seen(self) -> int:
        """The step count the sources see: exact, or under ``torch.compile`` capped at the longest
        warm-up (past it every source decides alike), so that the compiled graph does not depend
        on, and is not rebuilt for, each value of the counter."""
        if not torch.compiler.is_compiling():
            return self._steps
        return min(self._steps, self._longest_warmup)

    @torch.no_grad()
    def _observe(self, pool, logq: torch.Tensor, enqueue_mask: torch.Tensor | None) -> None:
        """The step's writes: every source sees the (kept) positives, then the counter advances."""
        emb, ids = pool.emb, pool.ids  # (under no_grad: the bank copies the values)
        if enqueue_mask is not None:
            keep = pool.rows(enqueue_mask.to(torch.uint8)).bool()
            emb, ids, logq = emb[keep], ids[keep], logq[keep]
        for source in self.sources:
            source.observe(emb, ids, logq)
        self.step += 1
        self._steps += 1

    def _logq(self, ids: torch.Tensor, updating: bool = False) -> torch.Tensor:
        """``[N]`` log q of the step's items; the streaming estimate learns from them when ``updating``."""
        if self.frequency is None:
            return self.log_q[ids]
        return self.frequency.update(ids) if updating else self.frequency.log_q(ids)

    def reset(self) -> None:
        """Empty what the sources stored (the bank); the step counter and the frequency estimate are
        kept."""
        for source in self.sources:
            source.clear()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        rename_sampler_keys(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
