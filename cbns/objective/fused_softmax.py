"""The sampled-softmax cross-entropy as one autograd node, for both item sides, in row blocks.

With users ``U [B, D]``, candidates ``C = [F; R]`` (``F [Nf, D]`` fresh vectors that carry gradient
to the item tower, the batch's positives among them; ``R [Nr, D]`` frozen rows such as the CBNS
bank), a column bias ``b [N]`` (``-log q``, or 0), the accidental-hit positions ``H`` and each
row's target column ``t_i < Nf``:

    L = U C^T / T + b,   L[h] = MASKED for h in H                    [B, N]
    P = softmax(L) row-wise,   Y = one-hot(t)                        [B, N]
    loss = mean_i -log P[i, t_i]          (the cross-entropy of the full softmax, both sides)
    joint:  dU = (P - Y) C / (B T),     dF = (P - Y)[:, :Nf]^T U / (B T)
    split:  Q = softmax(L[:, :Nf]) = P[:, :Nf] / rowsum(P[:, :Nf])    (the fresh columns alone)
            dU = (P - Y) C / (B T),     dF = (Q - Y[:, :Nf])^T U / (B T)
    both:   db = colsum(P - Y) / B      (when the bias carries a gradient, e.g. a learned item
                                         bias: it learns from the softmax over every column, as the
                                         user side does, bank columns included)

The split form's gradients are those of two cross-entropies (the user side over every candidate
with items detached, the item side over the fresh candidates with users detached), as
:class:`cbns.objective.loss.SampledSoftmaxLoss` states them; here they cost one forward GEMM and
one softmax instead of two of each. The value returned is the full softmax's cross-entropy in
both forms: the split form changes the gradients, not what is being minimised and reported.

Why by hand: autograd through ``addmm``, an in-place mask and ``cross_entropy`` writes and rereads
several more ``[B, N]`` blocks (the clone the in-place mask's backward makes, the zeros of the NLL
backward, the log-softmax backward). Here, when a gradient is wanted, the forward also forms it
(the loss is a scalar, so its backward only scales). Rows are taken in blocks
(:func:`cbns.machine.block_rows`), each block going GEMM, mask, softmax, gradient GEMMs through two
reused ``[rows, N]`` buffers: no ``[B, N]`` tensor is allocated, so memory stays flat as the bank
grows, and the only ``[B, N]`` work besides the GEMMs is the softmax itself. The bias is added by the
forward GEMM (``addmm``), and ``P - Y`` is never written (``(P - Y) C = P C - C[t]``).

Two ways through a block. On the CPU in float32 (the default there) the accidental hits are found
once by a sort (:func:`cbns.objective.logits.hit_positions`) and written at their few positions,
and ``torch.softmax`` normalises; rows whose probabilities underflow are redone exactly. That
reads a few values back to the host, which costs nothing on a CPU. The *device-resident* way
(``dense_ids``; used on a GPU, and for ``bf16`` anywhere) never waits for the device: the hits
are an equality mask of the block's rows against the candidate ids, and the softmax is written
out with the fresh and the frozen columns exponentiated against their own row maxima

    e_f = exp(L_f - m_f),  e_r = exp(L_r - m),  m = max(m_f, m_r),  c = exp(m_f - m)
    s = c rowsum(e_f) + rowsum(e_r),   P_f = c e_f / s,   P_r = e_r / s,   Q = e_f / rowsum(e_f)
    -log P[i, t_i] = log s_i + m_i - L[i, t_i]

so that neither the loss nor the split side's Q can underflow and no row needs redoing. With a
``compute_dtype`` of bfloat16 the matrix products (scores and gradients) run in bfloat16 while the
logits, the bias (log q and the learned bias), the softmax, the loss and the accumulated gradients
stay in float32.
"""
from __future__ import annotations

import torch

from cbns.machine import block_rows
from cbns.objective.logits import MASKED

#: A probability below this is recomputed from the logits (a log-sum-exp, or a softmax over the
#: fresh columns), so that a loss or an item-side softmax that underflows float32 stays exact.
_TINY = 1e-30

#: Bytes of the per-block buffers (logits and probabilities). Measured on the
#: Gowalla shapes: blocks of 256 to 2048 rows run alike; much smaller blocks lose GEMM speed.
BLOCK_BYTES = 64 * 2**20
MIN_BLOCK_ROWS = 256


