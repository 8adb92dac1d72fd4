"""Query ids are read by the loaders' rule: a LightGCN run's ``--user`` is accepted exactly when a
LightGCN file would accept it as an id, and means the same number; a table run's ``--user`` is the
stripped text, as the table reader keeps it."""
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from cbns.data.readers.lightgcn import read_lightgcn_file
from cbns.errors import CbnsError
from cbns.serve.id_map import IdMap

SIZE = 2**31  # every id the loaders accept is a row


def loader_reads(token: str):
    """The user id a LightGCN line ``<token> 0`` gives, or None when the file is refused. The
    token is one field: separators inside it would make it several, so those are refused here."""
    if any(c in token for c in " \t\n\r"):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.txt"
        path.write_bytes(token.encode("utf-8", errors="surrogatepass") + b" 0\n")
        try:
            return int(read_lightgcn_file(path)[0, 0])
        except CbnsError:
            return None


tokens = st.one_of(st.text(max_size=6), st.text("0123456789", min_size=1, max_size=12),
                   st.sampled_from(["+1", " 7 ", "٣", "1_0", "99999999999999999999999", "2147483647", "2147483648",
                                    "007", "-0", "7\n", "\uff17"]))


@fuzz_settings(300)
@given(token=tokens)
def test_integer_query_ids_follow_the_lightgcn_grammar(token):
    expected = loader_reads(token)
    ids = IdMap(SIZE)
    if expected is None:
        with pytest.raises(CbnsError, match=r"not an id of this run: its ids are the integers 0\.\.2147483647"):
            ids.to_rows([token], "--user")
    else:
        assert ids.to_rows([token], "--user").tolist() == [expected]


@pytest.mark.parametrize("value", [True, 1.0, -1, 2**31, 10**30, None, b"1"])
def test_non_ids_from_python_are_refused(value):
    with pytest.raises(CbnsError, match=r"not an id of this run"):
        IdMap(SIZE).to_rows([value])


def test_an_int_and_its_text_are_the_same_id():
    assert IdMap(10).to_rows([7, "7", np.int32(7), np.uint8(7)]).tolist() == [7, 7, 7, 7]


@fuzz_settings()
@given(query=st.text(max_size=5))
def test_text_query_ids_are_stripped_as_the_table_reader_strips(query):
    import pyarrow as pa

    from cbns.data.readers.id_columns import string_ids
    from cbns.data.readers.locator import Locator

    ids = IdMap(3, np.array(["\x01a", "\x01b", query.strip() or "z"]))  # the fillers can never be queried
    try:
        kept = string_ids(Locator("t.csv"), "user", pa.array([query])).originals[0]
    except CbnsError:
        with pytest.raises(CbnsError, match=r"not an id of this run: an id is text that is not empty"):
            ids.to_rows([query])
        return
    assert ids.to_rows([query]).tolist() == [2] and kept == query.strip()


def write_ids(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("".join(f"{x}\n" for x in lines), encoding="utf-8")
    return path


@pytest.mark.parametrize("one", ["12", 12, np.int64(12), np.array(12)])
def test_one_id_is_one_query_never_its_characters(tmp_path, one):
    ids = IdMap.from_file(write_ids(tmp_path, "user_ids.txt", ["1", "2", "12"]), 3)
    assert ids.to_rows(one).tolist() == [2]
    assert ids.to_rows([one, "1"]).tolist() == [2, 0]


def test_a_string_is_one_text_id(tmp_path):
    ids = IdMap.from_file(write_ids(tmp_path, "user_ids.txt", ["1", "2", "12", "a"]), 4)
    assert ids.to_rows("12").tolist() == [2] and ids.to_rows(("1", "2")).tolist() == [0, 1]
    with pytest.raises(CbnsError, match="user 'ab': not in this run"):
        ids.to_rows("ab", "user")  # not 'a' and then an unknown 'b'
    assert IdMap(20).to_rows("12").tolist() == [12]  # integer rows without a file


def test_ids_come_back_in_the_type_the_source_had(tmp_path):
    integers = IdMap.from_file(write_ids(tmp_path, "a.txt", ["-3", "0", "10", "9223372036854775807"]), 4)
    back = integers.to_ids(np.array([[3, 0], [-1, 2]]))
    assert back.tolist() == [[9223372036854775807, -3], [None, 10]]
    assert all(type(x) is int for x in back.ravel() if x is not None)
    for lines in (["7", "007"], ["1", "x"], ["-0", "5"], ["1", "9223372036854775808"], ["1.5", "2"]):
        text = IdMap.from_file(write_ids(tmp_path, "b.txt", lines), 2).to_ids(np.array([0, 1]))
        assert text.tolist() == lines and all(type(x) is str for x in text)
    assert [type(x) for x in IdMap(5).to_ids(np.array([4, 0]))] == [int, int]


def test_recommend_one_string_id_gives_one_list_in_the_source_type(tmp_path):
    from cbns.serve.recommender import Recommender

    users = np.eye(3, 4, dtype=np.float32)
    items = np.eye(4, dtype=np.float32)[[3, 2, 1, 0]]
    for lines, want in ((["1", "2", "12"], 12), (["1", "2", "12x"], "12x")):
        user_map = IdMap.from_file(write_ids(tmp_path, "user_ids.txt", lines), 3)
        item_map = IdMap.from_file(write_ids(tmp_path, "item_ids.txt", ["40", "30", "20", "10"]), 4)
        rec = Recommender(users, items, user_map, item_map)
        ranked = rec.recommend(lines[2], k=1, exclude_seen=False)
        # user row 2 is e_2; item row 1 is e_2: id "30", an int since every item id is one
        assert ranked.queries.tolist() == [want] and ranked.ids.tolist() == [[30]]
        assert type(ranked.queries[0]) is type(want) and type(ranked.ids[0, 0]) is int
        similar = rec.similar_items(30, k=1)
        assert similar.queries.tolist() == [30] and similar.rows.shape == (1, 1)
