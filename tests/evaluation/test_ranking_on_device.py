"""Evaluation stays on the device until its totals: run on the ``meta`` device (where any read of a
value fails) under a dispatch mode that refuses every op that makes a GPU wait for the host; and
its numbers, with the held-out items found on the device, against a numpy brute force."""
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from cbns.evaluation.ranking import full_ranking, full_ranking_columns, ranked_users, ranking_totals
from cbns.ranking.row_membership import RowKeys, contains
from cbns.ranking.topk import exact_top_k

#: Ops whose result a GPU can only give by waiting for the host to read a value.
HOST_READS = {"aten._local_scalar_dense.default", "aten.item.default", "aten.nonzero.default", "aten.is_nonzero.default",
              "aten.equal.default", "aten.masked_select.default", "aten._unique2.default", "aten.unique_dim.default",
              "aten.repeat_interleave.Tensor"}


class RefuseHostReads(TorchDispatchMode):
    """Counts the dispatched ops and raises at any of :data:`HOST_READS` or any copy to the CPU."""

    def __init__(self):
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.ops += 1
        assert str(func) not in HOST_READS, f"{func} reads the device"
        if func is torch.ops.aten._to_copy.default and kwargs.get("device") is not None:
            assert torch.device(kwargs["device"]).type != "cpu", "a copy back to the host"
        return func(*args, **kwargs)


def random_case(rng, num_users, num_items, density_relevant=0.02, density_exclude=0.1):
    relevant = sp.random(num_users, num_items, density=density_relevant, format="csr", random_state=rng)
    exclude = sp.random(num_users, num_items, density=density_exclude, format="csr", random_state=rng)
    exclude = (exclude - exclude.multiply(relevant > 0)).tocsr()  # a held-out item is never a training one
    exclude.eliminate_zeros()
    relevant.data[:] = 1
    exclude.data[:] = 1
    return relevant, exclude


def brute_force(scores, relevant, exclude, users, k):
    """Per user: every score, excluded items at -inf, a full sort; recall and NDCG averaged over ``users``."""
    recall, ndcg = [], []
    for u in users:
        s = scores[u].astype(np.float64).copy()
        s[exclude[u].indices] = -np.inf
        top = np.argsort(-s, kind="stable")[:k]
        rel = set(relevant[u].indices.tolist())
        hits = np.array([i in rel for i in top], dtype=np.float64)
        recall.append(hits.sum() / len(rel))
        ndcg.append((hits / np.log2(np.arange(2, k + 2))).sum()
                    / sum(1 / math.log2(r + 2) for r in range(min(len(rel), k))))
    return {f"recall@{k}": np.mean(recall), f"ndcg@{k}": np.mean(ndcg)}


@pytest.mark.parametrize("num_items", [300, 5000])  # the plain top-K, and the grouped one (K=20, 157 groups)
def test_evaluation_on_meta_reads_nothing_back(num_items):
    rng = np.random.default_rng(0)
    relevant, exclude = random_case(rng, 60, num_items)
    users = ranked_users(relevant)
    u, i = torch.randn(60, 8, device="meta"), torch.randn(num_items, 8, device="meta")
    with RefuseHostReads() as mode:
        totals = ranking_totals(u, i, relevant, exclude, (5, 20), users, chunk_size=16,
                                item_bias=torch.zeros(num_items, device="meta"))
    assert totals.device.type == "meta" and totals.shape == (8,) and totals.dtype == torch.float64
    assert mode.ops > 0


@pytest.mark.parametrize("seed,num_users,num_items,chunk,biased", [
    (0, 40, 200, 7, False), (1, 120, 3000, 32, True), (2, 9, 64, 1, True), (3, 200, 1500, None, False)])
def test_recall_and_ndcg_equal_a_numpy_brute_force(seed, num_users, num_items, chunk, biased):
    rng = np.random.default_rng(seed)
    relevant, exclude = random_case(rng, num_users, num_items)
    users = rng.standard_normal((num_users, 6)).astype(np.float32)
    items = rng.standard_normal((num_items, 6)).astype(np.float32)
    bias = rng.standard_normal(num_items).astype(np.float32) if biased else None
    rows = np.sort(rng.choice(num_users, size=num_users * 2 // 3, replace=False))
    got = full_ranking(torch.from_numpy(users), torch.from_numpy(items), relevant, exclude, (5, 20),
                       chunk_size=chunk, rows=rows, item_bias=None if bias is None else torch.from_numpy(bias))
    scores = users.astype(np.float64) @ items.T.astype(np.float64) + (0 if bias is None else bias)
    averaged = [u for u in rows if relevant[u].nnz]
    for k in (5, 20):
        for name, want in brute_force(scores, relevant, exclude, averaged, k).items():
            assert abs(got[name] - want) < 1e-6, (name, got[name], want)
    # several rankings from one product: each as full_ranking with the column added to the bias
    columns = [torch.zeros(num_items), torch.from_numpy(rng.random(num_items).astype(np.float32))]
    both = full_ranking_columns(torch.from_numpy(users), torch.from_numpy(items), relevant, exclude, columns,
                                (5, 20), rows=rows, item_bias=None if bias is None else torch.from_numpy(bias))
    for column, metrics in zip(columns, both):
        shifted = scores + column.numpy().astype(np.float64)
        for name, want in brute_force(shifted, relevant, exclude, averaged, 20).items():
            assert abs(metrics[name] - want) < 1e-6, (name, metrics[name], want)


def test_row_keys_find_what_contains_finds_and_fill_by_flat_index():
    rng = np.random.default_rng(7)
    matrix, _ = random_case(rng, 30, 90, density_relevant=0.2)
    rows = rng.permutation(30)[:20]
    keys = RowKeys(matrix, rows, 96, torch.device("cpu"))
    cols = rng.integers(-1, 90, size=(20, 15))
    for a, b in ((0, 20), (5, 12), (19, 20)):
        got = keys.hits(torch.from_numpy(cols[a:b]), a).numpy()
        np.testing.assert_array_equal(got, contains(matrix, rows[a:b], cols[a:b]))
    block = torch.zeros(7, 96)
    keys.fill(block, 5, -1.0)
    want = np.zeros((7, 96))
    for r, row in enumerate(rows[5:12]):
        want[r, matrix[row].indices] = -1.0
    np.testing.assert_array_equal(block.numpy(), want)
    with pytest.raises(ValueError, match="width"):
        RowKeys(matrix, rows, 89, torch.device("cpu"))


def test_exact_top_k_reads_back_once_and_equals_a_full_sort():
    rng = np.random.default_rng(3)
    queries = rng.standard_normal((50, 4)).astype(np.float32)
    items = rng.standard_normal((400, 4)).astype(np.float32)
    _, exclude = random_case(rng, 50, 400, density_exclude=0.3)
    scores, found = exact_top_k(queries, items, 12, exclude)
    full = queries.astype(np.float64) @ items.T.astype(np.float64)
    for q in range(50):
        s = full[q].copy()
        s[exclude[q].indices] = -np.inf
        np.testing.assert_array_equal(found[q], np.argsort(-s, kind="stable")[:12])
        np.testing.assert_allclose(scores[q], s[found[q]], rtol=1e-5)
