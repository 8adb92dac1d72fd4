"""A FIFO memory bank of recently encoded item vectors: a preallocated ring buffer in buffers."""
from __future__ import annotations

import torch
from torch import nn

from cbns.negatives.candidates import Candidates


class MemoryBank(nn.Module):
    """The ``M`` most recently enqueued item vectors with their ids and log q.

    All state (vectors, ids, log q, write pointer, fill count) lives in registered buffers, so
    ``state_dict()`` saves it, ``load_state_dict`` restores it exactly, and ``.to(device)`` moves
    it. Reads are pure; :meth:`enqueue` is the only write. Any batch size works: a batch wraps
    around the end of the ring, and one larger than ``M`` keeps only its last ``M`` rows.
    """

    def __init__(self, size: int, dim: int):
        super().__init__()
        if size < 0:
            raise ValueError(f"memory size must be >= 0, got {size}")
        self.size = size
        self.register_buffer("emb", torch.zeros(size, dim))
        self.register_buffer("ids", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("logq", torch.zeros(size))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))

    def __len__(self) -> int:
        return int(self.filled)

    @torch.no_grad()
    def enqueue(self, emb: torch.Tensor, ids: torch.Tensor, logq: torch.Tensor) -> None:
        """Append ``emb [n, D]``, ``ids [n]``, ``logq [n]`` (detached), dropping the oldest rows."""
        if self.size == 0:
            return
        n = ids.shape[0]
        if n > self.size:
            emb, ids, logq, n = emb[-self.size:], ids[-self.size:], logq[-self.size:], self.size
        slots = (self.ptr + torch.arange(n, device=self.ids.device)) % self.size
        self.emb[slots] = emb.detach().to(self.emb.dtype)
        self.ids[slots] = ids
        self.logq[slots] = logq.to(self.logq.dtype)
        self.ptr.copy_((self.ptr + n) % self.size)
        self.filled.copy_(torch.clamp(self.filled + n, max=self.size))

    def candidates(self) -> Candidates:
        """The filled part of the bank as detached candidates (ring order, not age order).

        While the ring is filling, rows are written from slot 0 on, so the filled rows are the
        prefix ``[0, filled)`` and no per-step mask is needed. The ids and log q are copies: a
        backward pass may need the ids (an item bias or a refreshed row is looked up by id) after
        an :meth:`enqueue` has overwritten the ring. The vectors are a view (no gradient flows to
        them, and the fused loss copies them into its candidate matrix).
        """
        n = int(self.filled)
        return Candidates(self.emb[:n], self.ids[:n].clone(), self.logq[:n].clone(), source="bank",
                          item_grad=False)

    def oldest_first(self) -> torch.Tensor:
        """``[filled]`` the stored ids from oldest to newest (for inspection and tests)."""
        n = int(self.filled)
        if n < self.size:
            return self.ids[:n].clone()
        return torch.roll(self.ids, -int(self.ptr))
