"""Time-aware splits, the MovieLens-100k and sequence loaders, and attribute tables."""
import json

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA

from cbns.data import load_dataset
from cbns.data.event_splits import split_events
from cbns.data.events import EventLog
from cbns.data.readers.feature_files import read_feature_file
from cbns.errors import CbnsError


def log_of(events):
    """events: (user, item, time) triples in file order."""
    u, i, t = (np.array(x) for x in zip(*events))
    return EventLog("t", int(u.max()) + 1, int(i.max()) + 1, u, i, t.astype(float))


def test_leave_one_out_by_time_with_ties_in_file_order():
    # user 0: items 5 (t=3), 6 (t=1), 7 (t=3), 8 (t=2) -> by time: 6, 8, 5, 7 (5 before 7: file order)
    # user 1: two events -> test only; user 2: one event -> train only
    d = split_events(log_of([(0, 5, 3), (0, 6, 1), (0, 7, 3), (0, 8, 2), (1, 1, 9), (1, 2, 4), (2, 3, 0)]), "loo")
    assert d.test.tolist() == [[0, 7], [1, 1]]
    assert d.valid.tolist() == [[0, 5]]
    assert sorted(d.train.tolist()) == [[0, 6], [0, 8], [1, 2], [2, 3]]
    assert d.split == "loo" and d.test_time.tolist() == [3.0, 9.0]


