"""Reader for the LightGCN text format: one line per user, ``user item item ...``, 0-based ids.

The grammar, strictly enforced (anything else is a :class:`CbnsError` naming file and line): a
line is decimal ASCII integers separated by spaces or tabs, optionally surrounded by spaces or
tabs, ended by ``\\n`` or ``\\r\\n`` (the last line may lack it). The first integer is the
user, the others its items (there may be none). Blank lines are skipped. Ids are below 2^31 (an
embedding table cannot be larger): the integer ids of :mod:`cbns.data.id_text`.

The file is read in blocks of whole lines and each block is parsed with numpy: a byte outside
``0-9``, space, tab and line ends marks the first bad line, and the integers are the runs of
digits, their values built a digit position at a time over every token at once. Nothing runs
per line in Python.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cbns.data.id_text import MAX_ID
from cbns.data.load_progress import LoadProgress
from cbns.data.readers.file_checks import require_file
from cbns.errors import CbnsError

#: Bytes parsed per block (plus the rest of the line the block ends in).
BLOCK = 8 << 20
#: Tokens with more digits than this (leading zeros included) are converted by Python's int.
_LONG = 18


def read_lightgcn_file(path: Path, progress: LoadProgress | None = None) -> np.ndarray:
    """Read one file into ``[N, 2]`` int64 (user, item) pairs in file order (see the module doc
    for the grammar). A file without any pair is an error, since it would train or test nothing."""
    require_file(path)
    progress = progress or LoadProgress(enabled=False)
    users: list[np.ndarray] = []
    items: list[np.ndarray] = []
    try:
        progress.start(f"reading {path.name}", path.stat().st_size)
        with open(path, "rb") as fh:
            carry, lines_before = b"", 0
            while True:
                block = fh.read(BLOCK)
                data = carry + block if carry else block
                if block:
                    cut = data.rfind(b"\n") + 1
                    if cut == 0:  # a line longer than the block: read on
                        carry = data
                        continue
                    data, carry = data[:cut], data[cut:]
                u, i = _parse_block(data, path, lines_before, at_end=not block)
                users.append(u)
                items.append(i)
                lines_before += data.count(b"\n")
                progress.advance(len(data))
                if not block:
                    break
    except OSError as exc:
        raise CbnsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    pairs = np.stack([np.concatenate(users), np.concatenate(items)], axis=1)
    if not len(pairs):
        raise CbnsError(f"{path}: no (user, item) pairs in the file")
    return pairs


def _parse_block(data: bytes, path: Path, lines_before: int, at_end: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(users [n], items [n])`` of a block of whole lines (the last one may lack its ``\\n`` only
    at the end of the file); ``lines_before`` lines of the file precede it."""
    b = np.frombuffer(data, dtype=np.uint8)
    if not len(b):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    digit = (b - np.uint8(48)) < 10
    newline = np.flatnonzero(b == 10)
    ok = digit | (b == 32) | (b == 9)
    ok[newline] = True
    cr = np.flatnonzero(b == 13)
    if len(cr):  # a \r is allowed just before a \n, or as the file's last byte
        after = np.append(b, 0)[cr + 1]
        ok[cr[(after == 10) | ((cr == len(b) - 1) & at_end)]] = True
    bad_at = int(np.argmin(ok)) if not ok.all() else None
    bad_line = None if bad_at is None else int(np.searchsorted(newline, bad_at))  # 0-based within the block
    limit = len(b) if bad_line is None else (0 if bad_line == 0 else int(newline[bad_line - 1]) + 1)

    d = digit[:limit]
    starts = np.flatnonzero(d & ~np.concatenate([[False], d[:-1]]))
    ends = np.flatnonzero(d & ~np.concatenate([d[1:], [False]])) + 1
    values, too_large = _token_values(b, data, starts, ends)
    token_line = np.searchsorted(newline, starts)  # 0-based line within the block
    if too_large.any():
        line = int(token_line[np.argmax(too_large)])
        if bad_line is None or line < bad_line:
            on_line = token_line == line
            biggest = max(int(data[s:e]) for s, e in zip(starts[on_line], ends[on_line]))
            raise CbnsError(f"{path}:{lines_before + line + 1}: id {biggest} is too large (ids must be <= {MAX_ID})")
    if bad_line is not None:
        lo = 0 if bad_line == 0 else int(newline[bad_line - 1]) + 1
        hi = int(newline[bad_line]) if bad_line < len(newline) else len(b)
        text = data[lo:hi].removesuffix(b"\r")
        raise CbnsError(f"{path}:{lines_before + bad_line + 1}: {_problem(text)}")
    first = np.concatenate([[True], token_line[1:] != token_line[:-1]]) if len(starts) else np.zeros(0, bool)
    owner = np.cumsum(first) - 1  # the line's first token (its user) for every token
    user_of = values[np.flatnonzero(first)][owner]
    return user_of[~first], values[~first]


def _token_values(b: np.ndarray, data: bytes, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(values [T] int64, too_large [T] bool)`` of the digit runs ``[starts, ends)``; a value
    above :data:`MAX_ID` is clamped to ``MAX_ID + 1`` and flagged."""
    lengths = ends - starts
    values = np.zeros(len(starts), dtype=np.int64)
    short = lengths <= _LONG
    width = int(lengths[short].max()) if short.any() else 0
    for k in range(width):  # Horner's rule, one digit position at a time, over every token at once
        live = short & (lengths > k)
        at = starts[live] + k
        values[live] = values[live] * 10 + (b[at].astype(np.int64) - 48)
    for t in np.flatnonzero(~short):  # 19+ digits: Python's int, for the rare token that long
        values[t] = min(int(data[starts[t]:ends[t]]), MAX_ID + 1)
    too_large = values > MAX_ID
    values[too_large] = MAX_ID + 1
    return values, too_large


def _problem(line: bytes) -> str:
    """Say what is wrong with a line that is neither blank nor integers: it has a token that is
    not a run of ASCII digits (anything but digits, spaces and tabs lands in some token)."""
    token = next(t for t in line.replace(b"\t", b" ").split(b" ") if t and not t.isdigit())
    if token.startswith(b"-") and token[1:].isdigit():
        return f"ids must be >= 0, got {token.decode()}"
    return f"id {token.decode(errors='replace')!r} is not an integer"
