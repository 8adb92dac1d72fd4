"""The memory bank of cross-batch negative sampling: a FIFO ring of recently encoded item vectors."""
from __future__ import annotations

import torch

from cbns.config.choices import BANK_MODES
from cbns.negatives.candidates import Candidates
from cbns.negatives.source import NegativeSource, StepBatch


class MemoryBank(NegativeSource):
    """The ``M`` most recently enqueued item vectors with their ids and log q, as a negative source
    (Wang, Zhu and He, SIGIR 2021).

    All state (vectors, ids, log q, write pointer, fill count) lives in registered buffers, so
    ``state_dict()`` saves it, ``load_state_dict`` restores it exactly, and ``.to(device)`` moves
    it. Reads are pure; :meth:`enqueue` (:meth:`observe` after each training step) is the only
    write. Any batch size works: a batch wraps around the end of the ring, and one larger than
    ``M`` keeps only its last ``M`` rows. The fill count and the write pointer are also kept as
    Python ints (refreshed on load), so neither reading nor writing the bank waits for the device:
    a write is one slice copy per buffer (two where it wraps) at the host's pointer.

    As a source it yields nothing during the first ``warmup_steps`` steps (the bank fills during
    them) and while empty; then its rows, detached (``mode="stale"``, as in the paper), or its ids
    re-encoded with gradient at every step (``mode="refresh"``).

    Args:
        size: M, in items (0: never yields).
        dim: D.
        dtype: the vectors' storage type (float32, or bfloat16 to halve the bank).
        warmup_steps: W, the steps before the bank is used.
        mode: ``stale`` or ``refresh`` (:data:`cbns.config.choices.BANK_MODES`).
    """

    name = "bank"

    def __init__(self, size: int, dim: int, dtype: torch.dtype = torch.float32, *, warmup_steps: int = 0,
                 mode: str = "stale"):
        super().__init__()
        if size < 0:
            raise ValueError(f"memory size must be >= 0, got {size}")
        if mode not in BANK_MODES:
            raise ValueError(f"bank_mode must be one of {', '.join(BANK_MODES)}, got {mode!r}")
        self.size, self.warmup_steps, self.mode = size, warmup_steps, mode
        self.register_buffer("emb", torch.zeros(size, dim, dtype=dtype))
        self.register_buffer("ids", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("logq", torch.zeros(size))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))
        self._filled = self._ptr = 0
        self.register_load_state_dict_post_hook(lambda module, _: module._read_filled())

    def _read_filled(self) -> None:
        self._filled, self._ptr = int(self.filled), int(self.ptr)

    def __len__(self) -> int:
        return self._filled

    def active(self, step: int) -> bool:
        """Whether a step after ``step`` training steps scores against the bank (past warm-up, and
        something in it)."""
        return step >= self.warmup_steps and self._filled > 0

    def negatives(self, batch: StepBatch) -> list[Candidates]:
        if not self.active(batch.step):
            return []
        bank = self.candidates()
        if self.mode == "refresh":
            if batch.encode_items is None:
                raise ValueError("bank_mode='refresh' re-encodes the bank's ids: pass encode_items=<the item "
                                 "tower, ids [N] -> [N, D]>")
            bank = Candidates(batch.encode_items(bank.ids), bank.ids, bank.logq, source="bank")
        return [bank]

    @torch.no_grad()
    def observe(self, emb: torch.Tensor, ids: torch.Tensor, logq: torch.Tensor) -> None:
        self.enqueue(emb, ids, logq)

    def clear(self) -> None:
        """Forget every stored row."""
        self.ptr.zero_()
        self.filled.zero_()
        self.ids.fill_(-1)
        self._filled = self._ptr = 0

    @torch.no_grad()
    def enqueue(self, emb: torch.Tensor, ids: torch.Tensor, logq: torch.Tensor) -> None:
        """Append ``emb [n, D]``, ``ids [n]``, ``logq [n]`` (detached), dropping the oldest rows."""
        if self.size == 0:
            return
        n = ids.shape[0]
        if n > self.size:
            emb, ids, logq, n = emb[-self.size:], ids[-self.size:], logq[-self.size:], self.size
        start = self._ptr
        head = min(n, self.size - start)                    # rows up to the ring's end, the rest from 0
        for buffer, rows in ((self.emb, emb.detach()), (self.ids, ids), (self.logq, logq)):
            buffer[start:start + head].copy_(rows[:head])
            if head < n:
                buffer[:n - head].copy_(rows[head:])
        self._ptr = (start + n) % self.size
        self._filled = min(self._filled + n, self.size)
        self.ptr.fill_(self._ptr)
        self.filled.fill_(self._filled)

    def candidates(self) -> Candidates:
        """The filled part of the bank as detached candidates (ring order, not age order).

        While the ring is filling, rows are written from slot 0 on, so the filled rows are the
        prefix ``[0, filled)`` and no per-step mask is needed. The ids and log q are copies: a
        backward pass may need the ids (an item bias or a refreshed row is looked up by id) after
        an :meth:`enqueue` has overwritten the ring. The vectors are a view (no gradient flows to
        them, and the fused loss copies them into its candidate matrix).
        """
        n = self._filled
        return Candidates(self.emb[:n], self.ids[:n].clone(), self.logq[:n].clone(), source="bank",
                          item_grad=False)

    def oldest_first(self) -> torch.Tensor:
        """``[filled]`` the stored ids from oldest to newest (for inspection and tests)."""
        n = self._filled
        if n < self.size:
            return self.ids[:n].clone()
        return torch.roll(self.ids, -self._ptr)