def fused_sampled_softmax(users: torch.Tensor, fresh: torch.Tensor, frozen: torch.Tensor | None,
                          bias: torch.Tensor | None, hit_rows: torch.Tensor | None, hit_cols: torch.Tensor | None,
                          target: torch.Tensor, temperature: float, split: bool, *,
                          dense_ids: tuple[torch.Tensor, torch.Tensor] | None = None,
                          compute_dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The scalar loss above; gradients flow to ``users`` and ``fresh``, never to ``frozen``.

    Args:
        users: ``[B, D]`` user vectors.
        fresh: ``[Nf, D]`` candidates with item-tower gradient (columns ``0..Nf-1``).
        frozen: ``[Nr, D]`` candidates without it (columns ``Nf..N-1``), or None.
        bias: ``[N]`` added to every row (``-log q``, plus a learned item bias), or None. When it
            requires grad it gets ``db`` above.
        hit_rows, hit_cols: ``[H]`` int64, the logits set to :data:`cbns.objective.logits.MASKED`
            (the CPU way); None with ``dense_ids``.
        target: ``[B]`` int64, each row's positive column, in ``[0, Nf)``.
        temperature: T > 0.
        split: the split item side (without frozen rows it equals joint, and joint is used).
        dense_ids: ``(positive_ids [B], candidate_ids [N])``: find the hits by comparing them per
            block, the device-resident way of the module docstring (every other copy of a row's
            positive id, its target column excepted, is masked).
        compute_dtype: the matrix products' dtype (float32, or bfloat16: the device-resident way).
    """
    frozen = frozen.detach() if frozen is not None and frozen.shape[0] > 0 else None
    if not torch.is_grad_enabled():  # no gradient will be asked for: do not form one
        users, fresh = users.detach(), fresh.detach()
        bias = bias.detach() if bias is not None else None
    users, fresh, frozen, bias = (_at_least_float32(x) for x in (users, fresh, frozen, bias))
    split = bool(split and frozen is not None)
    if dense_ids is not None or compute_dtype != torch.float32:
        if dense_ids is None:
            raise ValueError("compute_dtype other than float32 needs dense_ids (the device-resident way)")
        return _DeviceResidentSoftmax.apply(users, fresh, frozen, bias, dense_ids[0], dense_ids[1], target,
                                            float(temperature), split, compute_dtype)
    return _FusedSampledSoftmax.apply(users, fresh, frozen, bias, hit_rows, hit_cols, target,
                                      float(temperature), split)


class _FusedSampledSoftmax(torch.autograd.Function):

    @staticmethod
    def forward(ctx, users, fresh, frozen, bias, hit_rows, hit_cols, target, temperature, split):
        want_users, want_fresh = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        want_bias = ctx.needs_input_grad[3]
        scaled, cand, bias_row = _operands(users.detach(), fresh.detach(), frozen, bias, temperature)
        batch, dim = users.shape
        num_fresh, num = fresh.shape[0], cand.shape[0]
        grad_users = users.new_empty(batch, dim) if want_users else None
        grad_fresh = users.new_zeros(num_fresh, dim) if want_fresh else None
        grad_bias = users.new_zeros(num) if want_bias else None
        rows = min(batch, block_rows(2 * num * users.element_size(), BLOCK_BYTES, MIN_BLOCK_ROWS))
        logits_buf, probs_buf = users.new_empty(rows, num), users.new_empty(rows, num)
        order = torch.argsort(hit_rows)
        hit_rows, hit_cols = hit_rows[order], hit_cols[order]
        starts = list(range(0, batch, rows)) + [batch]
        bounds = torch.searchsorted(hit_rows, torch.tensor(starts, device=hit_rows.device)).tolist()
        total = users.new_zeros(())
        for j in range(len(starts) - 1):
            s, e = starts[j], starts[j + 1]
            if bias_row is None:
                logits = torch.mm(scaled[s:e], cand.T, out=logits_buf[:e - s])
            else:
                logits = torch.addmm(bias_row, scaled[s:e], cand.T, out=logits_buf[:e - s])
            logits[hit_rows[bounds[j]:bounds[j + 1]] - s, hit_cols[bounds[j]:bounds[j + 1]]] = MASKED
            probs = torch.softmax(logits, dim=1, out=probs_buf[:e - s])
            t = target[s:e]
            picked = probs[torch.arange(e - s, device=probs.device), t]
            total += _nll(picked, logits, t).sum()
            # Item side: dF += (W P_f - Y)^T U with W = 1 (joint: the full softmax's fresh
            # columns) or 1 / rowsum(P_f) (split: those columns renormalised, i.e. Q), so Q is
            # never written out.
            weight = None
            if split:
                weight = _renormalise(probs[:, :num_fresh], picked, grad_fresh, logits[:, :num_fresh],
                                      scaled[s:e])
            if want_fresh:
                u = scaled[s:e] if weight is None else scaled[s:e] * weight[:, None]
                grad_fresh.addmm_(probs[:, :num_fresh].T, u)
                grad_fresh.index_add_(0, t, scaled[s:e], alpha=-1)
            if want_users:  # dU = (P - Y) C = P C - C[t]
                torch.mm(probs, cand, out=grad_users[s:e])
                grad_users[s:e] -= cand[t]
            if want_bias:  # db = colsum(P) - colsum(Y)
                grad_bias += probs.sum(0)
                grad_bias.index_add_(0, t, probs.new_full((e - s,), -1.0))
        return _keep_gradients(ctx, grad_users, grad_fresh, grad_bias, total, batch, temperature)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        return (*_scaled_gradients(ctx, grad), None, None, None, None, None)


class _DeviceResidentSoftmax(torch.autograd.Function):
    """The same loss and gradients as :class:`_FusedSampledSoftmax`, the way that never reads the
    device back (see the module docstring), in float32 or with bfloat16 matrix products."""

    @staticmethod
    def forward(ctx, users, fresh, frozen, bias, positive_ids, cand_ids, target, temperature, split, dtype):
        want_users, want_fresh, want_bias = ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[3]
        batch, dim = users.shape
        num_fresh = fresh.shape[0]
        num = num_fresh + (frozen.shape[0] if frozen is not None else 0)
        low = dtype != torch.float32  # bfloat16 products; otherwise everything in the inputs' dtype
        dtype = dtype if low else users.dtype
        scaled = users.detach() * (1.0 / temperature)                      # U / T, float32
        cand = fresh.detach() if frozen is None else torch.cat([fresh.detach(), frozen])
        scaled_c, cand_c = scaled.to(dtype), cand.to(dtype)                # the products' operands
        bias_row = bias.detach()[None, :] if bias is not None else None
        grad_users = users.new_empty(batch, dim) if want_users else None
        grad_fresh = users.new_zeros(num_fresh, dim) if want_fresh else None
        grad_bias = users.new_zeros(num) if want_bias else None
        rows = min(batch, block_rows(2 * num * 4, BLOCK_BYTES, MIN_BLOCK_ROWS, users.device))
        logits_buf, exps_buf = users.new_empty(rows, num), users.new_empty(rows, num)
        total = users.new_zeros(())
        for s in range(0, batch, rows):
            e = min(s + rows, batch)
            r, t = e - s, target[s:e]
            local = torch.arange(r, device=users.device)
            logits = logits_buf[:r]
            if not low:
                torch.mm(scaled_c[s:e], cand_c.T, out=logits)
            else:  # the product in bfloat16, the logits from here on in float32
                logits.copy_(torch.mm(scaled_c[s:e], cand_c.T))
            if bias_row is not None:
                logits += bias_row
            hits = positive_ids[s:e, None] == cand_ids[None, :]
            hits[local, t] = False
            logits.masked_fill_(hits, MASKED)
            exps = exps_buf[:r]
            m_f = logits[:, :num_fresh].amax(1)
            torch.sub(logits[:, :num_fresh], m_f[:, None], out=exps[:, :num_fresh]).exp_()
            s_f = exps[:, :num_fresh].sum(1)
            if frozen is not None:
                m = torch.maximum(m_f, logits[:, num_fresh:].amax(1))
                torch.sub(logits[:, num_fresh:], m[:, None], out=exps[:, num_fresh:]).exp_()
                c = torch.exp(m_f - m)
                norm = s_f * c + exps[:, num_fresh:].sum(1)
            else:
                m, c, norm = m_f, torch.ones_like(m_f), s_f
            total += (torch.log(norm) + m - logits[local, t]).sum()
            fresh_weight = c / norm                                         # P_f = fresh_weight * e_f
            if want_users:  # dU = P C - C[t]
                g = _mm(exps[:, :num_fresh], cand_c[:num_fresh], dtype) * fresh_weight[:, None]
                if frozen is not None:
                    g += _mm(exps[:, num_fresh:], cand_c[num_fresh:], dtype) / norm[:, None]
                grad_users[s:e] = g - cand[t]
            if want_fresh:  # dF = (W e_f)^T U/T - Y^T U/T, W = 1/rowsum(e_f) (split: Q) or P_f's weight
                weight = 1.0 / s_f if split else fresh_weight
                if not low:
                    grad_fresh.addmm_(exps[:, :num_fresh].T, scaled[s:e] * weight[:, None])
                else:
                    grad_fresh += _mm(exps[:, :num_fresh].T, scaled[s:e] * weight[:, None], dtype)
                grad_fresh.index_add_(0, t, scaled[s:e], alpha=-1)
            if want_bias:  # db = colsum(P) - colsum(Y), in float32
                grad_bias[:num_fresh] += fresh_weight @ exps[:, :num_fresh]
                if frozen is not None:
                    grad_bias[num_fresh:] += (1.0 / norm) @ exps[:, num_fresh:]
                grad_bias.index_add_(0, t, exps.new_full((r,), -1.0))
        return _keep_gradients(ctx, grad_users, grad_fresh, grad_bias, total, batch, temperature)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        return (*_scaled_gradients(ctx, grad), None, None, None, None, None, None)


def _keep_gradients(ctx, grad_users, grad_fresh, grad_bias, total, batch: int, temperature: float):
    """Save the gradients the forward computed (unscaled) for :func:`_scaled_gradients`; returns
    the mean loss ``total / batch``."""
    ctx.save_for_backward(grad_users, grad_fresh, grad_bias)
    ctx.scale_users = 1.0 / (batch * temperature)
    ctx.scale_fresh = 1.0 / batch
    return total / batch


def _scaled_gradients(ctx, grad: torch.Tensor) -> tuple:
    """The forward's saved gradients scaled by the incoming ``grad``, as ``(users, fresh, None,
    bias)``: the first four inputs of both fused nodes (users, fresh, frozen, bias)."""
    grad_users, grad_fresh, grad_bias = ctx.saved_tensors
    du = grad_users * (grad * ctx.scale_users) if grad_users is not None else None
    df = grad_fresh * (grad * ctx.scale_fresh) if grad_fresh is not None else None
    db = grad_bias * (grad * ctx.scale_fresh) if grad_bias is not None else None
    return du, df, None, db


def _at_least_float32(x: torch.Tensor | None) -> torch.Tensor | None:
    """Half-precision inputs (from towers under autocast) in float32; float32 and float64 as they are."""
    return x.float() if x is not None and x.dtype in (torch.bfloat16, torch.float16) else x


def _mm(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``a @ b`` computed in ``dtype``, the result in ``a``'s dtype (float32 or float64)."""
    if a.dtype == dtype and b.dtype == dtype:
        return a @ b
    return (a.to(dtype) @ b.to(dtype)).to(a.dtype)


