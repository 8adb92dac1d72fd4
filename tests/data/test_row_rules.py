"""What becomes an interaction: --min-rating, duplicate rows, the column-name options, and the
options a source without ratings or named columns refuses. Expected rows are counted here."""
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SHARED_DATA

from cbns.config import TrainConfig
from cbns.data import load_data, load_dataset
from cbns.data.read_options import ReadOptions
from cbns.errors import CbnsError


def ratings_frame(seed=0, users=30, items=40, per_user=12):
    """Distinct (user, item) rows with ratings 1..5, string ids."""
    rng = np.random.default_rng(seed)
    rows = [(f"u{u}", f"i{i}", int(rng.integers(1, 6)), 1000 + k)
            for u in range(users) for k, i in enumerate(rng.choice(items, per_user, replace=False))]
    return pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])


def write(frame, path):
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, sep="," if path.suffix == ".csv" else "\t", index=False)
    return path


def back(data, part):
    return {(data.user_ids[u], data.item_ids[i]) for u, i in getattr(data, part).tolist()}


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_min_rating_keeps_exactly_the_rows_rated_at_least_r(tmp_path, suffix):
    frame = ratings_frame()
    path = write(frame, tmp_path / f"r{suffix}")
    data = load_dataset(str(path), read=ReadOptions(min_rating=4))
    kept = {(u, i) for u, i, r in zip(frame.user, frame.item, frame.rating) if r >= 4}   # counted here
    assert back(data, "train") | back(data, "test") == kept and not back(data, "train") & back(data, "test")
    assert data.rows.read == len(frame) and data.rows.below_rating == int((frame.rating < 4).sum())
    assert data.rows.kept == len(kept) and data.rows.duplicates == 0
    # users and items without a kept row are gone from the id maps
    assert list(data.user_ids) == sorted({u for u, _ in kept}) and list(data.item_ids) == sorted({i for _, i in kept})
    assert f"{len(frame):,} rows read: {len(kept):,} kept, {int((frame.rating < 4).sum()):,} rated below 4 dropped" \
        in data.summary()


def test_without_min_rating_every_row_is_a_positive_and_the_summary_says_so(tmp_path):
    frame = ratings_frame()
    data = load_dataset(str(write(frame, tmp_path / "r.csv")))
    assert len(data.train) + len(data.test) == len(frame)
    assert "ratings 1 to 5 and no min_rating: every row is a positive" in data.summary()


def test_min_rating_with_a_time_split_and_fractional_threshold(tmp_path):
    frame = ratings_frame(seed=1)
    frame["rating"] = frame["rating"] - 0.5   # 0.5 .. 4.5
    path = write(frame, tmp_path / "r.parquet")
    data = load_dataset(str(path), split="loo", read=ReadOptions(min_rating=3.5))
    kept = frame[frame.rating >= 3.5]
    parts = back(data, "train") | back(data, "valid") | back(data, "test")
    assert parts == set(zip(kept.user, kept.item))
    # leave-one-out among the kept rows: every user's test item is their latest kept one
    latest = kept.sort_values(["user", "timestamp"]).groupby("user").tail(1)
    assert back(data, "test") == {(u, i) for u, i, n in zip(latest.user, latest.item, kept.groupby("user").size()[latest.user])
                                  if n >= 2}


