"""The sequence tower (GRU4Rec): a GRU over the user's time-ordered history."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from cbns.model.towers.base import Tower
from cbns.model.towers.history_input import history_input
from cbns.registry import USER_TOWERS


@USER_TOWERS.register("gru")
class GruTower(Tower):
    """``f(u, H) = W h_n + b`` with ``h_n`` the last GRU state over ``E[h_1], ..., E[h_n]``.

    The history (oldest first, :mod:`cbns.data.history`) is packed by length, so padded entries
    are never read and cost nothing. An empty history leaves the zero initial state; an empty
    batch gives ``[0, D]`` still on the graph of every parameter (DDP waits for each). ``E`` is a
    ``[num_items, D]`` table of the tower's own; dropout applies to the inputs and the last state.
    """

    needs_history = True
    summary = "GRU4Rec over the history"
    options = ("max_history", "hidden_dim", "dropout")

    @classmethod
    def from_config(cls, model, side, num, num_items, features=None) -> GruTower:
        return cls(num_items, model.dim, model.hidden_dim, model.dropout, model.init_std)

    def __init__(self, num_items: int, dim: int, hidden: int = 128, dropout: float = 0.0, init_std: float = 0.1):
        super().__init__()
        self.out_dim = dim
        self.items = nn.Embedding(num_items, dim)
        nn.init.normal_(self.items.weight, std=init_std)
        self.gru = nn.GRU(dim, hidden, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, dim)

    def forward(self, ids: torch.Tensor, context: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        history, length = history_input(context, type(self).__name__)
        inputs = self.dropout(self.items(history))
        if len(length):
            packed = pack_padded_sequence(inputs, length.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
            _, last = self.gru(packed)                               # [1, B, hidden]
        else:  # no rows (a rank's share of a distributed step): packing refuses empty batches
            _, last = self.gru(inputs)
        state = last[0] * (length > 0)[:, None].to(last.dtype)
        return self.out(self.dropout(state))
