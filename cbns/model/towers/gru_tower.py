"""The sequence tower (GRU4Rec): a GRU over the user's time-ordered history."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from cbns.model.towers.base import Tower
from cbns.model.towers.history_input import history_input
from cbns.registry import USER_TOWERS


@USER_TOWERS.register("gru")
class GruTower(Tower):
    """``f(u, H) = W h_n + b`` with ``h_n`` the last GRU state over ``E[h_1], ..., E[h_n]``.

    The GRU runs over the whole padded width of the history (oldest first, right-padded,
    :mod:`cbns.data.history`) and the state is taken after each row's last real item, so the
    padding after it changes nothing and the lengths never leave the device (packing by length
    would read them back each step). An empty history leaves the zero initial state; an empty
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
        outputs, _ = self.gru(inputs)                                # [B, L, hidden]
        # The state after each row's last real item: the GRU reads left to right, so the padding
        # after it has not touched it. Gathered on the device: the lengths never go to the host.
        at = (length - 1).clamp(min=0)[:, None, None].expand(-1, 1, outputs.shape[2])
        state = outputs.gather(1, at)[:, 0] * (length > 0)[:, None].to(outputs.dtype)
        return self.out(self.dropout(state))
