"""Each negative source on its own: what it yields for a step, with which log q."""
import math

import numpy as np
import pytest
import torch

from cbns.negatives import InBatchSource, MemoryBank, PopularitySource, StepBatch, UniformSource


def step(n=3, d=2, step=0, offset=0, encode=None):
    ids = torch.arange(n)
    return StepBatch(torch.randn(n, d), ids, -ids.float(), offset=offset, step=step, encode_items=encode)


def test_inbatch_is_the_batch_holding_the_positives_at_the_offset():
    batch = step(5, offset=2)
    [block] = InBatchSource().negatives(batch)
    assert block.holds_positives and block.positive_offset == 2 and block.item_grad
    assert block.emb is batch.emb and block.ids is batch.ids and block.logq is batch.logq
    assert InBatchSource().positive_logq(batch.ids, batch.logq) is batch.logq


def test_uniform_draws_with_its_own_seeded_generator_and_q_is_one_over_i():
    source = UniformSource(7, 50, seed=3)
    [drawn] = source.negatives(step(encode=lambda i: torch.zeros(len(i), 2)))
    want = torch.randint(0, 7, (50,), generator=torch.Generator().manual_seed(3))
    assert torch.equal(drawn.ids, want) and drawn.source == "uniform"
    assert torch.allclose(drawn.logq, torch.full((50,), -math.log(7)))
    assert torch.allclose(source.positive_logq(torch.tensor([0, 6]), None), torch.full((2,), -math.log(7)))


def test_popularity_follows_count_to_the_alpha():
    counts = np.array([1, 4, 16, 0])
    source = PopularitySource(counts, 40000, alpha=0.5, seed=0)
    [drawn] = source.negatives(step(encode=lambda i: torch.zeros(len(i), 2)))
    want = np.array([1.0, 2.0, 4.0, 1.0]) / 8.0
    assert np.abs(np.bincount(drawn.ids.numpy(), minlength=4) / 40000 - want).max() < 0.01
    np.testing.assert_allclose(drawn.logq.numpy(), np.log(want[drawn.ids.numpy()]), rtol=1e-6)
    np.testing.assert_allclose(source.positive_logq(torch.tensor([2]), None).numpy(), [np.log(0.5)], rtol=1e-6)


def test_bank_yields_after_warm_up_only_and_reads_the_step_it_is_given():
    bank = MemoryBank(4, 2, warmup_steps=2)
    assert bank.negatives(step(step=5)) == []  # empty
    bank.observe(torch.ones(3, 2), torch.tensor([7, 8, 9]), torch.zeros(3))
    assert bank.negatives(step(step=1)) == []  # warming up
    [stored] = bank.negatives(step(step=2))
    assert stored.ids.tolist() == [7, 8, 9] and not stored.item_grad and stored.source == "bank"


def test_refresh_bank_needs_the_item_tower():
    bank = MemoryBank(4, 2, mode="refresh")
    bank.observe(torch.ones(1, 2), torch.tensor([1]), torch.zeros(1))
    with pytest.raises(ValueError, match="encode_items"):
        bank.negatives(step())
    with pytest.raises(ValueError, match="bank_mode must be one of"):
        MemoryBank(4, 2, mode="fresh")
