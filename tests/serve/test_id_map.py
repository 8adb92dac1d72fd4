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
