"""DrawnSource's draws: the distribution asked for, ids always in range, zero weights never drawn."""
import numpy as np
import torch

from cbns.negatives.drawn_source import DrawnSource


def test_draw_follows_the_weights_within_sampling_error():
    weights = torch.tensor([1.0, 0.0, 3.0, 6.0])  # not normalised: the total is 10
    ids = DrawnSource(seed=3).draw(weights, 200_000).numpy()
    freq = np.bincount(ids, minlength=4) / len(ids)
    expected = np.array([0.1, 0.0, 0.3, 0.6])
    # 5 standard errors of a proportion at n = 200k is at most 0.0056
    np.testing.assert_allclose(freq, expected, atol=0.0056)
    assert freq[1] == 0.0  # a zero weight is never drawn


def test_draw_cdf_never_leaves_the_catalog_when_the_total_rounds_below_one():
    # float32 running sums of many tiny weights end below 1; a uniform number above the last entry
    # must still map to the last item, not to I
    n = 100_000
    cdf = torch.cumsum(torch.full((n,), 1.0 / n, dtype=torch.float32), 0)
    ids = DrawnSource(seed=0).draw_cdf(cdf, 500_000)
    assert int(ids.min()) >= 0 and int(ids.max()) <= n - 1


def test_the_same_seed_draws_the_same_ids():
    probs = torch.tensor([0.2, 0.3, 0.5])
    assert torch.equal(DrawnSource(seed=7).draw(probs, 50), DrawnSource(seed=7).draw(probs, 50))
