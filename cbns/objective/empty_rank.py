"""The loss of a rank that holds no rows in a distributed step."""
from __future__ import annotations

import torch

from cbns.negatives.candidates import Candidates


def zero_on_graph(user_emb: torch.Tensor, item_emb: torch.Tensor, sources: list[Candidates],
                  item_bias: torch.Tensor | None = None) -> torch.Tensor:
    """A zero loss for a rank with no rows that still reaches every parameter (DDP waits for each)
    and every gathered tensor the other ranks' losses use (their backward is a collective)."""
    parts = [user_emb.sum(), item_emb.sum(), *(s.emb.sum() for s in sources if s.emb.requires_grad)]
    if item_bias is not None:
        empty = torch.zeros(0, dtype=torch.long, device=user_emb.device)
        parts.append((item_bias(empty) if callable(item_bias) else item_bias).sum())
    return 0.0 * torch.stack(parts).sum()