def _operands(users, fresh, frozen, bias, temperature):
    """``(U / T [B, D], C [N, D], b [1, N] or None)``, each contiguous.

    The bias is added by the logits' product itself (``addmm``: ``b + (U/T) C^T`` in one pass)
    rather than carried as one more column of both operands: at Gowalla's shapes an inner
    dimension of D + 1 (257) made the product 1.13x slower than ``addmm`` at D
    (``benchmarks/fused_operands.py``, one thread).
    """
    scaled = users * (1.0 / temperature)
    cand = fresh if frozen is None else torch.cat([fresh, frozen])
    bias_row = bias.detach().to(cand.dtype)[None, :].contiguous() if bias is not None else None
    return scaled.contiguous(), cand.contiguous(), bias_row


def _renormalise(fresh_probs: torch.Tensor, picked: torch.Tensor, grad_fresh: torch.Tensor | None,
                 fresh_logits: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
    """The split item side of one block from the full softmax's fresh columns ``P_f [R, Nf]``.

    Returns ``weight [R] = 1 / rowsum(P_f)``, so that ``weight * P_f`` is the softmax over the
    fresh columns. A row whose fresh mass or target probability underflows gets weight 0 and is
    done exactly from its logits instead, its gradient added to ``grad_fresh`` here.
    """
    mass = fresh_probs.sum(1)
    weight = 1.0 / mass
    small = ((mass < _TINY) | (picked < _TINY)).nonzero()[:, 0]
    if len(small):
        weight[small] = 0.0
        if grad_fresh is not None:
            grad_fresh.addmm_(torch.softmax(fresh_logits[small], dim=1).T, users[small])
    return weight


def _nll(picked: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``[R]`` ``-log P[i, t_i]`` from ``picked = P[i, t_i]``; a row whose probability underflows
    uses ``lse - logit`` from its logits."""
    nll = -torch.log(picked)
    small = (picked < _TINY).nonzero()[:, 0]
    if len(small):
        nll[small] = torch.logsumexp(logits[small], dim=1) - logits[small, target[small]]
    return nll
