"""The seen items a run saves: exactly each user's train and validation items, checked against the
interactions the run was trained on, and refused when they are not the run's."""
import numpy as np
import pytest
import scipy.sparse as sp
from conftest import as_sets, train_file_sets

from cbns.data.loading import load_data
from cbns.runs.run_dir import load_run_config
from cbns.runs.seen_items_file import SEEN_FILE, SeenItemsUnavailable, read_seen_items, write_seen_items


def test_a_saved_run_holds_each_users_train_and_validation_items(valid_run):
    items = np.load(valid_run / "item_embeddings.npy")
    users = np.load(valid_run / "user_embeddings.npy")
    seen = read_seen_items(valid_run, items, len(users))
    assert seen.shape == (len(users), len(items))
    assert set(np.unique(seen.data)) == {1.0}
    assert as_sets(seen) == train_file_sets(valid_run)
    # the validation items are in it (the carve is not empty), the test items are not
    data = load_data(load_run_config(valid_run))
    assert len(data.valid) > 0
    assert all(seen[u, i] == 1 for u, i in data.valid)
    assert not any(seen[u, i] for u, i in data.test)


def test_seen_items_read_from_the_run_equal_the_ones_computed_from_the_data(valid_run):
    items = np.load(valid_run / "item_embeddings.npy")
    data = load_data(load_run_config(valid_run))
    seen = read_seen_items(valid_run, items, data.num_users)
    expected = sp.csr_matrix((np.ones(len(data.train) + len(data.valid)),
                              tuple(np.concatenate([data.train, data.valid]).T)),
                             shape=(data.num_users, data.num_items))
    assert (seen != (expected > 0)).nnz == 0


def random_csr(rng, shape, density=0.2):
    dense = rng.random(shape) < density
    dense[0] = False  # a user with no seen items
    return sp.csr_matrix(dense.astype(np.float32))


def test_write_read_round_trip_and_refusals(tmp_path):
    rng = np.random.default_rng(0)
    seen = random_csr(rng, (7, 11))
    items = rng.standard_normal((11, 4)).astype(np.float32)
    write_seen_items(tmp_path, seen, items, "data|seed=0|valid_fraction=0.05")
    assert not list(tmp_path.glob("*.tmp-*"))
    back = read_seen_items(tmp_path, items, 7)
    np.testing.assert_array_equal(back.toarray(), seen.toarray())

    other = items.copy()
    other[3, 0] += 1.0
    with pytest.raises(SeenItemsUnavailable, match="other item embeddings"):
        read_seen_items(tmp_path, other, 7)
    with pytest.raises(SeenItemsUnavailable, match="holds 7 users x 11 items, the run 8 x 11"):
        read_seen_items(tmp_path, items, 8)
    (tmp_path / SEEN_FILE).unlink()
    with pytest.raises(SeenItemsUnavailable, match="no such file"):
        read_seen_items(tmp_path, items, 7)


def test_the_older_cache_and_damaged_files_are_refused(tmp_path):
    rng = np.random.default_rng(1)
    seen = random_csr(rng, (5, 6))
    items = rng.standard_normal((6, 3)).astype(np.float32)
    # what serving wrote on first use before runs saved the file: keyed by the dataset options only
    np.savez_compressed(tmp_path / SEEN_FILE, indptr=seen.indptr, indices=seen.indices,
                        shape=np.array(seen.shape), source=np.array("data|seed=0|valid_fraction=0.05"))
    with pytest.raises(SeenItemsUnavailable, match="the cache of an older cbns"):
        read_seen_items(tmp_path, items, 5)
    (tmp_path / SEEN_FILE).write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(SeenItemsUnavailable, match="cannot read it"):
        read_seen_items(tmp_path, items, 5)
    write_seen_items(tmp_path, seen, items, "x")
    with np.load(tmp_path / SEEN_FILE) as z:
        arrays = dict(z)
    arrays["indices"] = arrays["indices"] + 6  # out of range
    np.savez_compressed(tmp_path / SEEN_FILE, **arrays)
    with pytest.raises(SeenItemsUnavailable, match="damaged"):
        read_seen_items(tmp_path, items, 5)
