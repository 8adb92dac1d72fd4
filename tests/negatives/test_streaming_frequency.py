"""The streaming frequency estimate against known frequencies, and how it feeds the objective."""
import numpy as np
import pytest
import torch

from cbns.negatives import StreamingFrequency
from cbns.objective.cross_batch_loss import CrossBatchSoftmaxLoss


def test_update_by_hand():
    f = StreamingFrequency(num_slots=64, alpha=0.5)
    f.update(torch.tensor([5]))                 # t=0, first sighting: gap = t + 1 = 1
    f.update(torch.tensor([7]))                 # t=1
    f.update(torch.tensor([7]))                 # t=2: item 7 gap = 0.5 * 2 + 0.5 * 1 = 1.5
    lq = f.update(torch.tensor([5, 5]))         # t=3: item 5 (once per step) gap = 0.5 * 1 + 0.5 * 3 = 2
    assert torch.allclose(lq, torch.log(torch.tensor([0.5, 0.5])))
    assert torch.allclose(f.log_q(torch.tensor([7, 9])), torch.tensor([-np.log(1.5), 0.0], dtype=torch.float32))


def test_estimates_the_per_batch_probability_of_a_known_stream():
    rng = np.random.default_rng(0)
    num_items, batch, steps = 50, 16, 8000
    p = 1.0 / np.arange(1, num_items + 1) ** 1.1
    p /= p.sum()
    f = StreamingFrequency(num_slots=1 << 12, alpha=0.01)
    for ids in torch.from_numpy(rng.choice(num_items, size=(steps, batch), p=p)):
        f.update(ids)
    # Independent reference: item i is in a batch of B iid draws with probability 1 - (1 - p_i)^B.
    in_batch = 1 - (1 - p) ** batch
    got = torch.exp(f.log_q(torch.arange(num_items))).numpy()
    frequent = in_batch > 0.1
    assert frequent.sum() >= 10
    error = np.abs(got[frequent] / in_batch[frequent] - 1)
    # alpha = 0.01 averages ~200 gaps: a few percent typical error, none off by a quarter
    assert np.median(error) < 0.06 and error.max() < 0.25, error
    # the ranking of the estimates follows the true frequencies
    assert np.corrcoef(np.log(got), np.log(in_batch))[0, 1] > 0.95


def test_items_sharing_a_slot_share_their_combined_frequency():
    f = StreamingFrequency(num_slots=1, alpha=0.1)
    for t in range(200):
        f.update(torch.tensor([t % 3]))          # some item every step: the shared slot's gap is 1
    assert torch.allclose(f.log_q(torch.tensor([0, 1, 2, 99])), torch.zeros(4), atol=1e-6)


def test_objective_log_q_and_bank_follow_the_estimate():
    criterion = CrossBatchSoftmaxLoss(2, 8, frequency_slots=64, frequency_alpha=1.0)  # alpha 1: q = 1 / last gap
    for t, ids in enumerate([[1, 2], [1], [3], [1, 2]]):
        ids = torch.tensor(ids)
        criterion(torch.zeros(len(ids), 2), torch.zeros(len(ids), 2), ids)
    # item 1 seen at t=0, 1, 3 -> last gap 2; item 2 at t=0, 3 -> gap 3; item 3 first at t=2 -> gap 3
    criterion.eval()
    assert torch.allclose(criterion._logq(torch.tensor([1, 2, 3])), -torch.log(torch.tensor([2.0, 3.0, 3.0])))
    bank = criterion.bank.candidates()
    ids = bank.ids.tolist()
    # the bank stored each row's log q as of its enqueue: item 1 at t=1 had gap 1 (log q 0)
    assert bank.logq[ids.index(3)] == pytest.approx(-np.log(3.0))
    assert [round(float(bank.logq[k]), 4) for k, i in enumerate(ids) if i == 1] == [0.0, 0.0, round(-np.log(2.0), 4)]
    assert "frequency.gap" in criterion.state_dict()


def test_static_log_q_is_unchanged_by_training():
    criterion = CrossBatchSoftmaxLoss(2, 0, item_counts=np.array([1, 3]))
    before = criterion.log_q.clone()
    criterion(torch.zeros(2, 2), torch.zeros(2, 2), torch.tensor([0, 1]))
    assert criterion.frequency is None and torch.equal(criterion.log_q, before)
