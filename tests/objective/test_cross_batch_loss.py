"""CrossBatchSoftmaxLoss against a plain-PyTorch float64 reference written here from the method's
definition: explicit [B, B + M] logits over the batch and the last M enqueued items, the logQ
correction on every column, an explicit equality mask, F.cross_entropy."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cbns.objective.cross_batch_loss import CrossBatchSoftmaxLoss

D = 6


def reference(users, items, ids, bank_emb, bank_ids, bank_logq, logq_table, T, item_side, bias=None):
    """The CBNS loss of one step by its definition. Value: the full softmax's cross-entropy. Split:
    the user side (every column, items detached) gives the user and bias gradients, the item side
    (the batch's columns only, users detached) the item gradient."""
    batch = len(ids)
    cand_ids = torch.cat([ids, bank_ids])
    cand_logq = torch.cat([logq_table[ids], bank_logq])
    target = torch.arange(batch)
    hit = ids[:, None] == cand_ids[None, :]
    hit[target, target] = False  # the row's own positive is its target, every other copy is masked

    def ce(u, c, cols, b):
        logits = u @ c.T / T - cand_logq[cols]
        if b is not None:
            logits = logits + b[cand_ids[cols]] / T
        return F.cross_entropy(logits.masked_fill(hit[:, cols], float("-inf")), target)

    every = torch.arange(len(cand_ids))
    cand = torch.cat([items, bank_emb])
    if item_side == "joint" or len(bank_ids) == 0:
        return ce(users, cand, every, bias)
    item_part = ce(users.detach(), items, every[:batch], bias.detach() if bias is not None else None)
    return ce(users, cand.detach(), every, bias) + (item_part - item_part.detach())


def random_steps(seed, steps, batch, num_items, repeat_ids=True):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        high = max(2, num_items // 3) if repeat_ids else num_items  # few ids: duplicates and bank hits
        ids = torch.randint(0, high, (batch,), generator=g)
        out.append((torch.randn(batch, D, generator=g, dtype=torch.float64),
                    F.normalize(torch.randn(batch, D, generator=g, dtype=torch.float64), dim=1), ids))
    return out


def logq_of(counts):
    """log(count / total), unseen items counted once; rounded to float32 as the module stores it."""
    c = np.maximum(np.asarray(counts, dtype=np.float64), 1.0)
    return torch.tensor(np.log(c / c.sum()), dtype=torch.float32).double()


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 7), st.integers(0, 12), st.integers(0, 2), st.sampled_from(["joint", "split"]),
       st.booleans(), st.integers(0, 1000))
def test_loss_and_gradients_equal_the_reference_over_several_steps(batch, memory, warmup, item_side, biased, seed):
    num_items = 9
    counts = np.arange(1, num_items + 1) * 3
    T = 0.3
    criterion = CrossBatchSoftmaxLoss(D, memory, item_counts=counts, warmup_steps=warmup, temperature=T,
                                      item_side=item_side).double()
    logq_table = logq_of(counts)
    bias_values = torch.linspace(-0.5, 0.5, num_items, dtype=torch.float64)
    history = []  # every enqueued (vector, id, log q), oldest first
    for step, (users, items, ids) in enumerate(random_steps(seed, 4, batch, num_items)):
        u1, v1 = users.clone().requires_grad_(), items.clone().requires_grad_()
        b1 = bias_values.clone().requires_grad_() if biased else None
        got = criterion(u1, v1, ids, item_bias=b1)
        got.backward()
        use_bank = step >= warmup and memory > 0 and history
        kept = history[-memory:] if use_bank else []
        bank_emb = torch.stack([h[0] for h in kept]) if kept else torch.zeros(0, D, dtype=torch.float64)
        bank_ids = torch.tensor([h[1] for h in kept], dtype=torch.long)
        bank_logq = torch.tensor([h[2] for h in kept], dtype=torch.float64)
        u2, v2 = users.clone().requires_grad_(), items.clone().requires_grad_()
        b2 = bias_values.clone().requires_grad_() if biased else None
        want = reference(u2, v2, ids, bank_emb, bank_ids, bank_logq, logq_table, T, item_side, b2)
        want.backward()
        assert torch.allclose(got, want, rtol=1e-9, atol=1e-10), (step, got, want)
        assert torch.allclose(u1.grad, u2.grad, rtol=1e-8, atol=1e-10), step
        assert torch.allclose(v1.grad, v2.grad, rtol=1e-8, atol=1e-10), step
        if biased:
            assert torch.allclose(b1.grad, b2.grad, rtol=1e-8, atol=1e-10), step
        history += [(items[i], int(ids[i]), float(logq_table[ids[i]])) for i in range(batch)]


