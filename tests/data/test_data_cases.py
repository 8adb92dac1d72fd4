"""Data that used to crash, or load into something other than what the file says: each ends in one
line naming the file (and the count), or loads as documented. Every table is built here, small
enough to check by hand."""
import numpy as np
import pytest

from cbns.cli import main
from cbns.data import load_dataset
from cbns.data.readers.feature_files import read_feature_file
from cbns.errors import CbnsError


def write(path, text):
    path.write_text(text)
    return path


def one_error_line(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("cbns: error: ") and err.count("\n") == 1, err
    return err.strip()


def test_a_sequence_file_of_word_tokens_loads_with_its_words_as_ids(tmp_path):
    path = write(tmp_path / "seq.txt", "alice apple pear fig\nbob fig kiwi plum\n")
    data = load_dataset(str(path), split="loo")
    # ids sorted as text: users alice, bob; items apple, fig, kiwi, pear, plum
    assert list(data.user_ids) == ["alice", "bob"] and list(data.item_ids) == ["apple", "fig", "kiwi", "pear", "plum"]
    assert all(type(i) is str for i in data.item_ids)

    def named(pairs):
        return sorted((data.user_ids[u], data.item_ids[i]) for u, i in pairs)

    # leave-one-out by position: the last item is test, the one before it valid, the rest train
    assert named(data.test) == [("alice", "fig"), ("bob", "plum")]
    assert named(data.valid) == [("alice", "pear"), ("bob", "kiwi")]
    assert named(data.train) == [("alice", "apple"), ("bob", "fig")]


def test_a_sequence_file_of_mixed_tokens_keeps_them_as_text(tmp_path):
    path = write(tmp_path / "seq.txt", "7 10 9 b2\n8 9 10 a1\n")
    data = load_dataset(str(path), split="loo")
    # users and items are typed apart: the items hold words, so all are text (sorted as text); the users are integers
    assert list(data.item_ids) == ["10", "9", "a1", "b2"] and data.user_ids.tolist() == [7, 8]


def test_a_temporal_split_with_one_timestamp_is_refused_naming_the_file(capsys, tmp_path):
    rows = "".join(f"{u},{i},5\n" for u in range(6) for i in range(4))  # 24 events, all at time 5
    path = write(tmp_path / "t.csv", "user,item,timestamp\n" + rows)
    err = one_error_line(capsys, ["train", "--data", str(path), "--split", "temporal", "--epochs", "1",
                                  "--threads", "1", "--no-progress", "--out", str(tmp_path / "o")])
    assert err == (f"cbns: error: {path}: the temporal split leaves no training events: 24 of its 24 events share "
                   f"the earliest time 5, and events at a cut's time fall on the later side; use --split random")


def test_a_temporal_split_with_distinct_times_still_trains(tmp_path):
    rows = "".join(f"{u},{i},{u * 4 + i}\n" for u in range(6) for i in range(4))  # times 0..23
    data = load_dataset(str(write(tmp_path / "t.csv", "user,item,timestamp\n" + rows)), split="temporal",
                        valid_fraction=0.1)
    # test: times >= sorted[floor(24 * 0.8)] = 19 (5 events); valid: times >= sorted[floor(24 * 0.7)] = 16 (3)
    assert (len(data.train), len(data.valid), len(data.test)) == (16, 3, 5)


def test_a_features_file_matching_no_id_is_a_warning_with_the_count(capsys, tmp_path):
    data = write(tmp_path / "d.csv", "user,item\n" + "".join(f"{u},{i}\n" for u in range(5) for i in range(4)))
    features = write(tmp_path / "f.csv", "item,genre\nx0,a\nx1,b\nx2,a\n")
    code = main(["train", "--data", str(data), "--item-tower", "features", "--item-features", str(features),
                 "--epochs", "1", "--threads", "1", "--no-progress", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 0  # as documented: the rows of unknown keys are ignored, every item's attributes missing
    assert (f"cbns: warning: {features}: none of its 3 item keys is one of the dataset's item ids (0 of 4 items "
            f"matched; its keys look like 'x0', the dataset's items like '0'); every item's attributes are "
            f"missing\n") in err


def test_a_features_file_matching_some_ids_keeps_them_and_leaves_the_rest_missing(tmp_path):
    features = write(tmp_path / "f.csv", "item,genre\nb,red\nz,blue\n")
    table = read_feature_file(features, "item", [], np.array(["a", "b", "c"], dtype=object), 3)
    # one value seen among the dataset's ids ("red" -> code 1, "blue" is only on an unknown key)
    assert table.columns[0].codes[:, 0].tolist() == [0, 1, 0]


@pytest.mark.parametrize("header", ["item,genre,genre", "item,genre, genre"])
def test_a_repeated_feature_column_is_refused_naming_it(tmp_path, header):
    features = write(tmp_path / "f.csv", header + "\n0,a,b\n1,b,c\n")
    with pytest.raises(CbnsError) as caught:
        read_feature_file(features, "item", [], None, 2)
    assert caught.value.render() == (f"option item_features={features}: column 'genre' appears more than once in "
                                     f"the header; give each column its own name")


def test_a_train_test_overlap_is_named_by_the_ids_in_the_file(capsys, tmp_path):
    write(tmp_path / "train.csv", "user,item\nann,zebra\nann,yak\nbob,yak\nbob,xray\n")
    test = write(tmp_path / "test.csv", "user,item\nbob,xray\nann,xray\n")
    err = one_error_line(capsys, ["train", "--data", str(tmp_path), "--epochs", "1", "--threads", "1",
                                  "--no-progress", "--out", str(tmp_path / "o")])
    assert err == (f"cbns: error: {test}: 1 (user, item) pair(s) also in train.csv, e.g. (bob, xray); a test pair "
                   f"must not be a training pair")
