"""Property-based fuzzing of every dataset loader against an independent reading of the input.

Each example generates a dataset (mostly well-formed, with injected faults), decides from what it
generated, through an oracle written here from the documented grammar and not from the loader's
code, whether the input is valid and what it holds; then the loader must raise :class:`CbnsError`
(one line) for invalid input, and for valid input return exactly that content. Any other
exception fails the test.

CI runs a bounded number of examples; a long run is ``CBNS_FUZZ_EXAMPLES=20000 pytest
tests/test_fuzz_loaders.py tests/test_fuzz_config.py`` (see docs/resume.md).
"""
import csv
import io
import math
import re
import tempfile
import unicodedata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from conftest import fuzz_settings
from hypothesis import event, given
from hypothesis import strategies as st

from cbns.data import load_dataset
from cbns.errors import CbnsError

MAX_ID = 2**31 - 1


class Invalid(Exception):
    """The oracle's verdict: the loader must reject this input."""

    def __init__(self, reason):
        super().__init__(reason)
        event(f"invalid: {reason}")


def load_or_error(spec):
    """``(data, None)`` or ``(None, message)``; any exception but CbnsError propagates."""
    try:
        return load_dataset(str(spec), seed=0), None
    except CbnsError as exc:
        message = str(exc)
        assert "\n" not in message and message.strip(), f"not a one-line error: {message!r}"
        return None, message


def check(expected, loaded, message):
    if expected is None:
        assert loaded is None, "an invalid input was accepted"
        event("rejected")
    else:
        assert loaded is not None, f"a valid input was rejected: {message}"
        event("accepted")


# --------------------------------------------------------------------------------------------
# LightGCN text
# --------------------------------------------------------------------------------------------

GOOD_SEPS = [b" ", b"\t", b"  ", b" \t "]
BAD_SEPS = [b"\x0b", b"\x0c", b"\r", b",", b"\xc2\xa0", b";", b"\x00"]
BAD_TOKENS = [b"-3", b"1.5", b"x", b"1e3", b"\xd9\xa3", b"+4", b"0x1f", b"1_0", b"\xff", b"3a", b"\x1c"]
BIG_TOKENS = [b"2147483647", b"2147483648", b"99999999999999999999999", b"5000000", b"00000000000000000000007"]


@st.composite
def lightgcn_lines(draw, users, items, item_pool=None):
    """Lines ``user item ...`` for some of ``users``, with at most one kind of fault in the file
    (or faults everywhere, in "wild" files)."""
    fault = draw(st.sampled_from(["none"] * 12 + ["bad-token", "big-token", "bad-sep", "raw", "blank", "wild"]))
    lines = []
    for user in draw(st.lists(st.sampled_from(users), min_size=1, max_size=8)):
        kind = draw(st.sampled_from(["good", "good", "bad-token", "big-token", "bad-sep", "raw", "blank"])) \
            if fault == "wild" else "good"
        if kind == "raw":
            lines.append(draw(st.binary(max_size=16)))
            continue
        pool = item_pool(user) if item_pool else items
        tokens = [] if kind == "blank" else [str(user).encode()] + [
            str(i).encode() for i in draw(st.lists(st.sampled_from(pool), min_size=1, max_size=5))] if pool else [
            str(user).encode()]
        seps = [draw(st.sampled_from(GOOD_SEPS)) for _ in range(max(len(tokens) - 1, 0))]
        if kind in ("bad-token", "big-token") and tokens:
            at = draw(st.integers(0, len(tokens) - 1))
            tokens[at] = draw(st.sampled_from(BAD_TOKENS if kind == "bad-token" else BIG_TOKENS))
        if kind == "bad-sep" and seps:
            seps[draw(st.integers(0, len(seps) - 1))] = draw(st.sampled_from(BAD_SEPS))
        body = tokens[0] + b"".join(s + t for s, t in zip(seps, tokens[1:])) if tokens else b""
        pad = st.sampled_from([b"", b" ", b"\t", b"  "])
        lines.append(draw(pad) + body + draw(pad))
    if fault not in ("none", "wild"):  # damage one line (or add one)
        at = draw(st.integers(0, len(lines)))
        lines.insert(at, draw(lightgcn_fault_line(fault)))
    endings = [draw(st.sampled_from([b"\n", b"\r\n"])) for _ in lines]
    if lines and draw(st.booleans()):
        endings[-1] = b""
    return b"".join(line + end for line, end in zip(lines, endings))


