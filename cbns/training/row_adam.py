"""Lazy Adam over the rows of embedding tables: a step costs the rows it touches, not the table.

For a table ``W [R, ...]`` whose gradient names the rows a step touched (a sparse COO gradient,
as ``nn.Embedding(sparse=True)`` and :func:`cbns.model.sparse_rows.gather_rows` give), each
touched row ``r`` with gradient ``g`` (copies of a row summed) is updated as Adam would update it
if the steps that touched it were the only steps:

    c_r <- c_r + 1                                   (the row's own step count)
    g   <- g + wd * W[r]                             (weight decay, on touched rows only)
    m_r <- b1 m_r + (1 - b1) g,    v_r <- b2 v_r + (1 - b2) g^2
    W[r] <- W[r] - lr * (m_r / (1 - b1^c_r)) / (sqrt(v_r / (1 - b2^c_r)) + eps)

Rows a step does not touch keep their weights and moments exactly (lazy moments: no decay while
a row is absent, and no momentum step either). The bias correction counts each row's own
updates, so a row seen for the first time late in training takes Adam's first step, ``lr`` in
the gradient's direction, not a step scaled by the table's age (``torch.optim.SparseAdam``
counts every call of ``step`` for the whole table instead). ``lr`` is the group's current value,
so a learning-rate schedule applies as it does to Adam.

A dense gradient (a table used through ``W[ids]`` by a custom tower) is taken row by row too: the
rows whose gradient has a non-zero entry are the touched ones.
"""
from __future__ import annotations

import torch
from torch.optim import Optimizer


class RowAdam(Optimizer):
    """Lazy, row-wise Adam (see the module docstring) for tables indexed along dim 0.

    Args:
        params: the tables (any shape ``[R, ...]``, a 1-d ``[R]`` item bias included).
        lr, betas, eps: as for ``torch.optim.Adam``.
        weight_decay: L2 added to the gradient of the touched rows (Adam's ``weight_decay``,
            applied lazily).

    State per table: ``exp_avg`` and ``exp_avg_sq`` (shaped like the table) and ``row_steps``
    (``[R]`` int64, each row's update count), all in :meth:`state_dict`.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        if not eps > 0 or weight_decay < 0:
            raise ValueError(f"eps must be > 0 and weight_decay >= 0, got {eps} and {weight_decay}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, group)
        return loss

    def _update(self, p: torch.Tensor, group: dict) -> None:
        rows, grad = touched_rows(p.grad)
        if not len(rows):
            return
        state = self.state[p]
        if not state:
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["row_steps"] = torch.zeros(p.shape[0], dtype=torch.long, device=p.device)
        beta1, beta2 = group["betas"]
        weights = p.index_select(0, rows)
        if group["weight_decay"]:
            grad = grad.add(weights, alpha=group["weight_decay"])
        count = state["row_steps"].index_select(0, rows).add_(1)
        state["row_steps"].index_copy_(0, rows, count)
        m = state["exp_avg"].index_select(0, rows).lerp_(grad, 1 - beta1)
        v = state["exp_avg_sq"].index_select(0, rows).mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        state["exp_avg"].index_copy_(0, rows, m)
        state["exp_avg_sq"].index_copy_(0, rows, v)
        shape = (-1,) + (1,) * (p.dim() - 1)
        power = count.to(p.dtype).view(shape)
        correction1 = 1 - torch.pow(beta1, power)
        correction2 = 1 - torch.pow(beta2, power)
        denom = (v / correction2).sqrt_().add_(group["eps"])
        p.index_copy_(0, rows, weights.addcdiv_(m, denom * correction1, value=-group["lr"]))


def touched_rows(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rows [n], grad [n, ...])``: the distinct rows a gradient touches, ascending, and their
    gradient (copies of a row summed). A dense gradient touches the rows with a non-zero entry."""
    if grad.is_sparse:
        grad = grad.coalesce()
        return grad.indices()[0], grad.values()
    rows = grad.reshape(grad.shape[0], -1).ne(0).any(1).nonzero()[:, 0]
    return rows, grad.index_select(0, rows)
