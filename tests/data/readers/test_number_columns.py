"""Numbers in text tables are what Python's float reads: pyarrow's one-pass conversion of plain
decimals agrees with float() (the reference) digit for digit."""
import re

import numpy as np
import pyarrow as pa
import pytest
from conftest import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from cbns.data.readers.locator import Locator
from cbns.data.readers.number_columns import text_numbers
from cbns.errors import CbnsError

digits = st.text("0123456789", min_size=1, max_size=25)
plain = st.builds(lambda sign, whole, frac, exp: sign + whole + (f".{frac}" if frac else "") + exp,
                  st.sampled_from(["", "-"]), digits, st.one_of(st.just(""), digits),
                  st.one_of(st.just(""), st.builds(lambda e, s, d: e + s + d, st.sampled_from("eE"),
                                                   st.sampled_from(["", "+", "-"]), st.text("0123456789", min_size=1,
                                                                                            max_size=3))))


@fuzz_settings(300)
@given(st.lists(plain, min_size=1, max_size=20))
def test_plain_decimals_read_as_python_reads_them(values):
    expected = [float(v) for v in values]
    if not all(np.isfinite(expected)):
        row = next(r for r, x in enumerate(expected) if not np.isfinite(x))
        message = f"t.csv: row {row + 1}: rating '{values[row]}' is not a finite number"
        with pytest.raises(CbnsError, match=re.escape(message)):
            text_numbers(Locator("t.csv"), "rating", pa.array(values))
        return
    assert text_numbers(Locator("t.csv"), "rating", pa.array(values)).tolist() == expected


@pytest.mark.parametrize("values,expected", [([" 7 ", "+1", "1_0", ".5", "4."], [7.0, 1.0, 10.0, 0.5, 4.0]),
                                             (["3", "1e3", "-2.5"], [3.0, 1000.0, -2.5])])
def test_other_spellings_python_accepts(values, expected):
    assert text_numbers(Locator("t.csv"), "rating", pa.array(values)).tolist() == expected


@pytest.mark.parametrize("bad", ["", "nan", "inf", "0x10", "five", "1e999"])
def test_non_numbers_name_the_row(bad):
    with pytest.raises(CbnsError, match=rf"^t.csv: row 2: timestamp '{bad}' is not a finite number$"):
        text_numbers(Locator("t.csv"), "timestamp", pa.array(["1", bad, "2"]))