def test_the_value_is_the_full_cross_entropy_on_both_item_sides():
    counts = np.array([5, 1, 2, 8, 3])
    (users, items, ids), (u2, i2, ids2) = random_steps(3, 2, 4, 5)
    values = []
    for side in ("joint", "split"):
        criterion = CrossBatchSoftmaxLoss(D, 8, item_counts=counts, item_side=side).double()
        criterion(users, items, ids)
        values.append(criterion(u2, i2, ids2))
    assert torch.allclose(values[0], values[1], rtol=1e-12)


def test_a_row_whose_positive_sits_in_the_bank_has_that_copy_masked():
    """The row's positive enqueued by the step before is an accidental hit: masked, not a negative
    (the reference masks every other copy of the row's id); the other bank rows are negatives."""
    counts = np.ones(4)
    users, items, _ = random_steps(5, 1, 3, 4)[0]
    ids = torch.tensor([0, 1, 2])
    criterion = CrossBatchSoftmaxLoss(D, 3, item_counts=counts).double()
    criterion(users, items, ids)  # the bank now holds items 0, 1, 2
    assert criterion.bank.ids.tolist() == [0, 1, 2]
    # a user who likes item 1, with item 1 again as the positive: the bank's copy would tie with it
    one, fresh, user = torch.tensor([1]), items[1:2].clone(), items[1:2].clone()
    got = criterion(user, fresh, one)
    want = reference(user, fresh, one, items, ids, logq_of(counts)[ids], logq_of(counts), 0.1, "split")
    assert torch.allclose(got, want, rtol=1e-10)
    unmasked = reference(user, fresh, torch.tensor([3]), items, ids, logq_of(counts)[ids], logq_of(counts),
                         0.1, "split")  # the same logits with the bank's copy of item 1 unmasked
    assert unmasked > got + 0.5  # that copy ties with the positive: it would take half the mass


def test_memory_size_zero_is_in_batch_sampled_softmax():
    counts = np.array([3, 1, 4, 1, 5, 9])
    criterion = CrossBatchSoftmaxLoss(D, 0, item_counts=counts).double()
    for users, items, ids in random_steps(11, 3, 5, 6):
        got = criterion(users, items, ids)
        empty = torch.zeros(0, D, dtype=torch.float64)
        want = reference(users, items, ids, empty, ids[:0], torch.zeros(0, dtype=torch.float64), logq_of(counts),
                         0.1, "joint")
        assert torch.allclose(got, want, rtol=1e-10)
    assert len(criterion.bank) == 0


def test_state_dict_round_trip_gives_identical_next_losses():
    counts = np.arange(1, 8)
    steps = random_steps(2, 5, 4, 7)
    a = CrossBatchSoftmaxLoss(D, 6, item_counts=counts, warmup_steps=1).double()
    for users, items, ids in steps[:3]:
        a(users, items, ids)
    b = CrossBatchSoftmaxLoss(D, 6, item_counts=counts, warmup_steps=1).double()
    b.load_state_dict(a.state_dict())
    for users, items, ids in steps[3:]:
        assert torch.equal(a(users, items, ids), b(users, items, ids))
    assert set(a.state_dict()) >= {"bank.emb", "bank.ids", "bank.logq", "bank.ptr", "bank.filled", "step", "log_q"}


