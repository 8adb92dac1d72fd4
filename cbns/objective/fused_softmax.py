"""The sampled-softmax cross-entropy as one autograd node, for both item sides, in row blocks.

With users ``U [B, D]``, candidates ``C = [F; R]`` (``F [Nf, D]`` fresh vectors that carry gradient
to the item tower, the batch's positives among them; ``R [Nr, D]`` frozen rows such as the CBNS
bank), a column bias ``b [N]`` (``-log q``, or 0), the accidental hits ``H`` (every column whose
id equals row i's positive id, row i's own target column excepted) and each row's target column
``t_i < Nf``:

    L = U C^T / T + b,   L[h] = MASKED for h in H                    [B, N]
    P = softmax(L) row-wise,   Y = one-hot(t),   G = P - Y            [B, N]
    loss = mean_i -log P[i, t_i]          (the cross-entropy of the full softmax, both sides)
    joint:  dU = G C / (B T),     dF = G[:, :Nf]^T U / (B T)
    split:  Q = softmax(L[:, :Nf])        (the fresh columns alone)
            dU = G C / (B T),     dF = (Q - Y[:, :Nf])^T U / (B T)
    both:   db = colsum(G) / B    (when the bias carries a gradient, e.g. a learned item bias)

The split form's gradients are those of two cross-entropies (the user side over every candidate
with items detached, the item side over the fresh candidates with users detached), as
:class:`cbns.objective.loss.SampledSoftmaxLoss` states them; here they cost one forward GEMM and
one softmax instead of two of each. The value returned is the full softmax's cross-entropy in
both forms: the split form changes the gradients, not what is being minimised and reported.

Why by hand: autograd through ``addmm``, an in-place mask and ``cross_entropy`` writes and rereads
several more ``[B, N]`` blocks. Here, when a gradient is wanted, the forward also forms it (the
loss is a scalar, so its backward only scales). Rows are taken in blocks
(:func:`cbns.machine.block_rows`; :func:`block_bytes` a block on the device), each block going
GEMM, mask, softmax, gradient GEMMs through one reused ``[rows, N]`` buffer (the logits, then the
probabilities, then ``P - Y``, each written over the last), so memory stays flat as the bank grows.

One way on every device, and it never reads the device back: the hits are an equality mask of
the block's positive ids against the candidate ids (no sort, no data-dependent shape), and the
softmax is written with the fresh and the frozen columns exponentiated against their own row
maxima

    e_f = exp(L_f - m_f),  e_r = exp(L_r - m),  m = max(m_f, m_r),  c = exp(m_f - m)
    s = c rowsum(e_f) + rowsum(e_r),   P_f = c e_f / s,   P_r = e_r / s,   Q = e_f / rowsum(e_f)
    -log P[i, t_i] = log s_i + m_i - L[i, t_i]

so that neither the loss nor the split side's Q can underflow and no row needs redoing.

``G = P - Y`` is written out in float32, its target entry as minus the sum of the row's other
probabilities (``P_t - 1 = -sum_{j != t} P_j``), so it keeps its relative precision as ``P_t``
approaches 1 instead of cancelling; ``Q - Y`` the same way. With a ``compute_dtype`` of bfloat16
the matrix products take bfloat16 operands (``U/T``, ``C``, ``G``, ``Q - Y``) and give float32
results (:func:`_mm32`), while the logits, the bias, the softmax, ``G``, the loss and the
accumulated gradients stay in float32.
"""
from __future__ import annotations

import torch

from cbns.machine import block_rows
from cbns.objective.logits import MASKED

#: Bytes of the per-block buffers (logits and probabilities) on the CPU. Measured on the
#: Gowalla shapes: blocks of 256 to 2048 rows run alike; much smaller blocks lose GEMM speed.
BLOCK_BYTES = 64 * 2**20
#: The same on a GPU: the whole default batch in one block (fewer launches), still capped by
#: an eighth of the free device memory (:func:`cbns.machine.block_rows`).
DEVICE_BLOCK_BYTES = 1024 * 2**20
MIN_BLOCK_ROWS = 256


def block_bytes(device: torch.device) -> int:
    """The block buffers' size on ``device``: :data:`BLOCK_BYTES` on the CPU (cache-sized GEMMs),
    :data:`DEVICE_BLOCK_BYTES` elsewhere (fewer, larger launches)."""
    return BLOCK_BYTES if device.type == "cpu" else DEVICE_BLOCK_BYTES