@st.composite
def lightgcn_fault_line(draw, fault):
    """One extra line carrying ``fault``."""
    if fault == "raw":
        return draw(st.binary(max_size=16))
    if fault == "blank":
        return draw(st.sampled_from([b"", b" ", b"\t \t"]))
    tokens = [b"0", b"1", b"2"]
    if fault == "bad-sep":
        return tokens[0] + draw(st.sampled_from(BAD_SEPS)) + tokens[1]
    tokens[draw(st.integers(0, 2))] = draw(st.sampled_from(BAD_TOKENS if fault == "bad-token" else BIG_TOKENS))
    return b" ".join(tokens)


@st.composite
def lightgcn_dataset(draw):
    """(train.txt, test.txt) bytes. Test lines take items outside the user's train items half the
    time, so that valid datasets are common."""
    users, items = list(range(draw(st.integers(1, 8)))), list(range(draw(st.integers(1, 12))))
    train = draw(lightgcn_lines(users, items))
    if draw(st.booleans()):
        test = draw(lightgcn_lines(users, items))
    else:
        seen = oracle_lightgcn_pairs_or_none(train) or []
        test = draw(lightgcn_lines(users, items, item_pool=lambda u: [i for i in items if (u, i) not in seen]))
    return train, test


def oracle_lightgcn_pairs_or_none(content: bytes):
    try:
        return set(oracle_lightgcn_file(content))
    except Invalid:
        return None


def oracle_lightgcn_file(content: bytes) -> list[tuple[int, int]]:
    """The documented grammar, read without regular expressions for tokens."""
    lines = content.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    pairs = []
    for line in lines:
        if line.endswith(b"\r"):
            line = line[:-1]
        fields = [f for f in re.split(rb"[ \t]", line) if f != b""]
        if not fields:
            continue
        if not all(all(0x30 <= c <= 0x39 for c in f) for f in fields):
            raise Invalid("token")
        ids = [int(f) for f in fields]
        if max(ids) > MAX_ID:
            raise Invalid("too large")
        pairs += [(ids[0], i) for i in ids[1:]]
    if not pairs:
        raise Invalid("no pairs")
    return pairs


def oracle_lightgcn(train: bytes, test: bytes):
    """``(train set, test set, num_users, num_items)`` or ``None`` for invalid."""
    try:
        tr, te = set(oracle_lightgcn_file(train)), set(oracle_lightgcn_file(test))
    except Invalid:
        return None
    num_users = max(u for u, _ in tr) + 1
    num_items = max(i for _, i in tr) + 1
    if any(u >= num_users or i >= num_items for u, i in te) or tr & te:
        return None
    for size, distinct in ((num_users, {u for u, _ in tr}), (num_items, {i for _, i in tr})):
        if size > 100_000 and size > 10 * len(distinct):
            return None
    return tr, te, num_users, num_items


@fuzz_settings()
@given(files=lightgcn_dataset())
def test_fuzz_lightgcn_directory(files):
    train, test = files
    expected = oracle_lightgcn(train, test)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "train.txt").write_bytes(train)
        (Path(tmp) / "test.txt").write_bytes(test)
        data, message = load_or_error(tmp)
    check(expected, data, message)
    if expected is not None:
        tr, te, num_users, num_items = expected
        assert (data.num_users, data.num_items) == (num_users, num_items)
        assert data.train.dtype == np.int64 and data.test.dtype == np.int64
        assert sorted(map(tuple, data.train.tolist())) == sorted(tr)  # deduplicated
        assert sorted(map(tuple, data.test.tolist())) == sorted(te)
        assert data.user_ids is None and data.item_ids is None


# --------------------------------------------------------------------------------------------
# CSV / TSV / Parquet tables
# --------------------------------------------------------------------------------------------

GOOD_IDS = ["a", "b", "c", "1", "01", "10", " d", "e ", "é", "x,y", 'q"r', "𝔘", "#", "NA", "nan", "None"]
BAD_IDS = ["", " ", "tab\tin", "line\nbreak", "nul\x00", "\u2028", "\x1fz", "z\x85", "\x7f"]
GOOD_NUMBERS = ["1", "2.5", "-3", "1e3", " 7 ", "1_0"]
BAD_NUMBERS = ["inf", "nan", "x", "", "0x10", "1e999", "-inf"]
COLUMNS = ["user", "item", "timestamp", "rating", "extra"]
#: One fault is injected into a table in most examples that have one (or none, or all at once).
FAULTS = ["none"] * 8 + ["bad-id", "bad-number", "field-count", "wild"]


