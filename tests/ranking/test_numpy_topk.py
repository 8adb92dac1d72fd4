"""The numpy exact top-K that serves bundles: checked against a float64 brute-force ranking and
against the torch top-K evaluation uses."""
import numpy as np
import pytest
import scipy.sparse as sp

from cbns.ranking.numpy_topk import numpy_top_k
from cbns.ranking.topk import exact_top_k


def brute(queries, items, k, exclude):
    scores = queries.astype(np.float64) @ items.astype(np.float64).T
    rows = []
    for q in range(len(queries)):
        banned = set(exclude[q].indices.tolist()) if exclude is not None else set()
        order = [i for i in np.argsort(-scores[q], kind="stable") if i not in banned]
        rows.append(order[:k] + [-1] * (k - len(order[:k])))
    return np.array(rows)


@pytest.mark.parametrize("block_bytes", [64 * 2**20, 4 * 37 * 3])  # one block; three queries a block
def test_matches_a_float64_brute_force_with_exclusions_and_short_lists(block_bytes):
    rng = np.random.default_rng(0)
    queries, items = rng.normal(size=(10, 5)).astype(np.float32), rng.normal(size=(37, 5)).astype(np.float32)
    dense = rng.random((10, 37)) < 0.3
    dense[4, :] = True                      # everything excluded: all padding
    dense[7, :] = True
    dense[7, [3, 9]] = False                # two items left for a list of eight
    exclude = sp.csr_matrix(dense.astype(np.float32))
    scores, rows = numpy_top_k(queries, items, 8, exclude, block_bytes=block_bytes)
    expected = brute(queries, items, 8, exclude)
    np.testing.assert_array_equal(rows, expected)
    real = expected >= 0
    np.testing.assert_allclose(scores[real], (queries[:, None, :] * items[expected.clip(0)]).sum(-1)[real], rtol=1e-5)
    assert np.isneginf(scores[~real]).all() and (rows[4] == -1).all() and (rows[7, 2:] == -1).all()


def test_agrees_with_the_torch_top_k_and_clips_k():
    rng = np.random.default_rng(1)
    queries, items = rng.normal(size=(50, 8)).astype(np.float32), rng.normal(size=(300, 8)).astype(np.float32)
    exclude = sp.random(50, 300, density=0.05, format="csr", random_state=2, dtype=np.float32)
    ours, theirs = numpy_top_k(queries, items, 20, exclude), exact_top_k(queries, items, 20, exclude)
    np.testing.assert_array_equal(ours[1], theirs[1])
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5)
    scores, rows = numpy_top_k(queries[:2], items[:5], 50)
    assert rows.shape == (2, 5) and sorted(rows[0]) == [0, 1, 2, 3, 4]
