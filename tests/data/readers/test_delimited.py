"""The fast CSV/TSV reader against the exact one (Python's csv module, the definition of the
grammar): on every file the fast reader takes, both give the same table or the same error line.
The files are quote-free below the header (the only files the fast reader takes)."""
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from cbns.data import load_dataset
from cbns.data.read_options import ReadOptions
from cbns.data.readers import delimited
from cbns.errors import CbnsError

IDS = ["a", "b", "c", "10", "9", " d", "e ", "é", "𝔘", "NA", "", " ", "x\ty", "z\x85", "\x1fq", "\u2028"]
NUMBERS = ["1", "2.5", "-3", "1e3", " 7 ", "1_0", "", "nan", "x", "1e999"]


@st.composite
def quote_free_table(draw, sep):
    """A table with no quote below its header line, faults now and then."""
    names = draw(st.permutations(["user", "item", "rating", "timestamp", "extra"][:draw(st.integers(2, 5))]))
    names = [draw(st.sampled_from([n] * 6 + [n.upper(), f" {n}", f'"{n}"', f' "{n}"', f'"{n}" ', f'"{n}']))
             for n in names]
    lines = [sep.join(names)]  # the header may be quoted (pyarrow writes it so), even badly
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["row"] * 16 + ["blank", "spaces", "short", "long"]))
        if kind == "blank":
            lines.append("")
        elif kind == "spaces":
            lines.append(" " * draw(st.integers(1, 3)))
        else:
            cells = [draw(st.sampled_from(IDS if n.strip().lower() in ("user", "item", "extra") else NUMBERS))
                     for n in names]
            cells = cells[:-1] if kind == "short" else cells + ["9"] if kind == "long" else cells
            lines.append(sep.join(c.replace(sep, "") for c in cells))
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    text = ending.join(lines) + draw(st.sampled_from(["", ending]))
    return (b"\xef\xbb\xbf" if draw(st.booleans()) else b"") + text.encode("utf-8")


def outcome(read, *args):
    try:
        table = read(*args)
    except CbnsError as exc:
        return str(exc)
    if table is None:
        return None
    return (table.user.codes.tolist(), list(table.user.originals), table.item.codes.tolist(),
            list(table.item.originals), None if table.rating is None else table.rating.tolist(),
            None if table.timestamp is None else table.timestamp.tolist())


@fuzz_settings(200)
@given(data=st.data(), sep=st.sampled_from([",", "\t"]))
def test_the_fast_reader_agrees_with_the_exact_one(data, sep):
    raw = bytearray(data.draw(quote_free_table(sep)))
    path, options = Path("t.csv"), ReadOptions()
    assert delimited._fast_reader_applies(raw)
    fast = outcome(delimited._read_fast, path, raw, sep, options)
    exact = outcome(delimited._read_exact, path, raw, sep, options)
    if fast is not None:  # None: the fast reader handed the file on
        assert fast == exact


def test_fast_reader_error_lines_count_blank_lines_and_crlf(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"\r\n\r\nuser,item\r\n\r\na,b\r\n\r\n\r\nc,\r\n")
    with pytest.raises(CbnsError, match=r"t.csv:8: empty item id"):
        load_dataset(str(path))
    path.write_bytes(b"user,item,rating\nu1,i1,5\n\nu2,i2,five\n")
    with pytest.raises(CbnsError, match=r"t.csv:4: rating 'five' is not a finite number"):
        load_dataset(str(path))


def test_a_large_file_is_read_by_the_fast_reader_into_the_same_table(tmp_path, monkeypatch):
    rng = random.Random(0)
    lines = ["user,item,rating"] + [f"u{rng.randrange(300)},i{rng.randrange(500)},{rng.randrange(1, 6)}"
                                    for _ in range(20_000)]
    path = tmp_path / "big.csv"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(delimited, "CHUNK", 4096)  # many read steps and pyarrow blocks
    fast = load_dataset(str(path), read=ReadOptions(min_rating=3))
    monkeypatch.setattr(delimited, "_fast_reader_applies", lambda raw: False)
    exact = load_dataset(str(path), read=ReadOptions(min_rating=3))
    assert np.array_equal(fast.train, exact.train) and np.array_equal(fast.test, exact.test)
    assert list(fast.user_ids) == list(exact.user_ids) and fast.rows == exact.rows
    kept = sum(1 for line in lines[1:] if int(line.rsplit(",", 1)[1]) >= 3)
    assert fast.rows.read == 20_000 and fast.rows.below_rating == 20_000 - kept
