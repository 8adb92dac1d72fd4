"""String ids checked per distinct value: the result is Python's str.strip and sorted() applied to
every row, computed here row by row."""
import sys

import numpy as np
import pyarrow as pa
import pytest
from conftest import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from cbns.data.id_text import CONTROL
from cbns.data.readers.id_columns import WHITESPACE, IdColumn, string_ids
from cbns.data.readers.locator import Locator
from cbns.errors import CbnsError


def test_the_whitespace_class_is_exactly_what_str_strip_removes():
    assert set(WHITESPACE) == {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}


PIECES = ["a", "b", "é", "𝔘", "10", "9", " ", "\t", "\x85", "\u3000", "\u2028", "\x1f", "\x00", "\n", "\xa0", "z"]


@fuzz_settings()
@given(st.lists(st.lists(st.sampled_from(PIECES), max_size=4).map("".join), min_size=1, max_size=30))
def test_string_ids_equal_a_row_by_row_reference(values):
    stripped = [v.strip() for v in values]
    bad = [r for r, v in enumerate(stripped) if v == "" or CONTROL.search(v)]
    if bad:
        with pytest.raises(CbnsError, match=rf"^t.csv: row {bad[0] + 1}: "):
            string_ids(Locator("t.csv"), "user", pa.array(values))
        return
    column = string_ids(Locator("t.csv"), "user", pa.array(values))
    assert list(column.originals) == sorted(set(stripped))
    assert [column.originals[c] for c in column.codes] == stripped


def test_take_drops_ids_that_no_longer_occur():
    column = IdColumn(np.array([0, 2, 1, 2]), np.array(["a", "b", "c"], dtype=object))
    kept = column.take(np.array([True, True, False, True]))
    assert list(kept.originals) == ["a", "c"] and kept.codes.tolist() == [0, 1, 1]
