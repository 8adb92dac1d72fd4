"""The exact softmax over every item: the objective a sampled softmax estimates.

For a row i with positive item t_i, every item of the catalogue is a column:

    loss_i = -log softmax_j((u_i . v_j + b_j) / T)[t_i],   j over all I items

No negative is drawn, so no log q correction applies, and no accidental hit exists (each item is
one column; the row's other positives are negatives, as in any full softmax). Each step encodes
every item with gradient (for an ID tower that is the whole table), in row blocks through the
fused node (:mod:`cbns.objective.fused_softmax`), so memory stays at one ``[rows, I]`` block.
Affordable where the catalogue is small; it is the reference row of the sampler tables. It is
not a ceiling of the ranking metrics: on MovieLens-100k CBNS ranks better than it (BENCHMARKS.md).
"""
from __future__ import annotations

import torch
from torch import nn

from cbns.objective.empty_rank import zero_on_graph
from cbns.objective.fused_softmax import fused_sampled_softmax
from cbns.objective.input_checks import integer_argument, positive_number
from cbns.objective.precision import compute_dtype


class FullSoftmaxLoss(nn.Module):
    """``loss(user_emb, item_emb, item_ids, item_bias=, encode_items=)``: the exact softmax.

    Args:
        num_items: I, the catalogue size.
        temperature: T, finite and > 0 (NaN is refused).
        precision: ``fp32`` or ``bf16`` (the score products in bfloat16).
    """

    def __init__(self, num_items: int, temperature: float = 0.1, precision: str = "fp32"):
        super().__init__()
        num_items = integer_argument("num_items", num_items, 1)
        positive_number("temperature", temperature)
        self.num_items, self.temperature, self.precision = num_items, temperature, precision
        self.gather_across_ranks, self.process_group = False, None  # every rank scores every item

    @classmethod
    def from_config(cls, config, item_counts) -> FullSoftmaxLoss:
        return cls(len(item_counts), config.loss.temperature, config.training.precision)

    def forward(self, user_emb: torch.Tensor, item_emb: torch.Tensor, item_ids: torch.Tensor, *,
                item_bias=None, encode_items=None, rank_rows=None) -> torch.Tensor:
        """The mean cross-entropy over the rows; ``encode_items`` (the item tower, ``ids [N] ->
        [N, D]``) encodes the catalogue. ``item_emb`` is not needed (the positives are columns).
        ``item_bias``: ``[I]``, or a lookup ``ids [N] -> [N]`` of it, or None."""
        if encode_items is None:
            raise ValueError("the full softmax encodes every item: pass encode_items=<the item tower>")
        catalogue = torch.arange(self.num_items, device=item_ids.device)
        every = encode_items(catalogue)
        if item_bias is None:
            bias = None
        else:
            bias = (item_bias(catalogue) if callable(item_bias) else item_bias) / self.temperature
        if not len(item_ids):  # a rank without rows: zero, on the graph of every parameter
            return zero_on_graph(user_emb, item_emb, [], item_bias) + 0.0 * every.sum()
        # Each item is one column (its own positive's too): no accidental hit to mask.
        loss = fused_sampled_softmax(user_emb, every, None, bias, None, None, item_ids, self.temperature, False,
                                     compute_dtype=compute_dtype(self.precision))
        return loss + 0.0 * item_emb.sum()  # item_emb on the graph (DDP expects every output used)
