"""Streaming estimate of how often each item occurs (Yi et al., RecSys 2019, Algorithm 2).

When item counts are not known up front (a stream, or a catalogue that changes), the sampling
probability of an in-batch negative can be estimated on the fly. Two arrays of ``H`` slots, indexed
by a hash of the item id, hold the step at which the slot's item was last seen (``A``) and a moving
average of the number of steps between its sightings (``B``). When item y occurs at step t:

    B[h(y)] <- (1 - alpha) * B[h(y)] + alpha * (t - A[h(y)]),   A[h(y)] <- t

and the estimated probability that y occurs in a batch is ``q(y) = 1 / B[h(y)]``. An item occurring
in a batch more than once is counted once (it has one gap per step). The first sighting has no
earlier gap: the average starts from ``t + 1``, the steps since the stream began, so that a rare
item is not taken for a frequent one while the average warms up. Items that share a slot share an
estimate (their combined frequency); ids below H never collide (the hash is a bijection there).
"""
from __future__ import annotations

import numbers

import torch
from torch import nn

#: Knuth's multiplicative hash constant (odd, so ``id -> id * c mod 2^k`` is a bijection).
_HASH_MULTIPLIER = 2654435761


class StreamingFrequency(nn.Module):
    """Hashed per-item last-seen step and average gap; ``log_q(ids) = -log(gap)``.

    All state is in buffers (saved with ``state_dict``). :meth:`update` is the only write.

    Args:
        num_slots: H, the size of the hashed arrays.
        alpha: the moving average's learning rate in (0, 1].
    """

    def __init__(self, num_slots: int = 1 << 20, alpha: float = 0.05):
        super().__init__()
        if isinstance(num_slots, bool) or not isinstance(num_slots, numbers.Integral):
            raise TypeError(f"frequency_slots must be an integer >= 1, got {type(num_slots).__name__}")
        if num_slots < 1:
            raise ValueError(f"frequency_slots must be an integer >= 1, got {num_slots}")
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
            raise TypeError(f"alpha must be a number in (0, 1], got {type(alpha).__name__}")
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.num_slots, self.alpha = int(num_slots), alpha
        self.register_buffer("last_seen", torch.full((num_slots,), -1, dtype=torch.long))
        self.register_buffer("gap", torch.ones(num_slots, dtype=torch.float64))
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def slots(self, ids: torch.Tensor) -> torch.Tensor:
        """``[N]`` the slot of each id (a multiplicative hash modulo H)."""
        return (ids.long() * _HASH_MULTIPLIER) % self.num_slots

    @torch.no_grad()
    def update(self, ids: torch.Tensor) -> torch.Tensor:
        """Record one step whose batch holds ``ids [B]``; returns their ``[B]`` float32 log q.

        An id repeated in the batch is written once per copy, with the same value each time (every
        copy reads the slot's state from before the step), so it counts once; nothing here waits
        for the device (no unique, no read of the step counter).
        """
        t = self.step
        slots = self.slots(ids)
        last = self.last_seen[slots]
        new = last < 0
        observed = (t - last).to(torch.float64)
        averaged = (1 - self.alpha) * self.gap[slots] + self.alpha * observed
        self.gap[slots] = torch.where(new, (t + 1).to(torch.float64), averaged)
        self.last_seen[slots] = t
        self.step += 1
        return self.log_q(ids)

    def log_q(self, ids: torch.Tensor) -> torch.Tensor:
        """``[N]`` float32 ``log q = -log(gap)`` of each id (an unseen slot: gap 1, log q = 0)."""
        return (-torch.log(self.gap[self.slots(ids)])).float()
