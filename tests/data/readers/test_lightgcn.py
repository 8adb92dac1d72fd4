"""The block-wise LightGCN reader against a line-by-line reading written here from the grammar:
the same pairs, or the same error line, whatever the block size (a block ends mid-file, a line
runs over several blocks)."""
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from cbns.data.readers import lightgcn
from cbns.errors import CbnsError

MAX_ID = 2**31 - 1


def reference(content: bytes, name: str):
    """``[(user, item)]`` or the error message, one line at a time."""
    lines = content.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    pairs = []
    for number, line in enumerate(lines, start=1):
        line = line[:-1] if line.endswith(b"\r") else line
        tokens = [t for t in line.replace(b"\t", b" ").split(b" ") if t]
        if not all(t.isdigit() for t in tokens):
            return f"{name}:{number}: {lightgcn._problem(line)}"
        ids = [int(t) for t in tokens]
        if ids and max(ids) > MAX_ID:
            return f"{name}:{number}: id {max(ids)} is too large (ids must be <= {MAX_ID})"
        pairs += [(ids[0], i) for i in ids[1:]]
    return pairs if pairs else f"{name}: no (user, item) pairs in the file"


TOKENS = [b"0", b"7", b"12", b"007", b"2147483647", b"2147483648", b"99999999999999999999999", b"x", b"-3", b"1.5",
          b"\xd9\xa3", b"0000000000000000000000000000042"]
SEPS = [b" ", b"\t", b"  ", b" \t"]


@st.composite
def lightgcn_bytes(draw):
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        tokens = draw(st.lists(st.sampled_from(TOKENS[:5] * 6 + TOKENS[5:]), max_size=6))
        line = b"".join(t + draw(st.sampled_from(SEPS)) for t in tokens).rstrip(b" \t")
        lines.append(draw(st.sampled_from([b"", b" "])) + line + draw(st.sampled_from([b"", b"\t", b"\r", b"\r\r"])))
    text = b"\n".join(lines) + draw(st.sampled_from([b"", b"\n", b"\r\n", b"\r"]))
    return text


@fuzz_settings(200)
@given(content=lightgcn_bytes(), block=st.sampled_from([1, 2, 3, 7, 64, 8 << 20]))
def test_blocks_of_any_size_read_as_lines_do(content, block):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.txt"
        path.write_bytes(content)
        expected = reference(content, str(path))
        old, lightgcn.BLOCK = lightgcn.BLOCK, block
        try:
            got = lightgcn.read_lightgcn_file(path).tolist()
        except CbnsError as exc:
            got = str(exc)
        finally:
            lightgcn.BLOCK = old
    if isinstance(expected, list):
        assert got == [list(p) for p in expected]
    else:
        assert got == expected


def test_a_large_file_reads_every_pair_in_order(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    rows = [(u, rng.choice(10_000, size=int(rng.integers(0, 40)), replace=False)) for u in range(3000)]
    (tmp_path / "train.txt").write_text("".join(" ".join(map(str, [u, *items])) + "\n" for u, items in rows))
    monkeypatch.setattr(lightgcn, "BLOCK", 1000)
    got = lightgcn.read_lightgcn_file(tmp_path / "train.txt")
    expected = [(u, i) for u, items in rows for i in items]
    assert got.dtype == np.int64 and got.tolist() == [list(p) for p in expected]


def test_a_directory_in_place_of_a_file_says_so(tmp_path):
    (tmp_path / "train.txt").mkdir()
    with pytest.raises(CbnsError, match=r"train.txt: is a directory, not a file"):
        lightgcn.read_lightgcn_file(tmp_path / "train.txt")
