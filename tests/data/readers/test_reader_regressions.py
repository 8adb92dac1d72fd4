"""Regressions from the loader audit: each input used to be silently misread or to crash with a
non-CbnsError; now it is rejected in one line naming the file, the line and the value."""
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cbns.data import load_dataset
from cbns.errors import CbnsError


def rows(n_users=3, n_items=4):
    return "".join(f"u{u},i{i}\n" for u in range(n_users) for i in range(n_items))


@pytest.mark.parametrize("content,message", [
    # pandas took the first column as an index when every row had one field more than the header
    ("user,item\n" + "".join(f"{u},{i},{i + 1}\n" for u in range(3) for i in range(4)),
     r"t.csv:2: expected 2 fields like the header, got 3: '0,0,1'"),
    ("user,item,User\n1,2,3\n", r"t.csv:1: column 'user' occurs 2 times among the columns"),
    ('user,item\n' + rows() + '"a\nb",i1\n', r"t.csv:14: control character '\\n' in user id 'a\\nb'"),
    ("user,item\n" + rows() + "u9,\n", r"t.csv:14: empty item id"),
    ("user,item,rating\nu1,i1,inf\n", r"t.csv:2: rating 'inf' is not a finite number"),
])
def test_bad_csv_rows_are_named(tmp_path, content, message):
    path = tmp_path / "t.csv"
    path.write_text(content)
    with pytest.raises(CbnsError, match=message):
        load_dataset(str(path))


def test_blank_lines_and_quoted_newlines_keep_line_numbers_right(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('user,item\n\n"u\n1",i1\n\n   \nu2,\n')
    # "u\n1" starts on line 3 and is rejected there; were it accepted, u2 would be on line 7
    with pytest.raises(CbnsError, match=r"t.csv:3: control character"):
        load_dataset(str(path))
    path.write_text('user,item\n\n"u1 ",i1\n\n   \nu2,\n')
    with pytest.raises(CbnsError, match=r"t.csv:6: empty item id"):
        load_dataset(str(path))


def test_non_utf8_table_names_the_line(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_bytes(b"user\titem\nu1\ti1\nu\xe9\ti2\n")
    with pytest.raises(CbnsError, match=r"t.tsv:3: not UTF-8 text \(byte 0xe9\)"):
        load_dataset(str(path))


@pytest.mark.parametrize("column,message", [
    (pa.array([1.5, 2.5, 1.5]), r"column user has type double; ids must be integers or strings"),
    (pa.array([[1], [2], [1]]), r"column user has type list<element: int64>"),
    (pa.array([1, None, 1]), r"p.parquet: row 2: empty user id \(null\)"),
    (pa.array([2**63 + 1, 1, 2], pa.uint64()), r"column user holds ids above 9223372036854775807"),
])
def test_bad_parquet_id_columns(tmp_path, column, message):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"user": column, "item": pa.array([1, 2, 3])}), path)
    with pytest.raises(CbnsError, match=message):
        load_dataset(str(path))


def test_parquet_and_csv_pair_with_different_id_types(tmp_path):
    (tmp_path / "train.csv").write_text("user,item\n1,2\n1,3\n")
    pq.write_table(pa.table({"user": pa.array([1]), "item": pa.array([4])}), tmp_path / "test.parquet")
    with pytest.raises(CbnsError, match=r"test.parquet: user ids are integers, but those of train.csv are strings"):
        load_dataset(str(tmp_path))
    pq.write_table(pa.table({"user": pa.array([1]), "item": pa.array([4])}), tmp_path / "train.parquet")
    with pytest.raises(CbnsError, match=r"both train.csv and train.parquet; keep one train table"):
        load_dataset(str(tmp_path))


@pytest.mark.parametrize("train,message", [
    ("0 1 99999999999999999999999\n", r"train.txt:1: id 99999999999999999999999 is too large"),
    ("0 1\n1 2\t\x0b3\n", r"train.txt:2: id '\\x0b3' is not an integer"),
    ("0 1\n1 2,3\n", r"train.txt:2: id '2,3' is not an integer"),
    ("0 1 2\n5000000 1\n", r"train.txt: user ids run up to 5000000 but only 2 distinct users occur"),
])
def test_bad_lightgcn_files(tmp_path, train, message):
    (tmp_path / "train.txt").write_text(train)
    (tmp_path / "test.txt").write_text("0 3\n")
    with pytest.raises(CbnsError, match=message):
        load_dataset(str(tmp_path))


def test_lightgcn_accepts_crlf_tabs_and_a_last_line_without_newline(tmp_path):
    (tmp_path / "train.txt").write_bytes(b"0\t1  2 \r\n\r\n 1 0\r\n2")
    (tmp_path / "test.txt").write_bytes(b"0 0")
    data = load_dataset(str(tmp_path))
    assert sorted(map(tuple, data.train.tolist())) == [(0, 1), (0, 2), (1, 0)]
    assert data.test.tolist() == [[0, 0]] and data.num_users == 2 and data.num_items == 3


def test_unreadable_file_is_a_cbns_error(tmp_path, monkeypatch):
    from cbns.data.readers import lightgcn

    def denied(path, mode="r"):
        raise PermissionError(13, "Permission denied", str(path))

    (tmp_path / "train.txt").write_text("0 1\n")
    (tmp_path / "test.txt").write_text("0 2\n")
    monkeypatch.setattr(lightgcn, "open", denied, raising=False)  # root would read a chmod 0 file
    with pytest.raises(CbnsError, match=r"train.txt: cannot read \(Permission denied\)"):
        load_dataset(str(tmp_path))
