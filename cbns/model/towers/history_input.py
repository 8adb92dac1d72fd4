"""Reading the history tensors out of a tower's context, with a clear error when they are missing."""
from __future__ import annotations

from collections.abc import Mapping

import torch

from cbns.data.history import HISTORY, HISTORY_LENGTH


def history_input(context: Mapping[str, torch.Tensor] | None, tower: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(history [B, L], history_length [B])`` from ``context``."""
    if context is None or HISTORY not in context or HISTORY_LENGTH not in context:
        raise ValueError(f"{tower} needs the context keys {HISTORY!r} and {HISTORY_LENGTH!r} "
                         f"(see cbns.data.history.HistoryContext)")
    return context[HISTORY], context[HISTORY_LENGTH]
