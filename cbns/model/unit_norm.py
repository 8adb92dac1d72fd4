"""Scaling vectors to unit length as one autograd node: the towers' ``normalize`` in few launches.

For rows ``x [N, D]``, ``n = max(||x||, eps)`` and ``y = x / n``; the gradient is

    dx = (g - y (g . y)) / n      where ||x|| > eps,      g / eps      elsewhere

(the second: a row too short to normalise is only divided by ``eps``, as ``F.normalize`` does).
Autograd through ``F.normalize`` dispatches about sixteen ops for this backward (the norm's and
the clamp's backward, each a few); here it is five, and the forward three, which counts on a GPU
where each op is a kernel launch. The values equal ``F.normalize``'s.
"""
from __future__ import annotations

import torch

#: As ``F.normalize``'s default.
EPS = 1e-12


class _UnitNorm(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x):
        n = torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min_(EPS)
        y = x / n
        ctx.save_for_backward(y, n)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        y, n = ctx.saved_tensors
        along = (g * y).sum(-1, keepdim=True) * (n > EPS)              # g . y, 0 where n was clamped
        return torch.addcmul(g, y, along, value=-1).div_(n)


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """``x / max(||x||, 1e-12)`` row-wise (the last dimension), like ``F.normalize(x, dim=-1)``."""
    return _UnitNorm.apply(x)