@st.composite
def header(draw):
    names = draw(st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=5))
    if draw(st.sampled_from([True] * 5 + [False])):  # usually a proper header with both id columns
        names = list(dict.fromkeys(["user", "item"] + names))
        names = draw(st.permutations(names))
    return [draw(st.sampled_from([n, n.upper(), f" {n} ", n.title()])) for n in names]


@st.composite
def table_rows(draw, names, pairs=None):
    """Rows of string cells for the columns ``names``, with at most one kind of fault; (user,
    item) taken from ``pairs`` when given (a test table's pairs that are not training pairs)."""
    fault = draw(st.sampled_from(FAULTS))
    wild = fault == "wild"
    chosen = draw(st.lists(st.sampled_from(pairs), min_size=1, max_size=12)) if pairs else None
    n = len(chosen) if chosen else draw(st.integers(0 if wild else 1, 12))
    columns = []
    for name in names:
        key = name.strip().lower()
        if key in ("user", "item") and chosen:
            columns.append([p[0 if key == "user" else 1] for p in chosen])
            continue
        if key in ("user", "item"):
            pool = GOOD_IDS[:3] if key == "user" else GOOD_IDS[:6]
            pool = pool + BAD_IDS if wild else pool
        elif key in ("timestamp", "rating"):
            pool = GOOD_NUMBERS + BAD_NUMBERS if wild else GOOD_NUMBERS
        else:
            pool = ["", "x", "é", "a,b", '"', "\n"]
        columns.append(draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n)))
    rows = [list(cells) for cells in zip(*columns)] if names else []
    if rows and fault in ("bad-id", "bad-number", "field-count"):
        row = rows[draw(st.integers(0, len(rows) - 1))]
        keys = [n.strip().lower() for n in names]
        targets = [k for k, key in enumerate(keys) if key in (("user", "item") if fault == "bad-id" else
                                                               ("timestamp", "rating"))]
        if fault == "field-count":
            row.append("9") if draw(st.booleans()) else row.pop()
        elif targets:
            row[draw(st.sampled_from(targets))] = draw(st.sampled_from(BAD_IDS if fault == "bad-id" else BAD_NUMBERS))
    return rows


def serialize(names, rows, sep, draw) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=sep, lineterminator=draw(st.sampled_from(["\n", "\r\n"])),
                        quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])))
    writer.writerow(names)
    for row in rows:
        writer.writerow(row)
        if draw(st.integers(0, 10)) == 0:
            out.write("\n")  # a blank line
    text = out.getvalue()
    encoding = draw(st.sampled_from(["utf-8"] * 8 + ["utf-8-sig", "latin-1"]))
    try:
        return text.encode(encoding)
    except UnicodeEncodeError:
        return text.encode("utf-8")


def is_control(text: str) -> bool:
    return any(unicodedata.category(c) == "Cc" or c in "\u2028\u2029" for c in text)