def test_temporal_split_is_one_global_cut():
    rng = np.random.default_rng(0)
    events = [(int(t) % 10, int(t) // 10, float(t)) for t in rng.permutation(1000)]   # distinct pairs
    d = split_events(log_of(events), "temporal", valid_fraction=0.1)
    # 1000 distinct times 0..999: the cuts sit at 800 (test) and 700 (valid)
    assert (d.train_time.max(), d.valid_time.min(), d.valid_time.max(), d.test_time.min()) == (699, 700, 799, 800)
    assert (len(d.train), len(d.valid), len(d.test)) == (700, 100, 200)
    # a later event repeating an earlier pair is dropped before the split (it is a duplicate):
    # the split is the one of the log without it, and the repeat is counted
    events = [(0, i, float(i)) for i in range(9)]
    d = split_events(log_of(events + [(0, 0, 9.0)]), "temporal", 0.0)
    plain = split_events(log_of(events), "temporal", 0.0)
    assert d.train.tolist() == plain.train.tolist() and d.test.tolist() == plain.test.tolist() == [[0, 7], [0, 8]]
    assert d.rows.duplicates == 1 and d.rows.kept == 9


def test_random_split_holds_out_a_fifth_of_each_users_distinct_items():
    events = [(u, i, float(i)) for u in range(5) for i in range(10)] + [(0, 3, 50.0)]  # one repeat
    d = split_events(log_of(events), "random", seed=1)
    assert len(d.test) == 10 and len(d.train) == 40 and len(d.valid) == 0
    assert len(d.train_time) == len(d.train)


def test_presplit_sources_refuse_time_splits(tmp_path):
    with pytest.raises(CbnsError, match="option split=loo: gowalla comes with its own test split"):
        load_dataset("gowalla", split="loo")
    (tmp_path / "s.txt").write_text("1 1 2 3\n")
    with pytest.raises(CbnsError, match="option split=temporal: .*no global clock"):
        load_dataset(str(tmp_path / "s.txt"), split="temporal")
    pd.DataFrame({"user": [1], "item": [2]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(CbnsError, match="has no .timestamp. column; name the column of event times with time_column"):
        load_dataset(str(tmp_path / "t.csv"), split="loo")


def test_sequence_file_with_attributes_beside_it(tmp_path):
    (tmp_path / "Toy.txt").write_text("10 3 1 2\n2 1 3 20\n\n7 20\n")
    (tmp_path / "Toy_item2attributes.json").write_text(json.dumps({"1": [5, 6], "2": [6], "3": [], "20": [9, 9]}))
    d = load_dataset(str(tmp_path / "Toy.txt"), split="loo")
    assert list(d.user_ids) == [2, 7, 10] and list(d.item_ids) == [1, 2, 3, 20]   # numeric order
    back = lambda p: sorted((int(d.user_ids[u]), int(d.item_ids[i])) for u, i in p)  # noqa: E731
    assert back(d.test) == [(2, 20), (10, 2)] and back(d.valid) == [(2, 3), (10, 1)]
    assert back(d.train) == [(2, 1), (7, 20), (10, 3)]
    col = d.item_features.columns[0]
    # vocab of attribute tokens sorted as strings: "5" -> 1, "6" -> 2, "9" -> 3; duplicates count once
    assert col.multi and col.vocab == 4 and col.codes.tolist() == [[1, 2], [2, 0], [0, 0], [3, 0]]


def test_feature_file_categorical_multi_missing_and_errors(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text("item,genre,tags,year\nb,drama,x|y,1990\na,comedy,,1990\nzz,drama,y,2000\n")
    table = read_feature_file(path, "item", [], np.array(["a", "b", "c"], dtype=object), 3)
    genre, tags, year = table.columns
    assert not genre.multi and genre.codes[:, 0].tolist() == [1, 2, 0]          # c has no row: missing
    assert tags.multi and tags.codes.tolist() == [[0, 0], [1, 2], [0, 0]]
    assert year.codes[:, 0].tolist() == [1, 1, 0]
    only = read_feature_file(path, "item", ["tags"], None, 2)   # ids coincide with the keys: none match
    assert only.names() == ["item:tags"] and only.columns[0].codes.sum() == 0
    with pytest.raises(CbnsError, match=r"option item_feature_columns: column\(s\) nope not in"):
        read_feature_file(path, "item", ["nope"], None, 2)
    path.write_text("item,genre\na,x\na,y\n")
    with pytest.raises(CbnsError, match=r"items.csv:3: item 'a' appears twice"):
        read_feature_file(path, "item", [], None, 2)
    pq = tmp_path / "u.parquet"
    pd.DataFrame({"user": [0, 1], "langs": [["en", "fr"], ["en"]]}).to_parquet(pq)
    langs = read_feature_file(pq, "user", [], None, 2).columns[0]
    assert langs.multi and langs.codes.tolist() == [[1, 2], [1, 0]]


@pytest.mark.skipif(not (SHARED_DATA / "ml-100k" / "u.data").is_file(), reason="ml-100k not available")
def test_ml100k_loader_matches_the_grouplens_files():
    d = load_dataset(str(SHARED_DATA / "ml-100k"), split="loo")
    assert (d.num_users, d.num_items) == (943, 1682)
    assert len(d.train) + len(d.valid) + len(d.test) == 100_000 and len(d.test) == len(d.valid) == 943
    # user 1: 24 | M | technician | 85711 -> age band 18-24, zip region "8"
    names = d.user_features.names()
    row = {n: c.codes[0, 0] for n, c in zip(names, d.user_features.columns)}
    vocab = {n: c.vocab for n, c in zip(names, d.user_features.columns)}
    assert row["age_band"] == 2 and vocab["age_band"] == 8 and vocab["gender"] == 3 and vocab["occupation"] == 22
    genres = d.item_features.columns[0]
    # item 1, Toy Story: Animation, Children's, Comedy
    assert genres.multi and (genres.codes[0] > 0).sum() == 3
    # every user's test item is their latest rating in the GroupLens file (ties: the later line)
    raw = pd.read_csv(SHARED_DATA / "ml-100k" / "u.data", sep="\t", header=None, names=["u", "i", "r", "t"])
    latest = raw.sort_values(["u", "t"], kind="stable").groupby("u").tail(1)
    want = dict(zip(latest.u, latest.i))
    assert all(want[int(d.user_ids[u])] == int(d.item_ids[i]) for u, i in d.test)


@pytest.mark.skipif(not (SHARED_DATA / "amazon-seq" / "Beauty.txt").is_file(), reason="amazon-seq not available")
def test_beauty_matches_the_published_statistics():
    d = load_dataset(str(SHARED_DATA / "amazon-seq" / "Beauty.txt"), split="loo")
    assert (d.num_users, d.num_items) == (22363, 12101)
    assert len(d.train) + len(d.valid) + len(d.test) == 198502 and len(d.test) == 22363
    assert d.item_features.columns[0].multi
