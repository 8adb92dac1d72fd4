"""Validation on a sample of users: the sample, and the metrics against a brute-force computation
on exactly those users."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from cbns.data.interactions import Interactions
from cbns.evaluation.ranking import evaluate_split
from cbns.evaluation.user_sample import sample_users, users_with_items
from cbns.model.towers.id_tower import IdTower
from cbns.model.two_tower import TwoTower


def test_sample_is_seeded_sorted_and_among_users_with_items():
    relevant = sp.csr_matrix(np.eye(10)[[0, 0, 3, 4, 0, 5, 6, 0, 8, 9]] * (np.arange(10) % 3 != 1)[:, None])
    having = np.flatnonzero(np.diff(relevant.indptr) > 0)
    a, b = sample_users(relevant, 3, seed=7), sample_users(relevant, 3, seed=7)
    assert np.array_equal(a, b) and len(a) == 3 and np.all(np.diff(a) > 0) and set(a) <= set(having)
    assert not np.array_equal(sample_users(relevant, 3, seed=8), a) or len(having) <= 3
    assert sample_users(relevant, 0, 1) is None and sample_users(relevant, len(having), 1) is None
    assert users_with_items(relevant) == len(having)


def brute_force_recall_ndcg(model, data, users, k):
    """Per sampled user by hand: score every item, mask train, sort, recall and NDCG at k."""
    u = model.all_users(data.num_users).double()
    v = model.all_items(data.num_items).double()
    scores = u @ v.T + model.item_column().double()
    train, valid = data.matrix("train").toarray() > 0, data.matrix("valid").toarray() > 0
    recalls, ndcgs = [], []
    for user in users:
        s = scores[user].clone()
        s[torch.from_numpy(train[user])] = -np.inf
        top = torch.argsort(s, descending=True)[:k].numpy()
        hits = valid[user][top]
        n = valid[user].sum()
        recalls.append(hits.sum() / n)
        dcg = sum(1 / np.log2(r + 2) for r in range(k) if hits[r])
        ndcgs.append(dcg / sum(1 / np.log2(r + 2) for r in range(min(n, k))))
    return float(np.mean(recalls)), float(np.mean(ndcgs))


@pytest.mark.parametrize("n", [5, 17])
def test_sampled_validation_equals_brute_force_on_those_users(n):
    rng = np.random.default_rng(0)
    pairs = np.unique(np.stack([rng.integers(0, 40, 900), rng.integers(0, 60, 900)], 1), axis=0)
    rng.shuffle(pairs)
    data = Interactions("toy", 40, 60, train=pairs[:500], valid=pairs[500:700], test=pairs[700:])
    torch.manual_seed(0)
    model = TwoTower(IdTower(40, 8), IdTower(60, 8), num_items=60, item_bias=True)
    with torch.no_grad():
        model.item_bias.copy_(0.3 * torch.randn(60))
    users = sample_users(data.matrix("valid"), n, seed=3)
    got = evaluate_split(model, data, "valid", [10], users=users)
    want = brute_force_recall_ndcg(model, data, users, 10)
    assert got["recall@10"] == pytest.approx(want[0], abs=1e-6)  # float32 metric sums
    assert got["ndcg@10"] == pytest.approx(want[1], abs=1e-6)
    # every user, in one call: not the sample's numbers
    assert evaluate_split(model, data, "valid", [10])["recall@10"] != pytest.approx(got["recall@10"], abs=1e-6)
