"""The interface of a negative source, and the step it reads.

A source yields the negatives of one step as :class:`~cbns.negatives.candidates.Candidates`
records; the objective (:class:`cbns.objective.sampled_objective.SampledSoftmaxObjective`)
concatenates the records of its sources into one corrected, masked sampled softmax. Reading is
pure (a drawing source only advances its own random generator); the one write, :meth:`observe`,
is called by the objective after scoring in training mode. Sources do not count steps: the
objective does, and passes its count in :class:`StepBatch`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from cbns.negatives.candidates import Candidates


@dataclass
class StepBatch:
    """What a source sees of one step.

    Attributes:
        emb: ``[b, D]`` the step's positive item vectors (over every rank when gathered), with
            gradient.
        ids: ``[b]`` their int64 ids.
        logq: ``[b]`` log q of each of them under the positives' stream (the unigram table, or the
            streaming estimate of this step).
        offset: the column of this rank's row 0 among the ``b`` rows (0 in one process).
        step: the objective's training-step count before this step (a Python int: reading it
            never waits for the device).
        encode_items: ``ids [N] -> [N, D]``, the item tower (with gradient), or None.
    """

    emb: torch.Tensor
    ids: torch.Tensor
    logq: torch.Tensor
    offset: int = 0
    step: int = 0
    encode_items: Callable[[torch.Tensor], torch.Tensor] | None = None


class NegativeSource(nn.Module):
    """One kind of negatives. Subclasses implement :meth:`negatives`; a source that keeps what it
    saw (the memory bank) implements :meth:`observe`.

    ``name`` labels the candidates and is the attribute the objective files the source under (so
    its state appears as ``<name>.<buffer>`` in the objective's ``state_dict``).
    """

    name = "source"

    def negatives(self, batch: StepBatch) -> list[Candidates]:
        """The records this source adds to the step (empty: nothing this step)."""
        raise NotImplementedError

    def positive_logq(self, ids: torch.Tensor, stream_logq: torch.Tensor) -> torch.Tensor:
        """``[B]`` the log q the positive column is corrected with when this source leads the
        objective and does not hold the positives: by default ``stream_logq [B]``, the positives'
        own stream; a drawing source gives the q it draws with."""
        return stream_logq

    @torch.no_grad()
    def observe(self, emb: torch.Tensor, ids: torch.Tensor, logq: torch.Tensor) -> None:
        """After a training step: the step's positives ``emb [n, D]`` (detached), ``ids [n]``,
        ``logq [n]``. Nothing by default."""

    def clear(self) -> None:
        """Forget what :meth:`observe` stored (nothing by default)."""
