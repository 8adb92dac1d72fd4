"""The tower interface: anything that maps a batch of ids to ``[B, D]`` embeddings."""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn


class Tower(nn.Module):
    """An encoder f(ids, context) -> ``[B, D]``.

    ``ids`` is ``[B]`` int64 (user or item ids). ``context`` carries whatever else a tower needs
    for the batch (a user's history, item attributes, ...) as named tensors; the ID tower ignores
    it. The loss, samplers and bank only ever see the returned embeddings, so a new encoder is a
    new subclass and nothing else changes.
    """

    #: width D of the returned embeddings
    out_dim: int

    def forward(self, ids: torch.Tensor, context: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def encode_all(self, num: int, chunk: int = 65536) -> torch.Tensor:
        """``[num, D]``: every id ``0..num-1`` encoded, in chunks, without gradient."""
        device = next(self.parameters()).device
        parts = [self(torch.arange(s, min(s + chunk, num), device=device)) for s in range(0, num, chunk)]
        return torch.cat(parts)
