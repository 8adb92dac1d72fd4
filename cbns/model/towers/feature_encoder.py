"""Embeddings of a row's attribute columns, looked up by id from tables held in buffers."""
from __future__ import annotations

import torch
from torch import nn

from cbns.data.features import FeatureTable


class FeatureEncoder(nn.Module):
    """``ids [B] -> [B, C * dim]``: per attribute column, the mean embedding of the row's codes.

    Code 0 (missing, or padding of a multi-valued column) is ignored; a row with no code in a
    column gets zeros there. The code tables are non-persistent buffers: they come from the data,
    not from the checkpoint, and follow ``.to(device)``.
    """

    def __init__(self, table: FeatureTable, dim: int, init_std: float = 0.1):
        super().__init__()
        self.num_columns = len(table)
        self.out_dim = dim * self.num_columns
        self.bags = nn.ModuleList()
        for k, col in enumerate(table.columns):
            self.register_buffer(f"codes_{k}", torch.from_numpy(col.codes), persistent=False)
            bag = nn.EmbeddingBag(col.vocab, dim, mode="mean", padding_idx=0)
            nn.init.normal_(bag.weight, std=init_std)
            with torch.no_grad():
                bag.weight[0].zero_()
            self.bags.append(bag)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        parts = [bag(getattr(self, f"codes_{k}")[ids]) for k, bag in enumerate(self.bags)]
        return torch.cat(parts, dim=-1) if parts else torch.zeros(len(ids), 0, device=ids.device)
