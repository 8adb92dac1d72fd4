"""The feature tower: an id embedding and the row's attribute embeddings through an MLP."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from cbns.data.features import FeatureTable
from cbns.errors import CbnsError, Opt
from cbns.model.towers.base import Tower
from cbns.model.towers.feature_encoder import FeatureEncoder
from cbns.model.towers.mlp import mlp
from cbns.registry import ITEM_TOWERS, USER_TOWERS


@USER_TOWERS.register("features")
@ITEM_TOWERS.register("features")
class FeaturesTower(Tower):
    """``f(id) = MLP([E[id] ; A_1(id) ; ... ; A_C(id)])``: ``[B] -> [B, D]``.

    ``E`` is a ``[num, D]`` id table and ``A_c(id)`` the mean embedding of the id's codes in
    attribute column c (:class:`FeatureEncoder`), so rarely seen ids still get a vector shaped by
    the attributes they share with others. Every call runs the MLP: unlike the ID tower, encoding
    an item costs something, which is where a bank of already-encoded items pays.
    """

    summary = "id + attributes through an MLP"
    options = ("hidden_dim", "dropout", "user_features", "user_feature_columns", "item_features",
               "item_feature_columns")

    @classmethod
    def from_config(cls, model, side, num, num_items, features=None) -> FeaturesTower:
        if features is None or not len(features):
            raise CbnsError(Opt(f"{side}_tower", "features"), f": the dataset has no {side} attributes; give a "
                            f"table with ", Opt(f"{side}_features", "FILE"), " (or use a dataset that has them)")
        return cls(num, model.dim, features, model.hidden_dim, model.dropout, model.init_std)

    def __init__(self, num: int, dim: int, table: FeatureTable, hidden: int = 128, dropout: float = 0.0,
                 init_std: float = 0.1):
        super().__init__()
        self.out_dim = dim
        self.embedding = nn.Embedding(num, dim)
        nn.init.normal_(self.embedding.weight, std=init_std)
        self.features = FeatureEncoder(table, dim, init_std)
        self.mlp = mlp(dim + self.features.out_dim, hidden, dim, dropout)

    def forward(self, ids: torch.Tensor, context: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        return self.mlp(torch.cat([self.embedding(ids), self.features(ids)], dim=-1))
