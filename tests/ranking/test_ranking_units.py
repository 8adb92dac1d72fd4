"""Unit oracles for what evaluation and serving share: membership, the exact top-K, index specs,
the item index and filtered search over it."""
import numpy as np
import pytest
import scipy.sparse as sp

from cbns.cli.options import flag_name
from cbns.errors import CbnsError
from cbns.ranking.filtered_search import index_top_k
from cbns.ranking.index_spec import IndexSpec
from cbns.ranking.item_index import ItemIndex
from cbns.ranking.row_membership import contains
from cbns.ranking.topk import exact_top_k


def test_contains_matches_python_sets():
    rng = np.random.default_rng(0)
    matrix = sp.random(50, 30, density=0.2, format="csr", random_state=1)
    rows = rng.integers(0, 50, size=20)
    cols = rng.integers(-1, 30, size=(20, 12))
    sets = [set(matrix[r].indices.tolist()) for r in range(50)]
    expected = np.array([[c >= 0 and c in sets[r] for c in cs] for r, cs in zip(rows, cols)])
    assert expected.any() and not expected.all()
    np.testing.assert_array_equal(contains(matrix, rows, cols), expected)


def test_contains_padding_never_matches_last_item_of_previous_row():
    # key r * I + (-1) equals (r - 1) * I + (I - 1): padding must not be read as that item
    matrix = sp.csr_matrix(np.array([[0, 0, 1], [0, 0, 0]], dtype=np.float32))
    assert not contains(matrix, np.array([0, 1]), np.array([[-1], [-1]])).any()
    assert contains(matrix, np.array([0]), np.array([[2]]))[0, 0]


def test_exact_top_k_hand_example_with_exclusion_and_padding():
    items = np.array([[1, 0], [0, 1], [1, 1], [-1, 0]], dtype=np.float32)
    queries = np.array([[1, 0], [0, 2]], dtype=np.float32)
    # query 0 scores 1, 0, 1, -1 -> excluding items 0 and 2 leaves 1 (0), 3 (-1)
    # query 1 scores 0, 2, 2, 0 -> excluding 1, 2, 3 leaves item 0 only
    exclude = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 1, 1, 1]], dtype=np.float32))
    scores, rows = exact_top_k(queries, items, 3, exclude)
    np.testing.assert_array_equal(rows, [[1, 3, -1], [0, -1, -1]])
    np.testing.assert_allclose(scores, [[0, -1, -np.inf], [0, -np.inf, -np.inf]])


@pytest.mark.parametrize("spec, message, flags", [
    (IndexSpec("annoy"), "option kind: must be one of flat, ivf, hnsw, got 'annoy'",
     "--kind: must be one of flat, ivf, hnsw, got 'annoy'"),
    (IndexSpec("flat", nlist=4), "option nlist: applies to kind=ivf only, got kind=flat with nlist=4",
     "--nlist: applies to --kind ivf only, got --kind flat with --nlist 4"),
    (IndexSpec("ivf", m=8), "option m: applies to kind=hnsw only, got kind=ivf with m=8",
     "--m: applies to --kind hnsw only, got --kind ivf with --m 8"),
    (IndexSpec("ivf", nprobe=0), "option nprobe: must be >= 1, got 0", "--nprobe: must be >= 1, got 0"),
    (IndexSpec("ivf", nlist=101), "option nlist: must be <= the number of items (100), got 101",
     "--nlist: must be <= the number of items (100), got 101"),
    (IndexSpec("ivf", nlist=10, nprobe=11), "option nprobe: must be <= nlist (10), got 11",
     "--nprobe: must be <= --nlist (10), got 11"),
    (IndexSpec("hnsw", ef_search=-3), "option ef_search: must be >= 1, got -3", "--ef-search: must be >= 1, got -3"),
])
def test_index_spec_errors_name_the_option_and_value(spec, message, flags):
    with pytest.raises(CbnsError) as info:
        spec.resolve(100)
    assert str(info.value) == message and info.value.render(flag=flag_name) == flags


def test_index_spec_defaults():
    # 4 * sqrt(40981) = 809.8; nprobe = max(8, 810 // 16 = 50)
    assert IndexSpec("ivf").resolve(40981).params() == {"nlist": 810, "nprobe": 50}
    # 4 * sqrt(100) = 40; 40 // 16 = 2, so the floor of 8 cells applies
    assert IndexSpec("ivf").resolve(100).params() == {"nlist": 40, "nprobe": 8}
    assert IndexSpec("ivf").resolve(3).params() == {"nlist": 3, "nprobe": 3}
    assert IndexSpec("hnsw", m=8).resolve(10).params() == {"m": 8, "ef_search": 128, "ef_construction": 80}


def test_ivf_over_vectors_of_unequal_length_is_exact_when_exhaustive(tmp_path):
    # Unit vectors plus a bias column (what a run with the learned item bias exports): ivf
    # reduces inner product to L2; searched exhaustively it must return the brute-force top k,
    # with the exact dot products, also after a save and load.
    rng = np.random.default_rng(0)
    unit = rng.normal(size=(300, 6))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    items = np.hstack([unit, rng.normal(scale=0.8, size=(300, 1))]).astype(np.float32)
    queries = np.hstack([rng.normal(size=(25, 6)), np.ones((25, 1))]).astype(np.float32)
    exact = queries.astype(np.float64) @ items.astype(np.float64).T
    want = np.argsort(-exact, axis=1)[:, :10]
    index = ItemIndex.build(items, IndexSpec("ivf", nlist=8, nprobe=8))
    assert index.l2_phi == pytest.approx(np.linalg.norm(items, axis=1).max())
    index.save(tmp_path, items)
    for built in (index, ItemIndex.load(tmp_path, items)):
        scores, rows = built.search(queries, 10)
        assert (rows == want).all()
        assert np.allclose(scores, np.take_along_axis(exact, want, 1), atol=1e-4)
    unit_only = ItemIndex.build(unit.astype(np.float32), IndexSpec("ivf", nlist=8, nprobe=8))
    assert unit_only.l2_phi is None  # equal lengths: plain inner product
    assert ItemIndex.build(items, IndexSpec("hnsw")).l2_phi is None  # hnsw keeps inner product


@pytest.mark.parametrize("spec", [IndexSpec("flat"), IndexSpec("hnsw", m=4, ef_search=4)])
def test_filtered_search_never_returns_an_excluded_item_and_flat_equals_brute_force(spec):
    rng = np.random.default_rng(4)
    items = rng.standard_normal((200, 8)).astype(np.float32)
    queries = rng.standard_normal((40, 8)).astype(np.float32)
    dense = rng.random((40, 200)) < 0.3
    dense[3] = True  # a query that excludes every item: an empty list
    exclude = sp.csr_matrix(dense.astype(np.float32))
    exact = queries.astype(np.float64) @ items.astype(np.float64).T
    exact[dense] = -np.inf
    scores, rows = index_top_k(ItemIndex.build(items, spec), queries, items, 20, exclude)
    for q in range(40):
        got = rows[q][rows[q] >= 0]
        assert not dense[q, got].any()
        assert len(got) == len(set(got.tolist())) == min(20, 200 - dense[q].sum())
        np.testing.assert_allclose(scores[q, :len(got)], exact[q, got], atol=1e-4)
        if spec.kind == "flat":
            want = np.argsort(-exact[q])[:len(got)]
            np.testing.assert_allclose(scores[q, :len(got)], exact[q, want], atol=1e-4)
    assert (rows[3] == -1).all() and np.isneginf(scores[3]).all()
