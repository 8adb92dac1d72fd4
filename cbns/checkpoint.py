"""The training-state checkpoint file: written atomically, checked on read, the previous one kept.

A run directory holds at most two of them:

    train_state.ckpt        the latest state
    train_state.prev.ckpt   the one before it, the fallback when the latest cannot be read

File layout (so a truncated or damaged file is always detected, never half-loaded)::

    b"CBNSCKPT"                     8 bytes, the magic
    header length                   4 bytes, little-endian unsigned
    header                          UTF-8 JSON: format, step, epoch, batch, payload_bytes, sha256
    payload                         torch.save of a dict of plain Python values and tensors

:func:`peek` reads the header only (no torch), e.g. to watch a run's progress. A new checkpoint
is written to a temporary file and fsync'ed; then the latest is renamed to ``.prev`` and the
temporary file to the latest (:mod:`cbns.atomic`). A crash at any moment leaves a readable latest,
or (between the two renames) no latest and a readable ``.prev``; a leftover temporary file is
never read.
"""
from __future__ import annotations

import hashlib
import io
import json
import struct
from pathlib import Path

import torch

from cbns.atomic import atomic_rename, remove_leftovers, write_temp
from cbns.errors import CbnsError

LATEST = "train_state.ckpt"
PREVIOUS = "train_state.prev.ckpt"
MAGIC = b"CBNSCKPT"
FORMAT = 1
_LEN = struct.Struct("<I")


def write_checkpoint(run_dir: Path, payload: dict, summary: dict) -> Path:
    """Save ``payload`` as the latest checkpoint of ``run_dir`` (the old latest becomes ``.prev``).

    ``summary`` (small JSON-able values such as step and epoch) goes into the header for :func:`peek`.
    """
    run_dir = Path(run_dir)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getbuffer()
    header = json.dumps({**summary, "format": FORMAT, "payload_bytes": len(body),
                         "sha256": hashlib.sha256(body).hexdigest()}).encode()
    latest = run_dir / LATEST
    tmp = write_temp(latest, b"".join([MAGIC, _LEN.pack(len(header)), header, body]))
    if latest.exists():
        atomic_rename(latest, run_dir / PREVIOUS, sync=False)
    atomic_rename(tmp, latest)
    return latest


def peek(path: Path) -> dict:
    """The header of a checkpoint file (step, epoch, batch, ...); :class:`CbnsError` if unreadable."""
    with _open(path) as fh:
        return _read_header(fh, path)


def read_checkpoint(path: Path) -> dict:
    """The payload of one checkpoint file, after checking its length and SHA-256."""
    with _open(path) as fh:
        header = _read_header(fh, path)
        body = fh.read()
    if len(body) != header["payload_bytes"]:
        raise CbnsError(f"{path}: truncated checkpoint ({len(body)} of {header['payload_bytes']} payload bytes)")
    if hashlib.sha256(body).hexdigest() != header["sha256"]:
        raise CbnsError(f"{path}: damaged checkpoint (SHA-256 of the payload does not match its header)")
    try:
        return torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except Exception as exc:  # the digest matched, so this is a foreign or newer format
        raise CbnsError(f"{path}: cannot load the checkpoint payload ({type(exc).__name__})") from None


def read_latest(run_dir: Path) -> tuple[dict, Path, list[str]] | None:
    """The newest readable checkpoint of ``run_dir`` as ``(payload, path, problems)``, or ``None``
    when the directory holds no checkpoint at all.

    ``problems`` lists, one line each, the newer files that could not be read and were skipped
    (a damaged latest falls back to ``.prev``). Leftover temporary files from a crash mid-write are
    deleted, never read. Raises :class:`CbnsError` when checkpoints exist but none is readable.
    """
    run_dir = Path(run_dir)
    remove_leftovers(run_dir / LATEST)
    problems: list[str] = []
    existing = checkpoint_files(run_dir)
    for path in existing:
        try:
            return read_checkpoint(path), path, problems
        except CbnsError as exc:
            problems.append(str(exc))
    if existing:
        raise CbnsError(f"{run_dir}: no readable checkpoint ({'; '.join(problems)})")
    return None


def checkpoint_files(run_dir: Path) -> list[Path]:
    """The checkpoint files present in ``run_dir``."""
    return [p for p in (Path(run_dir) / LATEST, Path(run_dir) / PREVIOUS) if p.exists()]


def _open(path: Path):
    try:
        return open(path, "rb")
    except OSError as exc:
        raise CbnsError(f"{path}: cannot open the checkpoint ({exc.strerror or exc})") from None


def _read_header(fh, path: Path) -> dict:
    start = fh.read(len(MAGIC) + _LEN.size)
    if len(start) < len(MAGIC) + _LEN.size or not start.startswith(MAGIC):
        raise CbnsError(f"{path}: not a cbns checkpoint (bad magic or truncated header)")
    (length,) = _LEN.unpack(start[len(MAGIC):])
    raw = fh.read(length)
    try:
        header = json.loads(raw.decode("utf-8")) if len(raw) == length else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        header = None
    if not isinstance(header, dict) or not isinstance(header.get("payload_bytes"), int) \
            or not isinstance(header.get("sha256"), str):
        raise CbnsError(f"{path}: truncated or damaged checkpoint header")
    if header.get("format") != FORMAT:
        raise CbnsError(f"{path}: checkpoint format {header.get('format')!r}, this cbns reads format {FORMAT}")
    return header
