"""The FIFO memory bank: order, wrap-around, oversize batches, warm-up and state round trip."""
import numpy as np
import pytest
import torch

from cbns.negatives import InBatchSource, MemoryBank, StepBatch, UniformSource
from cbns.objective.cross_batch_loss import CrossBatchSoftmaxLoss
from cbns.objective.sampled_objective import SampledSoftmaxObjective


def enqueue_ids(bank, ids):
    ids = torch.tensor(ids)
    bank.enqueue(ids[:, None].float().expand(-1, bank.emb.shape[1]), ids, -ids.float())


def test_fifo_order_and_wrap_around():
    bank = MemoryBank(5, 2)
    enqueue_ids(bank, [1, 2, 3])
    assert bank.oldest_first().tolist() == [1, 2, 3]
    assert len(bank) == 3
    enqueue_ids(bank, [4, 5, 6, 7])           # wraps: 1 and 2 dropped
    assert bank.oldest_first().tolist() == [3, 4, 5, 6, 7]
    assert len(bank) == 5
    c = bank.candidates()
    # vectors, ids and log q stay aligned row by row
    assert torch.equal(c.emb[:, 0], c.ids.float()) and torch.equal(c.logq, -c.ids.float())
    assert not c.item_grad and c.source == "bank"


def test_batch_larger_than_bank_keeps_the_newest():
    bank = MemoryBank(3, 1)
    enqueue_ids(bank, [1])
    enqueue_ids(bank, [10, 11, 12, 13, 14])
    assert bank.oldest_first().tolist() == [12, 13, 14]


def test_any_batch_size_matches_a_python_deque():
    from collections import deque

    rng = np.random.default_rng(0)
    bank, ref, nxt = MemoryBank(7, 1), deque(maxlen=7), 0
    for _ in range(30):
        n = int(rng.integers(1, 12))
        ids = list(range(nxt, nxt + n))
        nxt += n
        enqueue_ids(bank, ids)
        ref.extend(ids)
        assert bank.oldest_first().tolist() == list(ref)


def test_zero_size_bank_stays_empty_and_negative_size_is_refused():
    bank = MemoryBank(0, 2)
    enqueue_ids(bank, [1, 2])
    assert len(bank) == 0 and len(bank.candidates()) == 0
    with pytest.raises(ValueError, match="memory size must be >= 0, got -1"):
        MemoryBank(-1, 2)


def test_state_dict_round_trip_gives_identical_negatives():
    counts = np.arange(1, 21)
    a = CrossBatchSoftmaxLoss(3, 6, item_counts=counts, warmup_steps=0)
    for step in range(4):
        ids = torch.tensor([step, step + 5, step + 10])
        a(torch.randn(3, 3), torch.randn(3, 3), ids)
    b = CrossBatchSoftmaxLoss(3, 6, item_counts=counts, warmup_steps=0)
    b.load_state_dict(a.state_dict())
    assert int(b.step) == 4 and b._steps == 4 and int(b.bank.ptr) == int(a.bank.ptr)
    ca, cb = a.bank.candidates(), b.bank.candidates()
    assert torch.equal(ca.emb, cb.emb) and torch.equal(ca.ids, cb.ids) and torch.equal(ca.logq, cb.logq)


def test_state_dict_round_trip_restores_the_generator():
    """A drawing source's generator is state: a fresh objective seeded differently draws, after a
    load, the same next negatives."""
    counts = np.arange(1, 21)

    def mns(seed):
        return SampledSoftmaxObjective([InBatchSource(), UniformSource(20, 5, seed=seed)], item_counts=counts)

    a = mns(1)
    for step in range(4):
        a(torch.randn(3, 3), torch.randn(3, 3), torch.tensor([step, step + 5, step + 10]),
          encode_items=lambda i: torch.zeros(len(i), 3))
    b = mns(99)
    b.load_state_dict(a.state_dict())
    assert int(b.step) == 4
    assert torch.equal(a.uniform.generator.get_state(), b.uniform.generator.get_state())
    batch = StepBatch(torch.zeros(1, 3), torch.tensor([0]), torch.zeros(1), encode_items=lambda i: torch.zeros(len(i), 3))
    assert torch.equal(a.uniform.negatives(batch)[0].ids, b.uniform.negatives(batch)[0].ids)


def test_warmup_uses_inbatch_only_then_the_bank():
    counts = np.ones(10)
    s = CrossBatchSoftmaxLoss(2, 4, item_counts=counts, warmup_steps=2)
    ids, emb = torch.tensor([1, 2]), torch.randn(2, 2)
    encode = lambda i: torch.zeros(len(i), 2)  # noqa: E731

    def sources():
        batch = StepBatch(emb, ids, s.log_q[ids], step=s._steps, encode_items=encode)
        return [c.source for source in s.sources for c in source.negatives(batch)]

    for step in range(2):
        assert sources() == ["inbatch"] and not s.bank_active
        s(torch.randn(2, 2), emb, ids)
    # The bank filled during warm-up and is used from step 2 on.
    assert sources() == ["inbatch", "bank"] and s.bank_active
    assert len(s.bank) == 4
