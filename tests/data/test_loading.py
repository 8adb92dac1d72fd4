"""Dataset loaders on good and malformed input, and the seeded holdout splits."""
import numpy as np
import pandas as pd
import pytest

from cbns.data import carve_validation, load_dataset
from cbns.data.holdout import holdout_mask
from cbns.errors import CbnsError


def write_lightgcn(tmp_path, train, test):
    (tmp_path / "train.txt").write_text(train)
    (tmp_path / "test.txt").write_text(test)
    return tmp_path


def test_lightgcn_directory(tmp_path):
    d = load_dataset(str(write_lightgcn(tmp_path, "0 1 2\n1 0\n2\n\n3 4 1\n", "0 3\n3 0\n")))
    assert (d.num_users, d.num_items) == (4, 5)
    assert sorted(map(tuple, d.train.tolist())) == [(0, 1), (0, 2), (1, 0), (3, 1), (3, 4)]
    assert sorted(map(tuple, d.test.tolist())) == [(0, 3), (3, 0)]
    assert d.user_ids is None and d.item_counts().tolist() == [1, 2, 1, 0, 1]


@pytest.mark.parametrize("train,test,message", [
    ("0 1 2\n1 x\n", "0 3\n", r"train.txt:2: id 'x' is not an integer"),
    ("0 1 2\n1 -4\n", "0 3\n", r"train.txt:2: ids must be >= 0, got -4"),
    ("0 1.5\n", "0 3\n", r"train.txt:1: id '1.5' is not an integer"),
    ("", "0 3\n", r"train.txt: no \(user, item\) pairs"),
    ("0 1 2\n", "", r"test.txt: no \(user, item\) pairs"),
    ("0 1 2\n", "5 1\n", r"test.txt: user id 5 is outside the id range of train.txt \(0..0\)"),
    ("0 1 2\n", "0 9\n", r"test.txt: item id 9 is outside the id range of train.txt \(0..2\)"),
    ("0 1 2\n", "0 2\n", r"test.txt: 1 \(user, item\) pair\(s\) also in train.txt"),
])
def test_malformed_lightgcn_files_name_file_and_line(tmp_path, train, test, message):
    write_lightgcn(tmp_path, train, test)
    with pytest.raises(CbnsError, match=message):
        load_dataset(str(tmp_path))


def test_missing_path_and_unknown_suffix(tmp_path):
    with pytest.raises(CbnsError, match="option data=.*nope: no such file or directory"):
        load_dataset(str(tmp_path / "nope"))
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(CbnsError, match="unknown dataset file type '.json'"):
        load_dataset(str(tmp_path / "x.json"))
    with pytest.raises(CbnsError, match="expected train.txt and test.txt"):
        load_dataset(str(tmp_path))


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_single_table_remaps_ids_and_holds_out_test(tmp_path, suffix):
    rows = [(f"u{u}", f"item-{i}", 1000 + u * 10 + i) for u in range(6) for i in range(u, u + 5)]
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    path = tmp_path / f"log{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, sep="," if suffix == ".csv" else "\t", index=False)
    d = load_dataset(str(path), seed=3)
    assert d.num_users == 6 and d.num_items == 10
    assert list(d.user_ids) == [f"u{u}" for u in range(6)]
    # every original pair is in exactly one of train/test, mapped back through the id maps
    back = {(d.user_ids[u], d.item_ids[i]) for u, i in np.concatenate([d.train, d.test])}
    assert back == {(u, i) for u, i, _ in rows}
    assert len(d.test) == 6  # round(0.2 * 5) = 1 per user


def test_table_pair_directory_maps_test_ids_through_train(tmp_path):
    pd.DataFrame({"user": ["a", "a", "b"], "item": [10, 20, 10]}).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"user": ["b"], "item": [20]}).to_csv(tmp_path / "test.csv", index=False)
    d = load_dataset(str(tmp_path))
    assert d.test.tolist() == [[1, 1]]
    pd.DataFrame({"user": ["c"], "item": [20]}).to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(CbnsError, match=r"test.csv:2: user 'c' does not occur in the train table"):
        load_dataset(str(tmp_path))


@pytest.mark.parametrize("content,message", [
    ("", "the file is empty"),
    ("user,item\n", "header but no rows"),
    ("user,thing\n1,2\n", "missing column\\(s\\) item"),
    ("user,item\n1,2\n,3\n", r"t.csv:3: empty user id"),
    ("user,item,rating\n1,2,5\n1,3,five\n", r"t.csv:3: rating 'five' is not a finite number"),
    ('user,item\n1,2\n"3,4\n', "t.csv:3: cannot parse the table"),
])
def test_malformed_tables(tmp_path, content, message):
    path = tmp_path / "t.csv"
    path.write_text(content)
    with pytest.raises(CbnsError, match=message):
        load_dataset(str(path))


def test_holdout_keeps_one_item_per_user_and_is_seeded():
    rng = np.random.default_rng(0)
    pairs = np.array([(u, i) for u in range(50) for i in rng.choice(100, size=int(rng.integers(1, 30)), replace=False)])
    m1, m2, m3 = holdout_mask(pairs, 0.1, 1), holdout_mask(pairs, 0.1, 1), holdout_mask(pairs, 0.1, 2)
    assert np.array_equal(m1, m2) and not np.array_equal(m1, m3)
    for u in range(50):
        n = int((pairs[:, 0] == u).sum())
        held = int(m1[pairs[:, 0] == u].sum())
        assert held == min(round(0.1 * n), n - 1)


def test_bundled_gowalla_matches_published_statistics():
    d = load_dataset("gowalla")
    assert (d.num_users, d.num_items, len(d.train), len(d.test)) == (29858, 40981, 810128, 217242)
    carve_validation(d, 0.1, 0)
    assert len(d.train) + len(d.valid) == 810128
    assert np.bincount(d.train[:, 0], minlength=d.num_users).min() >= 1


def test_a_directory_where_a_file_belongs_says_so(tmp_path):
    (tmp_path / "log.csv").mkdir()
    with pytest.raises(CbnsError, match=r"option data=.*log.csv: is a directory, not a .csv file"):
        load_dataset(str(tmp_path / "log.csv"))
    lightgcn = tmp_path / "lg"
    (lightgcn / "train.txt").mkdir(parents=True)
    (lightgcn / "test.txt").write_text("0 1\n")
    with pytest.raises(CbnsError, match=r"lg/train.txt: is a directory, not a file; give the file itself"):
        load_dataset(str(lightgcn))
    from cbns.data.readers.feature_files import read_feature_file

    (tmp_path / "users.csv").mkdir()
    with pytest.raises(CbnsError, match=r"option user_features=.*users.csv: is a directory, not a file"):
        read_feature_file(tmp_path / "users.csv", "user", [], None, 3)