def fused_sampled_softmax(users: torch.Tensor, fresh: torch.Tensor, frozen: torch.Tensor | None,
                          bias: torch.Tensor | None, positive_ids: torch.Tensor | None,
                          candidate_ids: torch.Tensor | None, target: torch.Tensor, temperature: float,
                          split: bool, *, compute_dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The scalar loss above; gradients flow to ``users``, ``fresh`` and ``bias``, never to ``frozen``.

    Args:
        users: ``[B, D]`` user vectors.
        fresh: ``[Nf, D]`` candidates with item-tower gradient (columns ``0..Nf-1``).
        frozen: ``[Nr, D]`` candidates without it (columns ``Nf..N-1``), or None.
        bias: ``[N]`` added to every row (``-log q``, plus a learned item bias), or None. When it
            requires grad it gets ``db`` above.
        positive_ids, candidate_ids: ``[B]`` and ``[N]`` int64: every column whose id equals the
            row's positive id, the row's target column excepted, is masked (an accidental hit).
            None for both: nothing is masked (the full softmax, where each item is one column).
        target: ``[B]`` (or ``[B, 1]``) int64, each row's positive column, in ``[0, Nf)``.
        temperature: T > 0.
        split: the split item side (without frozen rows it equals joint, and joint is used).
        compute_dtype: the matrix products' operand dtype (float32, or bfloat16 with float32
            results).
    """
    frozen = frozen if frozen is not None and frozen.shape[0] > 0 else None
    if frozen is not None and frozen.requires_grad:
        frozen = frozen.detach()
    if not torch.is_grad_enabled():  # no gradient will be asked for: do not form one
        users, fresh = users.detach(), fresh.detach()
        bias = bias.detach() if bias is not None else None
    users, fresh, frozen, bias = (_at_least_float32(x) for x in (users, fresh, frozen, bias))
    split = bool(split and frozen is not None)
    if (positive_ids is None) != (candidate_ids is None):
        raise ValueError("positive_ids and candidate_ids go together (both None: nothing masked)")
    return _FusedSampledSoftmax.apply(users, fresh, frozen, bias, positive_ids, candidate_ids, target,
                                      float(temperature), split, compute_dtype)


class _FusedSampledSoftmax(torch.autograd.Function):

    @staticmethod
    def forward(ctx, users, fresh, frozen, bias, positive_ids, cand_ids, target, temperature, split, dtype):
        # Inputs arrive detached (a Function's forward runs without autograd); each block's
        # results are accumulated into the gradients, allocated by the first block.
        want_users, want_fresh, want_bias = ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[3]
        batch = users.shape[0]
        num_fresh = fresh.shape[0]
        num = num_fresh + (frozen.shape[0] if frozen is not None else 0)
        low = dtype != users.dtype and dtype in (torch.bfloat16, torch.float16)
        inv_t = 1.0 / temperature                                           # folded into the products' scaling
        cand = fresh if frozen is None else torch.cat([fresh, frozen])
        users_c, cand_c = (users.to(dtype), cand.to(dtype)) if low else (users, cand)  # the products' operands
        bias_row = bias.to(users.dtype) if bias is not None else None     # [N], broadcast over the rows
        target = target if target.dim() == 2 else target[:, None]          # [B, 1]
        grad_users, grad_fresh, grad_bias, total = [], None, None, None
        want_g = want_users or want_bias or (want_fresh and not split)
        # One [rows, N] buffer: the logits, overwritten by the probabilities, then by P - Y. The rows
        # are those of two buffers' worth (the size the blocks were measured at).
        rows = min(batch, _block_rows(2 * num * 4, users.device))
        buffer = users.new_empty(rows, num)
        for s in range(0, batch, rows):
            e = min(s + rows, batch)
            r, t = e - s, _rows(target, s, e)
            logits = _rows(buffer, 0, r)
            users_b = _rows(users_c, s, e)
            if low:  # bfloat16 operands, float32 logits: L = b + (U C^T) / T
                product = _mm32(users_b, cand_c.T)
                if bias_row is None:
                    torch.mul(product, inv_t, out=logits)
                else:
                    torch.add(bias_row, product, alpha=inv_t, out=logits)
            elif bias_row is None:
                torch.mm(users_b, cand_c.T, out=logits).mul_(inv_t)
            else:
                torch.addmm(bias_row, users_b, cand_c.T, alpha=inv_t, out=logits)
            picked = logits.gather(1, t)                                    # L[i, t_i]: never masked
            if cand_ids is not None:  # every copy of the row's positive id, then its own column back
                logits.masked_fill_(_rows(positive_ids, s, e)[:, None] == cand_ids, MASKED)
                logits.scatter_(1, t, picked)
            if frozen is None:
                m = logits.amax(1, keepdim=True)
                exps = logits.sub_(m).exp_()
                norm = exps.sum(1, keepdim=True)
                probs = exps.div_(norm)                                     # P
            else:
                lf, lr = logits[:, :num_fresh], logits[:, num_fresh:]
                m_f = lf.amax(1, keepdim=True)
                m = torch.maximum(m_f, lr.amax(1, keepdim=True))
                ef, er = lf.sub_(m_f).exp_(), lr.sub_(m).exp_()            # in place: the logits are done with
                s_f = ef.sum(1, keepdim=True)
                c = torch.exp(m_f - m)
                norm = torch.addcmul(er.sum(1, keepdim=True), s_f, c)
                if split and want_fresh:                                    # dF = (Q - Y_f)^T U / T
                    q = ef.div_(s_f)
                    _minus_one_hot(q, t)
                    grad_fresh = _accumulate(grad_fresh, _product(q.T, users_b, low))
                    ef.mul_(s_f * c / norm)                                 # P_f (its target entry is redone below)
                else:
                    ef.mul_(c / norm)
                er.div_(norm)
                probs = logits
            row_loss = torch.log(norm) + m - picked                        # -log P[i, t_i]
            total = row_loss.mean() if r == batch else _accumulate(total, row_loss.sum())
            if want_g:                                                      # G = P - Y, in place
                g = _minus_one_hot(probs, t)
                g_c = g.to(dtype) if low else g
                if want_users:
                    grad_users.append(_product(g_c, cand_c, low))
                if want_fresh and not split:
                    grad_fresh = _accumulate(grad_fresh, _product(g_c[:, :num_fresh].T, users_b, low))
                if want_bias:
                    grad_bias = _accumulate(grad_bias, g.sum(0))
        grad_users = (grad_users[0] if len(grad_users) == 1 else torch.cat(grad_users)) if want_users else None
        _keep_gradients(ctx, grad_users, grad_fresh, grad_bias, batch, temperature)
        return total if rows >= batch else total / batch                  # the mean over the rows

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        return (*_scaled_gradients(ctx, grad), None, None, None, None, None, None)


def _block_rows(row_bytes: int, device: torch.device) -> int:
    """Rows per block (:func:`cbns.machine.block_rows`). Under ``torch.compile`` the free memory
    is not asked for (reading it is host I/O, which a graph cannot hold): the cap alone."""
    if torch.compiler.is_compiling():
        return max(MIN_BLOCK_ROWS, block_bytes(device) // max(row_bytes, 1))
    return block_rows(row_bytes, block_bytes(device), MIN_BLOCK_ROWS, device)


def _minus_one_hot(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``probs [R, N] - one-hot(target [R, 1])`` in place, the target entry written as minus the
    sum of the row's other entries (``p_t - 1 = -sum_{j != t} p_j`` for a row summing to 1): no
    cancellation as ``p_t`` approaches 1. Returns ``probs``."""
    probs.scatter_(1, target, 0.0)
    return probs.scatter_(1, target, -probs.sum(1, keepdim=True))


