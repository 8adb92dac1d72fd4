"""The sampled-softmax loss against numbers derived by hand."""
import math

import torch

from cbns.negatives import Candidates
from cbns.objective.loss import SampledSoftmaxLoss


def test_loss_matches_hand_computation_with_logq_and_accidental_hit():
    # Two users, two positives (the in-batch block), one uniform source of two items.
    users = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    items = torch.tensor([[1.0, 0.0], [0.6, 0.8]])       # item ids 7 and 9
    ids = torch.tensor([7, 9])
    q_items = torch.tensor([0.5, 0.25])
    extra = torch.tensor([[0.0, 1.0], [1.0, 0.0]])       # item ids 9 (a copy of row 1's positive) and 3
    extra_ids = torch.tensor([9, 3])
    q_extra = torch.tensor([0.1, 0.2])
    sources = [Candidates(items, ids, q_items.log(), "inbatch", holds_positives=True), Candidates(extra, extra_ids, q_extra.log(), "x")]
    T = 0.5
    loss = SampledSoftmaxLoss(temperature=T)(users, items, ids, q_items.log(), sources)

    # Row 0 (user [1,0], positive 7): candidates 7 (pos), 9, 9', 3; none masked (positive is 7).
    # logits: 1/T - ln .5 = 2.6931, 0.6/T - ln .25 = 2.5863, 0/T - ln .1 = 2.3026, 1/T - ln .2 = 3.6094
    row0 = [2 + math.log(2), 1.2 + math.log(4), 0 + math.log(10), 2 + math.log(5)]
    # Row 1 (user [0,1], positive 9): candidates 7, 9 (pos), 9' (accidental hit: masked), 3 -> 0/T - ln .2.
    row1 = [0 + math.log(2), 1.6 + math.log(4), 0 + math.log(5)]
    expected = 0.5 * ((-row0[0] + math.log(sum(math.exp(x) for x in row0)))
                      + (-row1[1] + math.log(sum(math.exp(x) for x in row1))))
    assert abs(loss.item() - expected) < 1e-5


def test_loss_without_inbatch_prepends_the_positive():
    users = torch.tensor([[1.0, 0.0]])
    pos = torch.tensor([[0.0, 1.0]])
    neg = Candidates(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([4, 5]), torch.log(torch.tensor([0.5, 0.5])), "uniform")
    # positive id 5 equals the second negative: that one is masked.
    loss = SampledSoftmaxLoss(temperature=1.0)(users, pos, torch.tensor([5]), torch.log(torch.tensor([0.5])), [neg])
    logits = [0 + math.log(2), 1 + math.log(2)]
    expected = -logits[0] + math.log(sum(math.exp(x) for x in logits))
    assert abs(loss.item() - expected) < 1e-6


def test_split_item_side_gives_bank_rows_no_item_gradient_and_inbatch_softmax_for_items():
    torch.manual_seed(0)
    users = torch.randn(4, 3, requires_grad=True)
    items = torch.randn(4, 3, requires_grad=True)
    ids = torch.arange(4)
    logq = torch.full((4,), -1.0)
    bank = Candidates(torch.randn(5, 3), torch.arange(10, 15), torch.full((5,), -2.0), "bank", item_grad=False)
    loss = SampledSoftmaxLoss(temperature=0.3, item_side="split")
    total = loss(users, items, ids, logq, [Candidates(items, ids, logq, "inbatch", holds_positives=True), bank])
    total.backward()
    # Reference: item gradient = gradient of the in-batch-only softmax; user gradient = full softmax.
    u2, i2 = users.detach().clone().requires_grad_(), items.detach().clone().requires_grad_()
    full = torch.cat([u2 @ i2.T.detach(), u2 @ bank.emb.T], 1) / 0.3 - torch.cat([logq, bank.logq])
    torch.nn.functional.cross_entropy(full, ids).backward()
    inb = u2.detach() @ i2.T / 0.3 - logq
    torch.nn.functional.cross_entropy(inb, ids).backward()
    assert torch.allclose(users.grad, u2.grad, atol=1e-6)
    assert torch.allclose(items.grad, i2.grad, atol=1e-6)
