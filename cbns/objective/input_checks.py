"""What the objective checks of its inputs and arguments, with messages that say what was received."""
from __future__ import annotations

import math
import numbers

import numpy as np
import torch


def check_inputs(user_emb: torch.Tensor, item_emb: torch.Tensor, item_ids: torch.Tensor,
                 enqueue_mask: torch.Tensor | None, dim: int | None, num_items: int | None,
                 values: bool, item_bias=None) -> None:
    """TypeError unless ``user_emb`` and ``item_emb`` are floating-point tensors, ``item_ids`` and
    ``enqueue_mask`` tensors and ``item_bias`` None, a tensor or a lookup; ValueError unless
    ``user_emb [B, D]``, ``item_emb [B, D]``, ``item_ids [B]`` int64, ``enqueue_mask`` (None or
    ``[B]`` bool) and ``item_bias`` (``[num_items]`` when a tensor and ``num_items`` is known) fit
    together and ``D == dim`` (unless ``dim`` is None). These read shapes and types only. With
    ``values`` also the ids' range ``[0, num_items)`` (non-negative when ``num_items`` is None;
    below the bias's length) and finite vectors: one device read."""
    for name, t in (("user_emb", user_emb), ("item_emb", item_emb)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor [B, D] of floats, got {_kind(t)}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must hold floating-point vectors, got a {t.dtype} tensor (ids go in item_ids)")
    if not isinstance(item_ids, torch.Tensor):
        raise TypeError(f"item_ids must be a torch.Tensor [B] of int64 ids, got {_kind(item_ids)}")
    if enqueue_mask is not None and not isinstance(enqueue_mask, torch.Tensor):
        raise TypeError(f"enqueue_mask must be None or a bool torch.Tensor [B], got {_kind(enqueue_mask)}")
    if item_bias is not None and not isinstance(item_bias, torch.Tensor) and not callable(item_bias):
        raise TypeError(f"item_bias must be None, a torch.Tensor [I] or a lookup ids -> [N], got {_kind(item_bias)}")
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
    bias_rows = None
    if isinstance(item_bias, torch.Tensor):
        if item_bias.dim() != 1 or (num_items is not None and item_bias.shape[0] != num_items):
            want = f"[{num_items}] (one per item of item_counts)" if num_items is not None else "[I] (1-d)"
            raise ValueError(f"item_bias must be {want}, got shape {tuple(item_bias.shape)}")
        bias_rows = item_bias.shape[0]
    if not values or not len(item_ids):
        return
    low, high = int(item_ids.min()), int(item_ids.max())
    if low < 0 or (num_items is not None and high >= num_items):
        bound = f"[0, {num_items})" if num_items is not None else "non-negative"
        raise ValueError(f"item_ids must be {bound} (item_counts has {num_items} items), got ids from "
                         f"{low} to {high}")
    if bias_rows is not None and high >= bias_rows:
        raise ValueError(f"item_bias has {bias_rows} entries, got item ids up to {high}")
    for name, t in (("user_emb", user_emb), ("item_emb", item_emb)):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} holds {int((~torch.isfinite(t)).sum())} NaN or infinite values")


def integer_argument(name: str, value, minimum: int) -> int:
    """``value`` as an int: TypeError unless it is an integer (a bool is not), ValueError below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {_kind(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def positive_number(name: str, value) -> float:
    """``value`` as given: TypeError unless it is a real number (a bool is not), ValueError unless
    finite and > 0 (NaN is refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a finite number > 0, got {_kind(value)}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def check_counts(item_counts) -> np.ndarray:
    """``item_counts`` as a numpy array: TypeError unless numbers, ValueError unless a non-empty
    1-d array of finite counts >= 0 (NaN and infinity are refused)."""
    if isinstance(item_counts, (str, bytes)):
        raise TypeError(f"item_counts must be a 1-d array of counts, got {_kind(item_counts)}")
    if isinstance(item_counts, torch.Tensor):
        item_counts = item_counts.detach().cpu().numpy()
    try:
        counts = np.asarray(item_counts)
    except (TypeError, ValueError):
        counts = None
    if counts is None or counts.dtype.kind not in "iuf":
        got = _kind(item_counts) if counts is None else f"{_kind(item_counts)} of {counts.dtype}"
        raise TypeError(f"item_counts must be a 1-d array of counts (numbers), got {got}")
    if counts.ndim != 1 or len(counts) == 0:
        raise ValueError(f"item_counts must be a non-empty 1-d array of counts >= 0, got shape {counts.shape}")
    bad = ~np.isfinite(counts) if counts.dtype.kind == "f" else np.zeros(len(counts), dtype=bool)
    if bad.any():
        raise ValueError(f"item_counts must be finite counts >= 0, got {int(bad.sum())} NaN or infinite "
                         f"(the first at index {int(np.flatnonzero(bad)[0])})")
    if (counts < 0).any():
        first = int(np.flatnonzero(counts < 0)[0])
        raise ValueError(f"item_counts must be counts >= 0, got {counts[first].item()!r} at index {first}")
    return counts


def _kind(value) -> str:
    """What a caller passed, in a few words: the type, and its shape where it has one."""
    shape = getattr(value, "shape", None)
    kind = type(value).__name__
    if isinstance(value, (str, bytes)):
        return f"{kind} {value[:40]!r}"
    return f"{kind} of shape {tuple(shape)}" if shape is not None else kind
