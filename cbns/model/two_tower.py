"""The two-tower model: a user tower, an item tower, and how their outputs are compared."""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from cbns.model.sparse_rows import gather_rows
from cbns.model.towers.base import encode_all
from cbns.model.unit_norm import unit_rows

#: The modules whose weight is a table looked up by row: with ``sparse_updates`` their gradient
#: holds the rows a step touched, not the whole table.
TABLES = (nn.Embedding, nn.EmbeddingBag)


class TwoTower(nn.Module):
    """``s(u, i) = f_u(u) . g_v(i)``, with both embeddings L2-normalised when ``normalize``.

    With ``normalize`` the score is the cosine similarity, and :meth:`user_embeddings` and
    :meth:`item_embeddings` return unit vectors, so the exported dot product is the ranking score.
    The temperature is not applied here: it divides the logits of the training loss only (it does
    not change a ranking).

    With ``sparse_updates`` every table of the towers (each ``nn.Embedding`` / ``nn.EmbeddingBag``)
    and the item bias take row-sparse gradients (:meth:`sparse_parameters`, updated row by row by
    :class:`cbns.training.row_adam.RowAdam`): a training step then costs the rows it touches.
    """

    def __init__(self, user_tower: nn.Module, item_tower: nn.Module, normalize: bool = True, num_items: int = 0,
                 item_bias: bool = False, sparse_updates: bool = False):
        super().__init__()
        widths = getattr(user_tower, "out_dim", None), getattr(item_tower, "out_dim", None)
        if None not in widths and widths[0] != widths[1]:
            raise ValueError(f"tower widths differ: user {widths[0]}, item {widths[1]}")
        self.user_tower = user_tower
        self.item_tower = item_tower
        self.normalize = normalize
        # Ranking-time popularity prior in dot-product units, one per item (cbns.model.popularity_prior);
        # all zero = none. A buffer, so the checkpoint keeps the value chosen on validation.
        self.register_buffer("item_prior", torch.zeros(num_items))
        # A learned per-item score offset b(i), in the same units as the dot product (so the
        # training logit is (s(u, i) + b(i)) / T): what a cosine score cannot hold, an item's
        # appeal to every user. None when off (the state_dict then has no entry for it).
        self.item_bias = nn.Parameter(torch.zeros(num_items)) if item_bias else None
        self.sparse_updates = sparse_updates
        if sparse_updates:
            for module in self.modules():
                if isinstance(module, TABLES):
                    module.sparse = True

    @property
    def dim(self) -> int | None:
        """The towers' output width (None for towers that do not say)."""
        return getattr(self.user_tower, "out_dim", None)

    def user_embeddings(self, ids: torch.Tensor, context: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """``[B, D]`` user vectors."""
        return self._finish(self.user_tower(ids, context))

    def item_embeddings(self, ids: torch.Tensor, context: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """``[B, D]`` item vectors."""
        return self._finish(self.item_tower(ids, context))

    def item_bias_of(self, ids: torch.Tensor) -> torch.Tensor:
        """``[N]`` the learned bias of items ``ids [N]`` (a row-sparse gradient with
        ``sparse_updates``); requires ``item_bias``."""
        return gather_rows(self.item_bias, ids) if self.sparse_updates else self.item_bias[ids]

    def sparse_parameters(self) -> list[nn.Parameter]:
        """The parameters whose gradients are row-sparse (none without ``sparse_updates``)."""
        if not self.sparse_updates:
            return []
        tables = [m.weight for m in self.modules() if isinstance(m, TABLES)]
        return tables + ([self.item_bias] if self.item_bias is not None else [])

    @torch.no_grad()
    def all_items(self, num_items: int, context: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """``[num_items, D]`` every item vector, for ranking and export."""
        return self._finish_all(encode_all(self.item_tower, num_items, context))

    @torch.no_grad()
    def all_users(self, num_users: int, context: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """``[num_users, D]`` every user vector, for ranking and export; ``context`` holds one row
        per user (e.g. the histories of :meth:`cbns.data.history.HistoryContext.for_users`)."""
        return self._finish_all(encode_all(self.user_tower, num_users, context))

    @property
    def has_prior(self) -> bool:
        return bool(self.item_prior.numel()) and bool(self.item_prior.any())

    @property
    def has_item_column(self) -> bool:
        """Whether ranking adds a per-item term (a learned bias, or the prior) to the dot product."""
        return self.item_bias is not None or self.has_prior

    def item_column(self) -> torch.Tensor:
        """``[num_items]`` what ranking adds to ``user . item``: the learned bias plus the prior."""
        column = self.item_prior.detach().clone()
        if self.item_bias is not None:
            column += self.item_bias.detach()
        return column

    def set_prior(self, prior: torch.Tensor) -> None:
        """Set the ``[num_items]`` ranking prior (dot-product units; zeros remove it)."""
        self.item_prior.copy_(prior)

    def ranking_vectors(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``users [U, D]``, ``items [I, D]`` with the per-item term folded in when there is one
        (:meth:`item_column`): ``[U, D + 1]`` (a column of ones) and ``[I, D + 1]`` (the term),
        so that the dot product is the ranking score."""
        if not self.has_item_column:
            return users, items
        ones = users.new_ones(users.shape[0], 1)
        return torch.cat([users, ones], 1), torch.cat([items, self.item_column().to(items)[:, None]], 1)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As :meth:`torch.nn.Module.load_state_dict`; a state saved before the popularity prior
        existed (no ``item_prior``) loads with no prior."""
        if "item_prior" not in state_dict:
            state_dict = {**state_dict, "item_prior": torch.zeros_like(self.item_prior)}
        return super().load_state_dict(state_dict, strict, assign)

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        return unit_rows(x) if self.normalize else x

    def _finish_all(self, x: torch.Tensor) -> torch.Tensor:
        """A whole table's vectors: normalised (a new tensor), or a copy of ``x``, which may be a
        view of a tower's table (:meth:`cbns.model.towers.id_tower.IdTower.encode_all`)."""
        return F.normalize(x, dim=-1) if self.normalize else x.clone()
