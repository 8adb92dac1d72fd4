"""Sampled softmax cross-entropy over [positive, negatives], with a choice of item-side gradient."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from cbns.config.choices import ITEM_SIDES, PRECISIONS
from cbns.negatives.candidates import Candidates
from cbns.objective.fused_softmax import fused_sampled_softmax
from cbns.objective.input_checks import positive_number
from cbns.objective.logits import sampled_softmax_logits
from cbns.objective.precision import compute_dtype


@dataclass
class SampledSoftmaxLoss:
    """``mean_i -log softmax(logits_i)[t_i]`` over the corrected logits of :mod:`cbns.objective.logits`.

    The lower-level piece under :class:`cbns.objective.cross_batch_loss.CrossBatchSoftmaxLoss`,
    for those who compose their own sources (:class:`cbns.negatives.candidates.Candidates`).

    Attributes:
        temperature: T dividing the scores, finite and > 0 (NaN is refused).
        logq_correction: apply ``s - log q`` to every column (positive included).
        item_side: ``split`` or ``joint`` (see :data:`cbns.config.choices.ITEM_SIDES`); it changes
            the item tower's gradient only, never the value, which is the full softmax's
            cross-entropy. With only gradient-carrying candidates the two are the same. ``split``
            is the default because it holds for every tower (``joint`` lets an MLP item tower
            collapse when bank rows take softmax mass; see BENCHMARKS.md).
        precision: ``fp32``, or ``bf16`` for the fused path's matrix products in bfloat16 (the
            softmax, log q and loss stay in float32; :mod:`cbns.objective.precision`).

    Every way through it runs without reading the device back (the accidental hits are equality
    masks, never index lists), the same on every device.
    """

    temperature: float = 0.1
    logq_correction: bool = True
    item_side: str = "split"
    precision: str = "fp32"

    def __post_init__(self):
        positive_number("temperature", self.temperature)
        if not isinstance(self.item_side, str):
            raise TypeError(f"item_side must be one of {', '.join(ITEM_SIDES)}, got {type(self.item_side).__name__}")
        if self.item_side not in ITEM_SIDES:
            raise ValueError(f"item side must be one of {', '.join(ITEM_SIDES)}, got {self.item_side!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    def __call__(self, users: torch.Tensor, positives: torch.Tensor, positive_ids: torch.Tensor,
                 positive_logq: torch.Tensor, sources: Sequence[Candidates],
                 item_bias: torch.Tensor | Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """Scalar loss for users ``[B, D]``, positives ``[B, D]`` and the negative sources.

        ``item_bias`` (``[num_items]``, in score units, see :class:`cbns.model.two_tower.TwoTower`; or
        a lookup ``ids [N] -> [N]`` such as :meth:`~cbns.model.two_tower.TwoTower.item_bias_of`,
        which gives the bias a row-sparse gradient) adds ``b(i) / T`` to the logit of every
        candidate i, the positive included; it learns from the softmax over every candidate (bank
        rows too: the bias is looked up fresh by id).

        When the first source ``holds_positives`` (the batch's own positives: inbatch, mns, cbns)
        the loss runs as one fused autograd node (:mod:`cbns.objective.fused_softmax`), and each
        row's positive is read from that block: ``positives`` and ``positive_logq`` are then not
        used. Otherwise it runs as the plain composition below, the positive prepended as column 0.
        """
        biased = item_bias is not None
        if biased:
            positive_logq, sources = self._with_bias(item_bias, positive_ids, positive_logq, sources)
        if sources and sources[0].holds_positives:
            return self._fused(users, positive_ids, sources, biased)
        if self.item_side == "joint" or all(s.item_grad for s in sources):
            return self._cross_entropy(users, positives, positive_ids, positive_logq, sources, biased)
        frozen = [replace(s, emb=s.emb.detach()) for s in sources]
        user_side = self._cross_entropy(users, positives.detach(), positive_ids, positive_logq, frozen, biased)
        # The item side: fresh candidates only, and the bias learns from the user side alone.
        fresh = [replace(s, logq=s.logq.detach()) for s in sources if s.item_grad]
        item_side = self._cross_entropy(users.detach(), positives, positive_ids, positive_logq.detach(), fresh, biased)
        # The value is the full softmax's cross-entropy (the user side); the item side adds its
        # gradient, not its value.
        return user_side + (item_side - item_side.detach())

    def _with_bias(self, item_bias, positive_ids, positive_logq, sources):
        """The bias folded into the log q of every column (``l = s/T - log q + b/T``), so that the
        logits below need nothing new; without the correction the bias is the whole term."""
        lookup = item_bias if callable(item_bias) else item_bias.__getitem__

        def shifted(logq: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
            base = logq if self.logq_correction else torch.zeros_like(logq)
            return base - lookup(ids) / self.temperature
        return (shifted(positive_logq, positive_ids),
                [replace(s, logq=shifted(s.logq, s.ids)) for s in sources])

    def _fused(self, users: torch.Tensor, positive_ids: torch.Tensor, sources: Sequence[Candidates],
               biased: bool) -> torch.Tensor:
        # Columns: the gradient-carrying sources first (the in-batch block leads), then the frozen
        # ones; the softmax does not depend on the column order.
        fresh = [s for s in sources if s.item_grad]
        frozen = [s for s in sources if not s.item_grad]
        assert fresh and fresh[0] is sources[0], "the in-batch source carries item gradient"
        ordered = fresh + frozen
        ids = torch.cat([s.ids for s in ordered])
        bias = -torch.cat([s.logq for s in ordered]) if self.logq_correction or biased else None
        # Row i's positive is column o + i (o = positive_offset: 0 in one process, further in when
        # the block was gathered over ranks); every other copy of its id is an accidental hit.
        offset = sources[0].positive_offset
        target = torch.arange(offset, offset + users.shape[0], device=users.device)
        fresh_emb, frozen_emb = _cat([s.emb for s in fresh]), _cat([s.emb for s in frozen]) if frozen else None
        return fused_sampled_softmax(users, fresh_emb, frozen_emb, bias, positive_ids, ids, target, self.temperature,
                                     self.item_side == "split", compute_dtype=compute_dtype(self.precision))

    def _cross_entropy(self, users, positives, positive_ids, positive_logq, sources, biased) -> torch.Tensor:
        logits, target = sampled_softmax_logits(users, positives, positive_ids, positive_logq, sources,
                                                self.temperature, self.logq_correction or biased)
        return F.cross_entropy(logits, target)


def _cat(parts: list[torch.Tensor]) -> torch.Tensor:
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def build_loss(loss, precision: str = "fp32") -> SampledSoftmaxLoss:
    """The loss the loss section ``loss`` (a :class:`cbns.config.LossConfig`) describes, computed
    in ``precision``."""
    return SampledSoftmaxLoss(loss.temperature, loss.logq_correction, loss.item_side, precision)
