"""Reader for the LightGCN text format: one line per user, ``user item item ...``, 0-based ids.

The grammar, strictly enforced (anything else is a :class:`CbnsError` naming file and line): a
line is decimal ASCII integers separated by spaces or tabs, optionally surrounded by spaces or
tabs, ended by ``\\n`` or ``\\r\\n`` (the last line may lack it). The first integer is the
user, the others its items (there may be none). Blank lines are skipped. Ids are below 2^31 (an
embedding table cannot be larger).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from cbns.errors import CbnsError

MAX_ID = 2**31 - 1
_LINE = re.compile(rb"[ \t]*[0-9]+(?:[ \t]+[0-9]+)*[ \t]*")
_BLANK = re.compile(rb"[ \t]*")


def read_lightgcn_file(path: Path) -> np.ndarray:
    """Read one file into ``[N, 2]`` int64 (user, item) pairs (see the module doc for the grammar).

    A file without any pair is an error, since it would train or test nothing.
    """
    if not path.is_file():
        raise CbnsError(f"{path}: no such file")
    users: list[np.ndarray] = []
    items: list[np.ndarray] = []
    try:
        with open(path, "rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                line = raw[:-1] if raw.endswith(b"\n") else raw
                line = line[:-1] if line.endswith(b"\r") else line
                if _LINE.fullmatch(line) is None:
                    if _BLANK.fullmatch(line):
                        continue
                    raise CbnsError(f"{path}:{lineno}: {_problem(line)}")
                ids = [int(t) for t in line.split()]
                if max(ids) > MAX_ID:
                    raise CbnsError(f"{path}:{lineno}: id {max(ids)} is too large (ids must be <= {MAX_ID})")
                if len(ids) > 1:
                    users.append(np.full(len(ids) - 1, ids[0], dtype=np.int64))
                    items.append(np.array(ids[1:], dtype=np.int64))
    except OSError as exc:
        raise CbnsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not items:
        raise CbnsError(f"{path}: no (user, item) pairs in the file")
    return np.stack([np.concatenate(users), np.concatenate(items)], axis=1)


def _problem(line: bytes) -> str:
    """Say what is wrong with a line that is neither blank nor integers: it has a token that is
    not a run of ASCII digits (anything but digits, spaces and tabs lands in some token)."""
    token = next(t for t in line.replace(b"\t", b" ").split(b" ") if t and not t.isdigit())
    if token.startswith(b"-") and token[1:].isdigit():
        return f"ids must be >= 0, got {token.decode()}"
    return f"id {token.decode(errors='replace')!r} is not an integer"
