"""``--precision bf16`` against float64 at the default shapes (B 2048, M 4096, D 256, T 0.1).

The stated tolerance (docs/gpu.md, "bf16"): the loss within 3e-4 and the user and item gradients
within 5e-3 (relative L2) of the float64 cross-entropy. The reference is written here: explicit
float64 logits, the accidental-hit mask, ``F.cross_entropy`` and autograd. Rows are drawn close to
their positive (P_t near 1 for many of them, as in a trained model), where a gradient formed as
``P C - C[t]`` from bfloat16 products cancels: a bfloat16 score product rounded to bfloat16, or
that cancellation, misses this tolerance (measured 2e-3 on the loss and 8e-3 to 1.3e-2 on the
gradients), so the test can tell.
"""
import pytest
import torch
import torch.nn.functional as F

from cbns.objective.fused_softmax import fused_sampled_softmax

B, M, D, T = 2048, 4096, 256, 0.1
LOSS_TOL, GRAD_TOL = 3e-4, 5e-3


def case():
    g = torch.Generator().manual_seed(0)
    num_ids = 20000
    table = F.normalize(torch.randn(num_ids, D, generator=g, dtype=torch.float64), dim=1)
    pos = torch.randint(0, num_ids, (B,), generator=g)
    users = F.normalize(torch.randn(B, D, generator=g, dtype=torch.float64) + 3 * table[pos], dim=1)
    bank_ids = torch.randint(0, num_ids, (M,), generator=g)
    cand_ids = torch.cat([pos, bank_ids])
    bias = -torch.log(torch.rand(num_ids, generator=g, dtype=torch.float64) * 1e-3 + 1e-5)[cand_ids]
    return users, table[pos], table[bank_ids], bias, pos, cand_ids


def reference(users, fresh, frozen, bias, pos, cand_ids, split):
    """float64 loss and gradients from the definition."""
    u, f = users.clone().requires_grad_(), fresh.clone().requires_grad_()
    target = torch.arange(B)
    hit = (pos[:, None] == cand_ids[None, :]) & (torch.arange(len(cand_ids))[None, :] != target[:, None])

    def ce(uu, cand, cols):
        return F.cross_entropy((uu @ cand.T / T + bias[cols]).masked_fill(hit[:, cols], -1e9), target)

    every = torch.arange(len(cand_ids))
    if split:
        item_side = ce(u.detach(), f, every[:B])
        loss = ce(u, torch.cat([f, frozen]).detach(), every) + (item_side - item_side.detach())
    else:
        loss = ce(u, torch.cat([f, frozen]), every)
    loss.backward()
    return loss.detach(), u.grad, f.grad


@pytest.mark.parametrize("split", [False, True])
def test_bf16_products_stay_within_the_stated_tolerance_of_float64(split):
    users, fresh, frozen, bias, pos, cand_ids = case()
    want = reference(users, fresh, frozen, bias, pos, cand_ids, split)
    u, f = users.float().requires_grad_(), fresh.float().requires_grad_()
    loss = fused_sampled_softmax(u, f, frozen.float(), bias.float(), pos, cand_ids, torch.arange(B), T, split,
                                 compute_dtype=torch.bfloat16)
    loss.backward()
    assert loss.dtype == torch.float32 and u.grad.dtype == torch.float32
    assert abs(float(loss.detach()) - float(want[0])) / float(want[0]) < LOSS_TOL
    for got, ref in ((u.grad, want[1]), (f.grad, want[2])):
        assert float((got.double() - ref).norm() / ref.norm()) < GRAD_TOL