def oracle_table_text(content: bytes, sep: str):
    """``[(user, item)]`` of a CSV/TSV file by the documented grammar, or raise Invalid."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid("encoding") from None
    text = text.removeprefix("\ufeff")
    try:
        records = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True,
                                         skipinitialspace=True) if r and r != [""]]
    except csv.Error:
        raise Invalid("quoting") from None
    if not records:
        raise Invalid("empty")
    return oracle_rows(records[0], records[1:])


def oracle_rows(names, rows):
    names = [n.strip().lower() for n in names]
    if len(set(names)) != len(names) or "user" not in names or "item" not in names or not rows:
        raise Invalid("header")
    pairs = []
    for row in rows:
        if len(row) != len(names):
            raise Invalid("field count")
        cells = dict(zip(names, row))
        for key in ("user", "item"):
            if isinstance(cells[key], str):
                cells[key] = cells[key].strip()
                if cells[key] == "" or is_control(cells[key]):
                    raise Invalid("id")
        for key in ("timestamp", "rating"):
            if key in cells:
                try:
                    ok = math.isfinite(float(cells[key]))
                except (TypeError, ValueError, OverflowError):
                    ok = False
                if not ok:
                    raise Invalid("number")
        pairs.append((cells["user"], cells["item"]))
    return pairs


def check_single_table(data, pairs):
    """Train and test partition the distinct pairs; each user with >= 2 items keeps one in train."""
    back = lambda part: {(data.user_ids[u], data.item_ids[i]) for u, i in part.tolist()}  # noqa: E731
    train, test = back(data.train), back(data.test)
    assert len(train) == len(data.train) and len(test) == len(data.test)  # no duplicates
    assert train | test == set(pairs) and not train & test
    assert {u for u, _ in test} <= {u for u, _ in train}
    assert list(data.user_ids) == sorted({u for u, _ in pairs}) and list(data.item_ids) == sorted({i for _, i in pairs})


def expect_single(pairs):
    counts = {}
    for u, i in set(pairs):
        counts[u] = counts.get(u, 0) + 1
    if not any(c >= 3 for c in counts.values()):
        raise Invalid("no test pairs")  # round(0.2 * n) is 0 for n <= 2 (0.4 rounds down)
    return pairs


@fuzz_settings()
@given(data=st.data(), sep=st.sampled_from([",", "\t"]))
def test_fuzz_single_csv_tsv_table(data, sep):
    names = data.draw(header())
    rows = data.draw(table_rows(names))
    content = serialize(names, rows, sep, data.draw)
    if data.draw(st.integers(0, 12)) == 0:  # byte-level damage
        at = data.draw(st.integers(0, len(content)))
        content = content[:at] + data.draw(st.binary(min_size=1, max_size=3)) + content[at:]
    try:
        expected = expect_single(oracle_table_text(content, sep))
    except Invalid:
        expected = None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("log.csv" if sep == "," else "log.tsv")
        path.write_bytes(content)
        loaded, message = load_or_error(path)
    check(expected, loaded, message)
    if expected is not None:
        check_single_table(loaded, expected)


@st.composite
def parquet_column(draw, name, n, wild):
    """A pyarrow array for column ``name`` of ``n`` rows; of a valid type unless ``wild``."""
    key = name.strip().lower()
    if key in ("user", "item"):
        kind = draw(st.sampled_from(["int", "str", "dict"] + (["float", "bool", "binary", "list", "uint-big", "null",
                                                                 "null-entry", "bad-str"] if wild else [])))
        ints = draw(st.lists(st.integers(0, 2 if key == "user" else 5), min_size=n, max_size=n))
        pool = GOOD_IDS[:3 if key == "user" else 6] + (BAD_IDS if kind == "bad-str" else [])
        strs = draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n))
        if kind == "null-entry":
            if n:
                at = draw(st.integers(0, n - 1))
                ints[at] = strs[at] = None
            kind = draw(st.sampled_from(["int", "str"]))
        return {"int": lambda: pa.array(ints, pa.int64()), "str": lambda: pa.array(strs, pa.string()),
                "bad-str": lambda: pa.array(strs, pa.string()),
                "dict": lambda: pa.array(strs, pa.string()).dictionary_encode(),
                "float": lambda: pa.array([v + 0.5 for v in ints], pa.float64()),
                "bool": lambda: pa.array([v > 0 for v in ints], pa.bool_()),
                "binary": lambda: pa.array([v.encode() for v in strs], pa.binary()),
                "list": lambda: pa.array([[v] for v in ints], pa.list_(pa.int64())),
                "uint-big": lambda: pa.array([2**63 + v for v in ints], pa.uint64()),
                "null": lambda: pa.nulls(n)}[kind]()
    if key in ("timestamp", "rating"):
        kind = draw(st.sampled_from(["float", "int", "timestamp"] + (["str"] if wild else [])))
        pool = [1.0, 2.5, -3.0] + ([math.inf, math.nan, None] if wild else [])
        floats = draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n))
        as_int = [None if v is None or not math.isfinite(v) else int(v) for v in floats]
        return {"float": lambda: pa.array(floats, pa.float64()), "int": lambda: pa.array(as_int, pa.int64()),
                "str": lambda: pa.array(["1"] * n, pa.string()),
                "timestamp": lambda: pa.array(as_int, pa.timestamp("s"))}[kind]()
    return pa.array(draw(st.lists(st.text(max_size=3), min_size=n, max_size=n)), pa.string())


def oracle_parquet(table: pa.Table):
    """``[(user, item)]`` by the documented Parquet rules, or raise Invalid."""
    names = [n.strip().lower() for n in table.schema.names]
    if len(set(names)) != len(names) or "user" not in names or "item" not in names or table.num_rows == 0:
        raise Invalid("header")
    columns = {}
    for name, column in zip(names, table.columns):
        kind = column.type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        values = column.to_pylist()
        if name in ("user", "item"):
            if not (pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)):
                raise Invalid("id type")
            if any(v is None for v in values) or (pa.types.is_integer(kind) and any(v > 2**63 - 1 for v in values)):
                raise Invalid("null or too large")
        elif name in ("timestamp", "rating"):
            if pa.types.is_timestamp(kind) and name == "timestamp":
                if any(v is None for v in values):
                    raise Invalid("null time")
                continue
            if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
                raise Invalid("number type")
        columns[name] = values
    rows = [[columns[n][r] for n in names if n in columns] for r in range(table.num_rows)]
    return oracle_rows([n for n in names if n in columns], rows)


@st.composite
def parquet_table(draw, pairs=None):
    """A table of random columns; (user, item) taken from ``pairs`` when given."""
    names = draw(header())
    wild = draw(st.sampled_from([False] * 3 + [True]))
    chosen = draw(st.lists(st.sampled_from(pairs), min_size=1, max_size=12)) if pairs else None
    n = len(chosen) if chosen else draw(st.integers(0 if wild else 1, 12))
    arrays = [draw(parquet_column(name, n, wild)) for name in names]
    for k, name in enumerate(names):
        key = name.strip().lower()
        if chosen and key in ("user", "item"):
            arrays[k] = pa.array([p[0 if key == "user" else 1] for p in chosen])
    return pa.Table.from_arrays(arrays, names=names)


@fuzz_settings()
@given(table=parquet_table())
def test_fuzz_single_parquet_table(table):
    try:
        expected = expect_single(oracle_parquet(table))
    except Invalid:
        expected = None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.parquet"
        pq.write_table(table, path)
        loaded, message = load_or_error(path)
    check(expected, loaded, message)
    if expected is not None:
        check_single_table(loaded, expected)


def kind_of(values):
    return "int" if all(isinstance(v, int) for v in values) else "str"


@fuzz_settings()
@given(data=st.data(), fmt=st.sampled_from(["csv", "tsv", "parquet"]))
def test_fuzz_train_test_table_pair(data, fmt):
    """A directory with train and test tables: test ids map through train's id maps."""
    with tempfile.TemporaryDirectory() as tmp:
        parts = {}
        pairs = None
        for stem in ("train", "test"):
            path = Path(tmp) / f"{stem}.{fmt}"
            if fmt == "parquet":
                table = data.draw(parquet_table(pairs=pairs))
                pq.write_table(table, path)
                try:
                    parts[stem] = oracle_parquet(table)
                except Invalid:
                    parts[stem] = None
            else:
                sep = "," if fmt == "csv" else "\t"
                names = data.draw(header())
                content = serialize(names, data.draw(table_rows(names, pairs)), sep, data.draw)
                path.write_bytes(content)
                try:
                    parts[stem] = oracle_table_text(content, sep)
                except Invalid:
                    parts[stem] = None
            if parts[stem] and data.draw(st.sampled_from([True] * 4 + [False])):
                # usually test pairs are unseen combinations of train's users and items
                seen = set(parts[stem])
                pairs = [(u, i) for u in sorted({u for u, _ in seen}, key=str)
                         for i in sorted({i for _, i in seen}, key=str) if (u, i) not in seen]
        loaded, message = load_or_error(tmp)
    expected = None
    train, test = parts["train"], parts["test"]
    if train is not None and test is not None:
        users, items = {u for u, _ in train}, {i for _, i in train}
        same_kinds = all(kind_of([p[k] for p in train]) == kind_of([p[k] for p in test]) for k in (0, 1))
        if same_kinds and all(u in users and i in items for u, i in test) and not set(train) & set(test):
            expected = (set(train), set(test))
    check(expected, loaded, message)
    if expected is not None:
        back = lambda part: {(loaded.user_ids[u], loaded.item_ids[i]) for u, i in part.tolist()}  # noqa: E731
        assert back(loaded.train) == expected[0] and back(loaded.test) == expected[1]
        assert len(loaded.train) == len(expected[0]) and len(loaded.test) == len(expected[1])
        assert list(loaded.user_ids) == sorted({u for u, _ in expected[0]})
