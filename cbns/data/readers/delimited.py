"""CSV and TSV tables: one grammar (see :mod:`cbns.data.readers.tables`), two readers that agree.

* The **fast reader** takes files without any ``"`` below the header line (whose quoting the
  ``csv`` module reads), NUL byte or lone carriage return, in valid UTF-8: every record is then one
  line and every field the text between separators, so pyarrow splits the file in C++ and nothing
  runs per line in Python. Line numbers (for errors only) come from one numpy pass over the
  newlines, on the first error.
* The **exact reader** (Python's ``csv`` module, strict RFC 4180 quoting, spaces after a separator
  skipped) reads every other file, and any file the fast reader finds irregular (a row with the
  wrong number of fields, a whitespace-only line): it is the definition of the grammar, and it
  names the line of any error.

Both hand the columns to the same checks (:mod:`cbns.data.readers.id_columns`,
:mod:`cbns.data.readers.number_columns`), so they accept the same files with the same content.
"""
from __future__ import annotations

import codecs
import csv
import io
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from cbns.data.load_progress import LoadProgress
from cbns.data.read_options import ReadOptions
from cbns.data.readers.id_columns import string_ids
from cbns.data.readers.locator import Locator
from cbns.data.readers.number_columns import text_numbers
from cbns.data.readers.table_columns import ID_ROLES, NUMBER_ROLES, Table, columns
from cbns.errors import CbnsError

#: Bytes read (and UTF-8-checked) per step; the progress bar advances by this much.
CHUNK = 16 << 20
BOM = codecs.BOM_UTF8

# Python's csv refuses fields over 131,072 characters; the fast reader has no such limit, so
# neither has the exact one (the limit is process-wide; raising it only lets longer fields in).
csv.field_size_limit(sys.maxsize)


def read_delimited(path: Path, sep: str, options: ReadOptions, progress: LoadProgress) -> Table:
    """The table in ``path`` with fields separated by ``sep``."""
    raw = read_bytes(path, progress)
    table = _read_fast(path, raw, sep, options) if _fast_reader_applies(raw) else None
    if table is None:
        progress.stage("parsing quoted text")
        table = _read_exact(path, raw, sep, options)
    return table


def read_bytes(path: Path, progress: LoadProgress) -> bytearray:
    """The file's bytes, read in :data:`CHUNK` steps that advance ``progress``."""
    try:
        size = path.stat().st_size
        progress.start(f"reading {path.name}", size)
        raw = bytearray(size)
        view, filled = memoryview(raw), 0
        with open(path, "rb") as fh:
            while filled < size:
                got = fh.readinto(view[filled:filled + CHUNK])
                if not got:
                    break
                filled += got
                progress.advance(got)
            rest = fh.read()  # the file grew while being read
        view.release()
        del raw[filled:]
        return raw + rest if rest else raw
    except OSError as exc:
        raise CbnsError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _fast_reader_applies(raw: bytearray) -> bool:
    """No NUL, no carriage return outside ``\\r\\n``, valid UTF-8 (quotes: :func:`_read_fast`)."""
    if raw.find(b"\x00") >= 0 or raw.count(b"\r") != raw.count(b"\r\n"):
        return False
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(raw)
    try:
        for start in range(0, len(raw), CHUNK):
            decoder.decode(view[start:start + CHUNK])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    finally:
        view.release()
    return True