def test_eval_mode_scores_without_enqueueing_and_reset_empties_the_bank():
    counts = np.ones(5)
    criterion = CrossBatchSoftmaxLoss(D, 10, item_counts=counts).double()
    (u, v, ids), (u2, v2, ids2) = random_steps(4, 2, 3, 5)
    criterion(u, v, ids)
    criterion.eval()
    criterion(u2, v2, ids2)
    assert len(criterion.bank) == 3 and int(criterion.step) == 1
    criterion.train()
    criterion.reset()
    assert len(criterion.bank) == 0


def test_enqueue_mask_keeps_rows_out_of_the_bank():
    criterion = CrossBatchSoftmaxLoss(D, 10, item_counts=np.ones(5)).double()
    u, v, _ = random_steps(4, 1, 4, 5)[0]
    criterion(u, v, torch.tensor([0, 1, 2, 3]), enqueue_mask=torch.tensor([True, False, True, False]))
    assert criterion.bank.oldest_first().tolist() == [0, 2]


def test_streaming_q_starts_at_one_for_first_sightings():
    """Without counts, q is the streaming estimate: an item first seen at step 0 has gap 1, so
    log q = 0 and the first step is the uncorrected softmax."""
    users, items, ids = random_steps(6, 1, 4, 20, repeat_ids=False)[0]
    criterion = CrossBatchSoftmaxLoss(D, 4).double()
    got = criterion(users, items, ids)
    flat = torch.zeros(20, dtype=torch.float64)
    want = reference(users, items, ids, torch.zeros(0, D, dtype=torch.float64), ids[:0],
                     torch.zeros(0, dtype=torch.float64), flat, 0.1, "split")
    assert torch.allclose(got, want, rtol=1e-10)
    assert criterion.bank.logq.tolist()[:4] == [0.0] * 4  # enqueued with the q of its step


def test_refresh_mode_reencodes_the_bank_with_gradient():
    table = torch.nn.Embedding(6, D).double()
    criterion = CrossBatchSoftmaxLoss(D, 4, item_counts=np.ones(6), bank_mode="refresh").double()
    u = torch.randn(3, D, dtype=torch.float64)
    ids = torch.tensor([0, 1, 2])
    criterion(u, table(ids), ids, encode_items=table)
    table.zero_grad()
    loss = criterion(u, table(torch.tensor([3, 4, 5])), torch.tensor([3, 4, 5]), encode_items=table)
    loss.backward()
    assert table.weight.grad[:3].abs().sum() > 0  # the bank's items 0..2 got gradient through the re-encoding
    with pytest.raises(ValueError, match="encode_items"):
        criterion(u, table(ids), ids)


@pytest.mark.parametrize("call,message", [
    (lambda c: c(torch.zeros(2, 5), torch.zeros(2, D), torch.tensor([0, 1])), r"built with dim=6, got user_emb of width 5"),
    (lambda c: c(torch.zeros(2, D), torch.zeros(3, D), torch.tensor([0, 1])), r"must have the same B, got 2, 3"),
    (lambda c: c(torch.zeros(2, D), torch.zeros(2, D), torch.tensor([0, 9])), r"item_ids must be \[0, 5\).*got ids from 0 to 9"),
    (lambda c: c(torch.full((2, D), float("nan")), torch.zeros(2, D), torch.tensor([0, 1])), r"user_emb holds 12 NaN"),
    (lambda c: c(torch.zeros(2, D), torch.zeros(2, D), torch.tensor([0.0, 1.0])), r"item_ids must be int64"),
    (lambda c: c(torch.zeros(D), torch.zeros(2, D), torch.tensor([0, 1])), r"must be \[B, D\], got \(6,\)"),
])
def test_misuse_says_what_was_received(call, message):
    criterion = CrossBatchSoftmaxLoss(D, 4, item_counts=np.ones(5))
    with pytest.raises(ValueError, match=message):
        call(criterion)


def test_constructor_errors():
    with pytest.raises(ValueError, match="memory_size must be an integer >= 0, got -1"):
        CrossBatchSoftmaxLoss(D, -1)
    with pytest.raises(ValueError, match="item_side must be one of joint, split, got 'both'"):
        CrossBatchSoftmaxLoss(D, 4, item_side="both")
