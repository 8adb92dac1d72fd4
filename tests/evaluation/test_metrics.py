"""Full-ranking metrics against a brute-force per-user computation."""
import math

import numpy as np
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cbns.evaluation.ranking import full_ranking


def brute_force(scores, relevant, exclude, k):
    """Python loops over users; ties broken like a stable descending sort (none occur here)."""
    rec, ndcg, hit, prec = [], [], [], []
    for u in range(scores.shape[0]):
        rel = set(relevant[u])
        if not rel:
            continue
        s = scores[u].copy()
        s[list(exclude[u])] = -np.inf
        top = list(np.argsort(-s, kind="stable")[:k])
        hits = [1.0 if i in rel else 0.0 for i in top]
        dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(len(rel), k)))
        rec.append(sum(hits) / len(rel))
        ndcg.append(dcg / idcg)
        hit.append(float(sum(hits) > 0))
        prec.append(sum(hits) / k)
    return {f"recall@{k}": np.mean(rec), f"ndcg@{k}": np.mean(ndcg), f"hit@{k}": np.mean(hit),
            f"precision@{k}": np.mean(prec)}


def to_csr(lists, num_items):
    rows = [u for u, items in enumerate(lists) for _ in items]
    cols = [i for items in lists for i in items]
    return sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(lists), num_items))


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 9), st.integers(3, 30), st.integers(0, 1000), st.integers(1, 5))
def test_full_ranking_equals_brute_force(num_users, num_items, seed, chunk):
    rng = np.random.default_rng(seed)
    users = rng.standard_normal((num_users, 3)).astype(np.float32)
    items = rng.standard_normal((num_items, 3)).astype(np.float32)
    relevant, exclude = [], []
    for _ in range(num_users):
        perm = rng.permutation(num_items)
        n_ex = int(rng.integers(0, num_items // 2))
        n_rel = int(rng.integers(0, num_items - n_ex))
        exclude.append(sorted(perm[:n_ex]))
        relevant.append(sorted(perm[n_ex:n_ex + n_rel]))
    if not any(relevant):
        relevant[0] = [int(rng.integers(num_items))]
        exclude[0] = [i for i in exclude[0] if i != relevant[0][0]]
    ks = [1, 3, num_items]
    got = full_ranking(torch.from_numpy(users), torch.from_numpy(items), to_csr(relevant, num_items),
                       to_csr(exclude, num_items), ks, chunk_size=chunk)
    scores = users @ items.T
    for k in ks:
        for name, value in brute_force(scores, relevant, exclude, k).items():
            assert abs(got[name] - value) < 1e-5, (name, got[name], value)


def test_known_numbers():
    # One user, items scored 0.9, 0.8, 0.7, 0.6; item 0 is a training item (masked), items 2 and 3
    # are relevant. Ranking: 1, 2, 3 -> hits at ranks 2 and 3.
    users = torch.tensor([[1.0]])
    items = torch.tensor([[0.9], [0.8], [0.7], [0.6]])
    m = full_ranking(users, items, to_csr([[2, 3]], 4), to_csr([[0]], 4), ks=[2])
    assert m["recall@2"] == 0.5 and m["precision@2"] == 0.5 and m["hit@2"] == 1.0
    assert abs(m["ndcg@2"] - (1 / math.log2(3)) / (1 + 1 / math.log2(3))) < 1e-6


def test_wide_catalogue_uses_grouped_topk_and_equals_brute_force():
    # 3,000 items and K = 20: 94 groups of 32 >= 4K, so the grouped top-K path runs.
    rng = np.random.default_rng(5)
    num_users, num_items = 40, 3000
    users = rng.standard_normal((num_users, 8)).astype(np.float32)
    items = rng.standard_normal((num_items, 8)).astype(np.float32)
    relevant, exclude = [], []
    for _ in range(num_users):
        perm = rng.permutation(num_items)
        n_ex = int(rng.integers(0, 2900))
        exclude.append(sorted(perm[:n_ex]))
        relevant.append(sorted(perm[n_ex:n_ex + int(rng.integers(1, 60))]))
    got = full_ranking(torch.from_numpy(users), torch.from_numpy(items), to_csr(relevant, num_items),
                       to_csr(exclude, num_items), [5, 20], chunk_size=7)
    for k in (5, 20):
        for name, value in brute_force(users @ items.T, relevant, exclude, k).items():
            assert abs(got[name] - value) < 1e-5, (name, got[name], value)
