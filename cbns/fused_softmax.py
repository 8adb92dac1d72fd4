"""The sampled-softmax cross-entropy as one autograd node: one GEMM and one softmax forward, the
gradient GEMMs backward, for both item sides.

With users ``U [B, D]``, candidates ``C = [F; R]`` (``F [Nf, D]`` fresh vectors that carry gradient
to the item tower, the batch's positives among them; ``R [Nr, D]`` frozen rows such as the CBNS
bank), a column bias ``b [N]`` (``-log q``, or 0), the accidental-hit positions ``H`` and each
row's target column ``t_i < Nf``:

    L = U C^T / T + b,   L[h] = MASKED for h in H                    [B, N]
    P = softmax(L) row-wise,   Y = one-hot(t)                        [B, N]
    joint:  loss = mean_i -log P[i, t_i]
            dU = (P - Y) C / (B T),     dF = (P - Y)[:, :Nf]^T U / (B T)
    split:  Q = softmax(L[:, :Nf]) (the fresh columns alone)
            loss = mean_i -log P[i, t_i] + mean_i -log Q[i, t_i]
            dU = (P - Y) C / (B T),     dF = (Q - Y[:, :Nf])^T U / (B T)

The split form is what :class:`cbns.loss.SampledSoftmaxLoss` states as two cross-entropies (the
user side over every candidate with items detached, the item side over the fresh candidates with
users detached); here it costs one forward GEMM instead of two.

Why by hand: autograd through ``addmm``, an in-place mask and ``cross_entropy`` writes and rereads
several more ``[B, N]`` blocks (the clone the in-place mask's backward makes, the zeros of the NLL
backward, the log-softmax backward) and, in split form, computes the fresh block twice. Here the
``[B, N]`` work is the GEMMs plus one softmax kernel; the logits block is freed after the forward
and only the probabilities are kept for the backward.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch

from cbns.logits import MASKED

#: A probability below this is recomputed from the logits through a log-sum-exp, so that a loss
#: whose target probability underflows float32 is still exact rather than infinite.
_TINY = 1e-30


def fused_sampled_softmax(users: torch.Tensor, fresh: torch.Tensor, frozen: torch.Tensor | None,
                          bias: torch.Tensor | None, hit_rows: torch.Tensor, hit_cols: torch.Tensor,
                          target: torch.Tensor, temperature: float, split: bool) -> torch.Tensor:
    """The scalar loss above; gradients flow to ``users`` and ``fresh``, never to ``frozen``.

    Args:
        users: ``[B, D]`` user vectors.
        fresh: ``[Nf, D]`` candidates with item-tower gradient (columns ``0..Nf-1``).
        frozen: ``[Nr, D]`` candidates without it (columns ``Nf..N-1``), or None.
        bias: ``[N]`` added to every row (``-log q``), or None for no correction.
        hit_rows, hit_cols: ``[H]`` int64, the logits set to :data:`cbns.logits.MASKED`.
        target: ``[B]`` int64, each row's positive column, in ``[0, Nf)``.
        temperature: T > 0.
        split: the split item side (needs ``frozen``; without frozen rows it equals joint).
    """
    frozen = frozen.detach() if frozen is not None and frozen.shape[0] > 0 else None
    return _FusedSampledSoftmax.apply(users, fresh, frozen, bias, hit_rows, hit_cols, target,
                                      float(temperature), bool(split and frozen is not None))


class _FusedSampledSoftmax(torch.autograd.Function):

    @staticmethod
    def forward(ctx, users, fresh, frozen, bias, hit_rows, hit_cols, target, temperature, split):
        scaled, cand = _operands(users.detach(), fresh.detach(), frozen, bias, temperature)
        logits = scaled @ cand.T
        dim = users.shape[1]
        scaled, cand = scaled[:, :dim], cand[:, :dim]
        logits.index_put_((hit_rows, hit_cols), torch.tensor(MASKED, dtype=logits.dtype))
        rows = torch.arange(users.shape[0], device=users.device)
        probs = torch.softmax(logits, dim=1)
        loss = _mean_nll(probs, logits, rows, target)
        item_probs = None
        if split:
            fresh_logits = logits[:, :fresh.shape[0]]
            item_probs = torch.softmax(fresh_logits, dim=1)
            loss = loss + _mean_nll(item_probs, fresh_logits, rows, target)
        del logits
        ctx.save_for_backward(probs, item_probs, scaled, cand, target)
        ctx.temperature = temperature
        ctx.num_fresh = fresh.shape[0]
        return loss

    @staticmethod
    def backward(ctx, grad):
        probs, item_probs, scaled, cand, target = ctx.saved_tensors
        num_fresh, temperature = ctx.num_fresh, ctx.temperature
        batch = probs.shape[0]
        rows = torch.arange(batch, device=probs.device)
        scale = grad / batch
        grad_users = grad_fresh = None
        # P - Y is formed in place on the saved probabilities and undone afterwards, so that the
        # saved tensors are unchanged (a second backward with retain_graph sees the same values).
        with _minus_one_hot(probs, rows, target):
            if ctx.needs_input_grad[0]:
                grad_users = (probs @ cand) * (scale / temperature)
            if ctx.needs_input_grad[1] and item_probs is None:
                grad_fresh = (probs[:, :num_fresh].T @ scaled) * scale
        if ctx.needs_input_grad[1] and item_probs is not None:
            with _minus_one_hot(item_probs, rows, target):
                grad_fresh = (item_probs.T @ scaled) * scale
        return grad_users, grad_fresh, None, None, None, None, None, None, None


def _operands(users, fresh, frozen, bias, temperature) -> tuple[torch.Tensor, torch.Tensor]:
    """``(U / T, C)``, each with one more column (``1`` and ``b``) when there is a bias.

    The bias then comes out of the matrix product itself (``[U/T, 1] . [C, b] = U C^T / T + b``):
    one more term in each dot product instead of another pass over the ``[B, N]`` block.
    """
    num_fresh, dim = fresh.shape
    rows = num_fresh + (frozen.shape[0] if frozen is not None else 0)
    width = dim + (bias is not None)
    scaled = users.new_empty(users.shape[0], width)
    torch.mul(users, 1.0 / temperature, out=scaled[:, :dim])
    cand = fresh.new_empty(rows, width)
    cand[:num_fresh, :dim] = fresh
    if frozen is not None:
        cand[num_fresh:, :dim] = frozen
    if bias is not None:
        scaled[:, dim] = 1.0
        cand[:, dim] = bias.detach()
    return scaled, cand


def _mean_nll(probs: torch.Tensor, logits: torch.Tensor, rows: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean_i -log probs[i, t_i]``; rows whose probability underflows use ``lse - logit``."""
    picked = probs[rows, target]
    nll = -torch.log(picked)
    small = picked < _TINY
    if bool(small.any()):
        r = rows[small]
        nll[small] = torch.logsumexp(logits[r], dim=1) - logits[r, target[small]]
    return nll.mean()


@contextmanager
def _minus_one_hot(m: torch.Tensor, rows: torch.Tensor, target: torch.Tensor):
    """``m[rows, target] -= 1`` inside the block, the original values restored after it."""
    kept = m[rows, target]
    m.index_put_((rows, target), kept - 1)
    try:
        yield
    finally:
        m.index_put_((rows, target), kept)
