"""Unit oracles for the serving helpers: membership, index specs, id maps, the result type."""
import numpy as np
import pytest
import scipy.sparse as sp

from cbns.cli.options import flag_name
from cbns.errors import CbnsError
from cbns.evaluation.sparse_rows import contains
from cbns.evaluation.topk import exact_top_k
from cbns.serve.id_map import IdMap
from cbns.serve.index_spec import IndexSpec


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


def test_id_map_with_file_keeps_text_ids(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("007\nb c\nalice\n")
    ids = IdMap.from_file(path, 3)
    np.testing.assert_array_equal(ids.to_rows(["alice", "007", "b c"]), [2, 0, 1])
    assert list(ids.to_ids(np.array([1, -1, 0]))) == ["b c", None, "007"]
    with pytest.raises(CbnsError, match=r"^user '7': not in this run \(3 known, ids in .*ids.txt\) \(and 1 more unknown\)$"):
        ids.to_rows([7, "alice", "bob"], "user")


def test_id_map_without_file_is_the_integer_identity(tmp_path):
    ids = IdMap.from_file(tmp_path / "absent.txt", 5)
    np.testing.assert_array_equal(ids.to_rows([4, "0", np.int64(2)]), [4, 0, 2])
    with pytest.raises(CbnsError, match=r"not in this run \(5 known, integer ids 0\.\.4\)"):
        ids.to_rows([5])
    for bad in (-1, "x"):  # not integer ids at all (tests/serve/test_id_map.py: the loaders' rule)
        with pytest.raises(CbnsError, match=r"not an id of this run: its ids are the integers 0\.\.4"):
            ids.to_rows([bad])


def test_id_map_rejects_a_file_of_the_wrong_length(tmp_path):
    path = tmp_path / "item_ids.txt"
    path.write_text("a\nb\n")
    with pytest.raises(CbnsError, match="2 ids for 3 embedding rows"):
        IdMap.from_file(path, 3)


def test_ivf_over_vectors_of_unequal_length_is_exact_when_exhaustive(tmp_path):
    # Unit vectors plus a bias column (what a run with the learned item bias exports): ivf
    # reduces inner product to L2; searched exhaustively it must return the brute-force top k,
    # with the exact dot products, also after a save and load.
    from cbns.serve.item_index import ItemIndex

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