def _mm32(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` of half-precision operands as a float32 result: the products exact and summed in
    float32. On a GPU one ``mm`` with ``out_dtype``; where that kernel does not exist (the CPU)
    the operands are widened first, which gives the same numbers."""
    if a.device.type != "cpu":
        return torch.mm(a, b, out_dtype=torch.float32)
    return torch.mm(a.float(), b.float())


def _product(a: torch.Tensor, b: torch.Tensor, low: bool) -> torch.Tensor:
    """``a @ b`` in float32: as :func:`_mm32` (``a`` cast to ``b``'s dtype) when ``low``."""
    return _mm32(a.to(b.dtype), b) if low else torch.mm(a, b)


def _accumulate(total: torch.Tensor | None, part: torch.Tensor) -> torch.Tensor:
    """``part`` for the first block, then added in place."""
    return part if total is None else total.add_(part)


def _rows(x: torch.Tensor, start: int, end: int) -> torch.Tensor:
    """``x[start:end]``, or ``x`` itself when that is all of it (one block: no view to dispatch)."""
    return x if start == 0 and end == x.shape[0] else x[start:end]


def _keep_gradients(ctx, grad_users, grad_fresh, grad_bias, batch: int, temperature: float) -> None:
    """Scale the gradients the forward formed (products with ``U`` and ``C``, the ``1 / T`` of
    the logits not yet applied) to those of the mean loss: ``1 / (B T)`` for the users and the
    fresh items, ``1 / B`` for the bias; one multi-tensor launch. Save them for
    :func:`_scaled_gradients`."""
    scales = (1.0 / (batch * temperature), 1.0 / (batch * temperature), 1.0 / batch)
    present = [(g, scale) for g, scale in zip((grad_users, grad_fresh, grad_bias), scales) if g is not None]
    if present:
        torch._foreach_mul_([g for g, _ in present], [scale for _, scale in present])
    ctx.save_for_backward(grad_users, grad_fresh, grad_bias)


def _scaled_gradients(ctx, grad: torch.Tensor) -> tuple:
    """The saved gradients times the incoming ``grad`` (one multi-tensor launch), as ``(users,
    fresh, None, bias)``: the node's first four inputs."""
    saved = ctx.saved_tensors
    present = [g for g in saved if g is not None]
    scaled = iter(torch._foreach_mul(present, grad) if present else [])
    users, fresh, bias = (next(scaled) if g is not None else None for g in saved)
    return users, fresh, None, bias


def _at_least_float32(x: torch.Tensor | None) -> torch.Tensor | None:
    """Half-precision inputs (from towers under autocast) in float32; float32 and float64 as they are."""
    return x.float() if x is not None and x.dtype in (torch.bfloat16, torch.float16) else x