def _read_fast(path: Path, raw: bytearray, sep: str, options: ReadOptions) -> Table | None:
    """The table, or None when the file needs the exact reader."""
    start = len(BOM) if raw.startswith(BOM) else 0
    line = 0
    while True:  # the header: the first line that is not empty
        end = raw.find(b"\n", start)
        stop = len(raw) if end < 0 else end
        text = raw[start:stop].removesuffix(b"\r").decode("utf-8")
        line += 1
        if text:
            break
        if end < 0:
            return None  # no header at all: the exact reader says the file is empty
        start = end + 1
    try:  # the header alone may be quoted (pyarrow writes it so), on this one line
        record = next(csv.reader([text], delimiter=sep, strict=True, skipinitialspace=True))
    except csv.Error:
        return None  # e.g. a quoted name running over the line end
    if record == [""]:
        return None  # a whitespace-only line: skipped by the grammar, left to the exact reader
    if end >= 0 and raw.find(b'"', end + 1) >= 0:
        return None  # quoting below the header: records may span lines
    roles = columns(f"{path}:{line}", record, options)
    header_line = line
    body = pa.py_buffer(raw)[end + 1:] if end >= 0 else pa.py_buffer(b"")
    names = [f"c{k}" for k in range(len(record))]
    wanted = {role: names[at] for role, at in roles.items()}
    if body.size == 0:
        parsed = pa.table({name: pa.array([], pa.string()) for name in wanted.values()})
    else:
        try:
            parsed = pacsv.read_csv(
                pa.BufferReader(body),
                read_options=pacsv.ReadOptions(column_names=names, block_size=CHUNK),
                parse_options=pacsv.ParseOptions(delimiter=sep, quote_char=False, escape_char=False,
                                                 ignore_empty_lines=True),
                convert_options=pacsv.ConvertOptions(include_columns=list(wanted.values()),
                                                     column_types={n: pa.string() for n in wanted.values()},
                                                     strings_can_be_null=False, check_utf8=False))
        except pa.ArrowInvalid:
            return None  # a row with another number of fields, or a whitespace-only line
    rows = Locator(path, _line_finder(raw, header_line))
    return _checked(rows, {role: parsed.column(name) for role, name in wanted.items()})


def _line_finder(raw: bytearray, header_line: int):
    """``row -> line`` for a file the fast reader took: data row r is the (r + 1)-th non-empty line
    after the header (computed once, on the first call)."""
    lines: list[np.ndarray] = []

    def line_of(row: int) -> int:
        if not lines:
            data = np.frombuffer(raw, dtype=np.uint8)
            newline = np.flatnonzero(data == 10)
            starts = np.concatenate([[0], newline + 1])
            ends = np.concatenate([newline, [len(data)]])
            length = ends - starts
            length -= (length > 0) & (data[np.maximum(ends - 1, 0)] == 13)  # a \r before the \n
            numbers = np.flatnonzero(length > 0) + 1
            lines.append(numbers[numbers > header_line])
        return int(lines[0][row])

    return line_of


def _read_exact(path: Path, raw: bytearray, sep: str, options: ReadOptions) -> Table:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise CbnsError(f"{path}:{line}: not UTF-8 text (byte {raw[exc.start]:#04x})") from None
    if not text.strip():
        raise CbnsError(f"{path}: the file is empty")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True, skipinitialspace=True)
    header, roles, cells, lines = None, {}, {}, []
    end = 0
    try:
        for record in reader:
            start, end = end + 1, reader.line_num
            if not record or record == [""]:  # a blank or whitespace-only line
                continue
            if header is None:
                header = record
                roles = columns(f"{path}:{start}", record, options)
                cells = {role: [] for role in roles}
                continue
            if len(record) != len(header):
                raise CbnsError(f"{path}:{start}: expected {len(header)} fields like the header, got "
                                f"{len(record)}: {_short(sep.join(record))}")
            for role, at in roles.items():
                cells[role].append(record[at])
            lines.append(start)
    except csv.Error as exc:
        raise CbnsError(f"{path}:{end + 1}: cannot parse the table ({exc})") from None
    if header is None:
        raise CbnsError(f"{path}: the file is empty")
    line_numbers = np.array(lines, dtype=np.int64)
    rows = Locator(path, lambda row: line_numbers[row])
    return _checked(rows, {role: pa.array(values, pa.string()) for role, values in cells.items()})


def _checked(rows: Locator, cells: dict[str, pa.Array | pa.ChunkedArray]) -> Table:
    """The :class:`Table` of the string columns ``cells`` (by role), every value checked."""
    user, item = (string_ids(rows, role, cells[role]) for role in ID_ROLES)
    numbers = {role: text_numbers(rows, role, cells[role]) for role in NUMBER_ROLES if role in cells}
    return Table(rows, user, item, timestamp=numbers.get("timestamp"), rating=numbers.get("rating"))


def _short(text: str, limit: int = 60) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."
