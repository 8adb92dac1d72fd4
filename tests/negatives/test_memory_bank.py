"""The FIFO memory bank: order, wrap-around, oversize batches, warm-up and state round trip."""
import numpy as np
import pytest
import torch

from cbns.negatives import CrossBatchSampler, MemoryBank


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
    a = CrossBatchSampler(counts, memory_size=6, dim=3, warmup_steps=0, seed=1)
    for step in range(4):
        ids = torch.tensor([step, step + 5, step + 10])
        a.observe(ids, torch.randn(3, 3))
    b = CrossBatchSampler(counts, memory_size=6, dim=3, warmup_steps=0, seed=99)
    b.load_state_dict(a.state_dict())
    assert int(b.step) == 4 and int(b.bank.ptr) == int(a.bank.ptr)
    ca, cb = a.bank.candidates(), b.bank.candidates()
    assert torch.equal(ca.emb, cb.emb) and torch.equal(ca.ids, cb.ids) and torch.equal(ca.logq, cb.logq)
    assert torch.equal(a.generator.get_state(), b.generator.get_state())


def test_warmup_uses_inbatch_only_then_the_bank():
    counts = np.ones(10)
    s = CrossBatchSampler(counts, memory_size=4, dim=2, warmup_steps=2)
    ids, emb = torch.tensor([1, 2]), torch.randn(2, 2)
    encode = lambda i: torch.zeros(len(i), 2)  # noqa: E731
    for step in range(2):
        assert [c.source for c in s.negatives(ids, emb, encode)] == ["inbatch"]
        s.observe(ids, emb)
    # The bank filled during warm-up and is used from step 2 on.
    assert [c.source for c in s.negatives(ids, emb, encode)] == ["inbatch", "bank"]
    assert len(s.bank) == 4
