"""The tower interface: anything that maps a batch of ids to ``[B, D]`` embeddings."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class Tower(nn.Module):
    """An encoder f(ids, context) -> ``[B, D]``.

    ``ids`` is ``[B]`` int64 (user or item ids). ``context`` carries whatever else a tower needs
    for the batch (a user's history, item attributes, ...) as named tensors; the ID tower ignores
    it. The loss, samplers and bank only ever see the returned embeddings, so a new encoder is a
    new subclass registered by name (:data:`cbns.registry.USER_TOWERS`, ``ITEM_TOWERS``) and
    nothing else changes (docs/extending.md).
    """

    #: width D of the returned embeddings
    out_dim: int
    #: True for towers that read a user's history from the context (see :mod:`cbns.data.history`)
    needs_history: bool = False
    #: One line for ``user_tower`` / ``item_tower`` help.
    summary = ""
    #: The config options this tower reads beyond ``dim`` and ``init_std``.
    options: tuple[str, ...] = ()
    #: True for a tower that is one learned vector per id and nothing else: with both towers such
    #: tables ``item_side auto`` trains the paper's joint form (:mod:`cbns.training.recipe`). A
    #: tower of your own passed to :func:`cbns.train` may set it too (any ``nn.Module``).
    id_table: bool = False

    @classmethod
    def from_config(cls, model, side: str, num: int, num_items: int, features=None) -> Tower:
        """The tower the model section of a config describes (``model``, a
        :class:`cbns.config.ModelConfig`: ``dim``, ``hidden_dim``, ...), for ``side`` (``user`` or
        ``item``) with ``num`` ids on that side, ``num_items`` items, and that side's attribute
        table ``features`` (a :class:`cbns.data.features.FeatureTable`, or None)."""
        raise NotImplementedError(f"{cls.__name__} cannot be built from a config")

    def forward(self, ids: torch.Tensor, context: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def encode_all(self, num: int, context: Mapping[str, torch.Tensor] | None = None,
                   chunk: int = 8192) -> torch.Tensor:
        """``[num, D]``: every id ``0..num-1`` encoded, in chunks, without gradient.

        ``context`` (when given) holds one row per id: ``context[k][r]`` belongs to id r, and each
        chunk of ids gets the matching rows.
        """
        return encode_in_chunks(self, num, context, chunk)


def encode_all(tower: nn.Module, num: int, context: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
    """Every id of ``tower`` encoded: its own ``encode_all`` when it has one (a :class:`Tower`),
    else :func:`encode_in_chunks` (any module called as ``tower(ids, context)``)."""
    if hasattr(tower, "encode_all"):
        return tower.encode_all(num, context)
    return encode_in_chunks(tower, num, context)


@torch.no_grad()
def encode_in_chunks(tower: nn.Module, num: int, context: Mapping[str, torch.Tensor] | None = None,
                     chunk: int = 8192) -> torch.Tensor:
    """``[num, D]``: ids ``0..num-1`` through ``tower`` in chunks, each with its rows of ``context``."""
    device = next(tower.parameters()).device
    parts = []
    for s in range(0, num, chunk):
        rows = slice(s, min(s + chunk, num))
        part = None if context is None else {k: v[rows].to(device) for k, v in context.items()}
        parts.append(tower(torch.arange(rows.start, rows.stop, device=device), part))
    return torch.cat(parts)
