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

    The mean is a sum weighted by ``1 / count`` over the real codes (weight 0 on code 0), not the
    bag's own ``mean`` with ``padding_idx``: with sparse gradients torch drops the padding entries
    by a boolean index, an output whose size the host must read back on a GPU. Row 0 gets a zero
    gradient instead, and stays at zero.
    """

    def __init__(self, table: FeatureTable, dim: int, init_std: float = 0.1):
        super().__init__()
        self.num_columns = len(table)
        self.out_dim = dim * self.num_columns
        self.bags = nn.ModuleList()
        for k, col in enumerate(table.columns):
            self.register_buffer(f"codes_{k}", torch.from_numpy(col.codes), persistent=False)
            bag = nn.EmbeddingBag(col.vocab, dim, mode="sum")
            nn.init.normal_(bag.weight, std=init_std)
            with torch.no_grad():
                bag.weight[0].zero_()
            self.bags.append(bag)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        parts = [_mean_of_codes(bag, getattr(self, f"codes_{k}")[ids]) for k, bag in enumerate(self.bags)]
        return torch.cat(parts, dim=-1) if parts else torch.zeros(len(ids), 0, device=ids.device)


def _mean_of_codes(bag: nn.EmbeddingBag, codes: torch.Tensor) -> torch.Tensor:
    """``codes [B, L] -> [B, dim]``: the mean of the rows of the non-zero codes (zeros for none)."""
    real = (codes != 0).to(bag.weight.dtype)
    return bag(codes, per_sample_weights=real / real.sum(1, keepdim=True).clamp_(min=1))