def test_duplicate_rows_count_once_the_first_kept(tmp_path):
    # u1 rated i1 twice (2 then 5): with --min-rating 4 only the 5 row survives, and it is no duplicate
    rows = [("u1", "i1", 2, 1), ("u1", "i2", 5, 2), ("u1", "i1", 5, 3), ("u1", "i3", 4, 4), ("u1", "i2", 4, 5),
            ("u2", "i1", 5, 1), ("u2", "i2", 5, 2), ("u2", "i3", 5, 3), ("u2", "i3", 5, 4)]
    path = write(pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"]), tmp_path / "d.csv")
    plain = load_dataset(str(path))
    assert plain.rows.duplicates == 3 and plain.rows.kept == 6 and len(plain.train) + len(plain.test) == 6
    rated = load_dataset(str(path), read=ReadOptions(min_rating=4))
    assert rated.rows.below_rating == 1 and rated.rows.duplicates == 2 and rated.rows.kept == 6
    loo = load_dataset(str(path), split="loo")
    # u1's events by time: i1 (t1), i2, i1 again (a duplicate, dropped), i3, i2 again: last new item i3
    assert ("u1", "i3") in back(loo, "test") and loo.rows.duplicates == 3


def test_renamed_columns_load_with_the_mapping_options(tmp_path):
    frame = ratings_frame().rename(columns={"user": "Customer", "item": " product ", "rating": "stars",
                                            "timestamp": "when"})
    path = write(frame, tmp_path / "renamed.csv")
    with pytest.raises(CbnsError, match=r"renamed.csv:1: missing column\(s\) user, item; found 'customer', "
                                        r"'product', 'stars', 'when'; say which column holds them with "
                                        r"user_column / item_column"):
        load_dataset(str(path))
    read = ReadOptions(user_column="customer", item_column="PRODUCT", rating_column="stars", time_column="when",
                       min_rating=3)
    data = load_dataset(str(path), split="temporal", read=read)
    kept = frame[frame.stars >= 3]
    assert back(data, "train") | back(data, "valid") | back(data, "test") == set(zip(kept.Customer, kept[" product "]))
    assert data.test_time.min() >= data.train_time.max()
    # the same through the config options and YAML-style values
    config = TrainConfig(data=str(path), user_column="customer", item_column="product", rating_column="stars",
                         time_column="when", min_rating=3, split="temporal")
    assert np.array_equal(load_data(config).test, data.test)


@pytest.mark.parametrize("read,message", [
    (ReadOptions(rating_column="score"), r"r.csv:1: no column 'score' \(rating_column\); found 'user', 'item'"),
    (ReadOptions(time_column="ts"), r"r.csv:1: no column 'ts' \(time_column\)"),
    (ReadOptions(min_rating=4), r"option min_rating=4: .*r.csv has no 'rating' column; name the column of ratings with "
                                r"rating_column"),
])
def test_column_options_naming_what_is_not_there(tmp_path, read, message):
    path = tmp_path / "r.csv"
    path.write_text("user,item\na,b\na,c\nb,c\n")
    with pytest.raises(CbnsError, match=message):
        load_dataset(str(path), read=read)


def test_inconsistent_column_options_are_refused():
    with pytest.raises(CbnsError, match="option item_column=user: the same column as user_column"):
        ReadOptions(item_column=" USER ")
    with pytest.raises(CbnsError, match="option rating_column=item: that column holds the items"):
        ReadOptions(rating_column="item")
    with pytest.raises(CbnsError, match="option time_column=rating: the same column as rating_column"):
        ReadOptions(time_column="rating")
    assert ReadOptions(user_column="timestamp", time_column="ts").role_of("timestamp") == "user"


def test_a_threshold_above_every_rating_is_an_error_not_an_empty_dataset(tmp_path):
    path = write(ratings_frame(), tmp_path / "r.csv")
    with pytest.raises(CbnsError, match=r"option min_rating=6: no row of .*r.csv is rated that high \(its ratings run "
                                        r"from 1 to 5\)"):
        load_dataset(str(path), read=ReadOptions(min_rating=6))


def test_sources_without_ratings_or_columns_refuse_the_options(tmp_path, gowalla_slice):
    with pytest.raises(CbnsError, match=r"option min_rating=4: the bundled gowalla .* has no ratings; drop the option"):
        load_dataset("gowalla", read=ReadOptions(min_rating=4))
    with pytest.raises(CbnsError, match=r"option user_column=u: .*\(LightGCN text\) has no named columns"):
        load_dataset(str(gowalla_slice), read=ReadOptions(user_column="u"))
    (tmp_path / "s.txt").write_text("1 1 2 3\n")
    with pytest.raises(CbnsError, match=r"option min_rating=2: .*s.txt \(a sequence file\) has no ratings"):
        load_dataset(str(tmp_path / "s.txt"), split="loo", read=ReadOptions(min_rating=2))


def test_min_rating_in_yaml_and_flags_is_off_or_a_number(tmp_path):
    from cbns.config import build_config, load_yaml

    cfg = tmp_path / "c.yaml"
    for text, value in (("min_rating: 4\n", "4"), ("min_rating: 3.5\n", "3.5"), ("min_rating: off\n", "off")):
        cfg.write_text(text)
        assert build_config(load_yaml(cfg), {}).data.min_rating == value
    cfg.write_text("min_rating: high\n")
    with pytest.raises(CbnsError, match=r"c.yaml:1: option min_rating must be off or a number, got 'high'"):
        build_config(load_yaml(cfg), {})
    with pytest.raises(CbnsError, match=r"option min_rating: must be off or a number, got 'inf'"):
        TrainConfig(min_rating="inf").validate()


@pytest.mark.skipif(not (SHARED_DATA / "ml-100k" / "u.data").is_file(), reason="ml-100k not available")
def test_ml100k_min_rating_counts_match_the_grouplens_file():
    raw = pd.read_csv(SHARED_DATA / "ml-100k" / "u.data", sep="\t", header=None, names=["u", "i", "r", "t"])
    data = load_dataset(str(SHARED_DATA / "ml-100k"), split="loo", read=ReadOptions(min_rating=4))
    assert data.rows.below_rating == int((raw.r < 4).sum()) and data.rows.kept == int((raw.r >= 4).sum())
    assert len(data.train) + len(data.valid) + len(data.test) == int((raw.r >= 4).sum())
    assert data.num_users == raw[raw.r >= 4].u.nunique() and data.num_items == raw[raw.r >= 4].i.nunique()
    with pytest.raises(CbnsError, match=r"option item_column=movie: .*\(MovieLens-100k\) has no named columns"):
        load_dataset(str(SHARED_DATA / "ml-100k"), read=ReadOptions(item_column="movie"))


def test_a_parquet_table_with_renamed_integer_columns(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"uid": pa.array([3, 3, 3, 3, 1, 1, 1, 1], pa.int32()),
                             "iid": pa.array([7, 8, 9, 10, 7, 8, 9, 10]),
                             "score": pa.array([1.0, 5.0, 4.0, 5.0, 4.5, 2.0, 5.0, 4.0])}), path)
    data = load_dataset(str(path), read=ReadOptions(user_column="uid", item_column="iid", rating_column="score",
                                                    min_rating=4))
    assert back(data, "train") | back(data, "test") == {(3, 8), (3, 9), (3, 10), (1, 7), (1, 9), (1, 10)}
    assert list(data.user_ids) == [1, 3] and data.rows.below_rating == 2
