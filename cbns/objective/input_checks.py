"""What the objective checks of its inputs, with messages that say what was received."""
from __future__ import annotations

import torch


def check_inputs(user_emb: torch.Tensor, item_emb: torch.Tensor, item_ids: torch.Tensor,
                 enqueue_mask: torch.Tensor | None, dim: int | None, num_items: int | None,
                 values: bool) -> None:
    """ValueError unless ``user_emb [B, D]``, ``item_emb [B, D]``, ``item_ids [B]`` int64 and
    ``enqueue_mask`` (None or ``[B]`` bool) fit together and ``D == dim`` (unless ``dim`` is None).
    With ``values`` also the ids' range ``[0, num_items)`` (non-negative when ``num_items`` is None)
    and finite vectors: one device read."""
    if user_emb.dim() != 2 or item_emb.dim() != 2:
        raise ValueError(f"user_emb and item_emb must be [B, D], got {tuple(user_emb.shape)} and "
                         f"{tuple(item_emb.shape)}")
    if dim is not None and (user_emb.shape[1] != dim or item_emb.shape[1] != dim):
        raise ValueError(f"the loss was built with dim={dim}, got user_emb of width {user_emb.shape[1]} "
                         f"and item_emb of width {item_emb.shape[1]}")
    if not (user_emb.shape[0] == item_emb.shape[0] == item_ids.shape[0]) or item_ids.dim() != 1:
        raise ValueError(f"user_emb [B, D], item_emb [B, D] and item_ids [B] must have the same B, got "
                         f"{user_emb.shape[0]}, {item_emb.shape[0]} and ids of shape {tuple(item_ids.shape)}")
    if item_ids.dtype != torch.long:
        raise ValueError(f"item_ids must be int64 (torch.long), got {item_ids.dtype}")
    if enqueue_mask is not None and (enqueue_mask.shape != item_ids.shape or enqueue_mask.dtype != torch.bool):
        raise ValueError(f"enqueue_mask must be a bool tensor of shape {tuple(item_ids.shape)}, got "
                         f"{enqueue_mask.dtype} of shape {tuple(enqueue_mask.shape)}")
    if not values or not len(item_ids):
        return
    low, high = int(item_ids.min()), int(item_ids.max())
    if low < 0 or (num_items is not None and high >= num_items):
        bound = f"[0, {num_items})" if num_items is not None else "non-negative"
        raise ValueError(f"item_ids must be {bound} (item_counts has {num_items} items), got ids from "
                         f"{low} to {high}")
    for name, t in (("user_emb", user_emb), ("item_emb", item_emb)):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} holds {int((~torch.isfinite(t)).sum())} NaN or infinite values")
