"""The training optimizer: row-wise Adam for the tables, fused Adam for everything else.

With ``sparse_updates`` (the default) the model's row-indexed tables (every ``nn.Embedding`` and
``nn.EmbeddingBag``, and the learned item bias;
:meth:`cbns.model.two_tower.TwoTower.sparse_parameters`) get row-sparse gradients and
:class:`cbns.training.row_adam.RowAdam` in catch-up mode (dense Adam's trajectory, computed
lazily), so a step costs the rows it touches; the dense parameters (MLPs, the GRU) keep
``torch.optim.Adam`` (fused). Without it, one fused Adam over every parameter, as before the
option existed.
"""
from __future__ import annotations

import torch
from torch import nn

from cbns.training.row_adam import RowAdam


class SplitOptimizer:
    """Two optimizers behind one ``zero_grad`` / ``step`` / ``param_groups`` / ``state_dict``.

    ``param_groups`` lists the dense optimizer's groups, then the sparse one's, so a learning-rate
    schedule that sets every group's ``lr`` sets both. :meth:`state_dict` holds both optimizers'
    states (``{"dense": ..., "sparse": ...}``, None for one that has no parameters).
    """

    def __init__(self, dense: torch.optim.Optimizer | None, sparse: RowAdam | None):
        self.dense, self.sparse = dense, sparse
        self.parts = {name: opt for name, opt in (("dense", dense), ("sparse", sparse)) if opt is not None}

    @property
    def param_groups(self) -> list[dict]:
        return [group for opt in self.parts.values() for group in opt.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.parts.values():
            opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for opt in self.parts.values():
            opt.step()

    def settle(self) -> None:
        """Bring every table row up to the current step (see :meth:`RowAdam.settle`)."""
        if self.sparse is not None:
            self.sparse.settle()

    def state_dict(self) -> dict:
        return {name: getattr(self, name).state_dict() if getattr(self, name) is not None else None
                for name in ("dense", "sparse")}

    def load_state_dict(self, state: dict) -> None:
        for name in ("dense", "sparse"):
            mine, saved = getattr(self, name), state.get(name)
            if (mine is None) != (saved is None):
                raise ValueError(f"the checkpoint's {name} optimizer state does not fit this model "
                                 f"({'none saved' if saved is None else 'this model has no ' + name + ' parameters'})")
            if mine is not None:
                mine.load_state_dict(saved)


def build_optimizer(model: nn.Module, lr: float, weight_decay: float = 0.0, sparse: bool = True,
                    sparse_lr: float | None = None, catch_up: bool = True,
                    whole_rows: int | None = None):
    """The optimizer of a run (see the module docstring): Adam at ``lr`` for the dense parameters,
    RowAdam at ``sparse_lr`` (default ``lr``) for the tables. ``model`` must already hold its
    tables in sparse mode when ``sparse`` (:class:`cbns.model.two_tower.TwoTower` built with
    ``sparse_updates``); ``whole_rows`` is RowAdam's (the trainer passes the batch size: a table
    no larger than a batch is stepped whole, as dense Adam). Each group keeps its starting rate
    as ``base_lr``, which a schedule scales."""
    if not sparse:
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    else:
        tables = list(model.sparse_parameters())
        ids = {id(p) for p in tables}
        dense = [p for p in model.parameters() if id(p) not in ids]
        opt = SplitOptimizer(
            torch.optim.Adam(dense, lr=lr, weight_decay=weight_decay, fused=True) if dense else None,
            RowAdam(tables, lr=sparse_lr or lr, weight_decay=weight_decay, catch_up=catch_up, whole_rows=whole_rows)
            if tables else None)
    for group in opt.param_groups:
        group["base_lr"] = group["lr"]
    return opt
