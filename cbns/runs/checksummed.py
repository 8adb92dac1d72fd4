"""A torch payload in a file that carries its length and SHA-256, so damage is detected, never loaded.

Layout::

    b"CBNSCKPT"                     8 bytes, the magic
    header length                   4 bytes, little-endian unsigned
    header                          UTF-8 JSON: format, payload_bytes, sha256, and the writer's summary
    payload                         torch.save of a dict of plain Python values and tensors

Both the training-state checkpoint (:mod:`cbns.runs.checkpoint`) and the final model file
(:mod:`cbns.runs.model_file`) use it. :func:`read_header` reads the header alone (no torch).
"""
from __future__ import annotations

import hashlib
import io
import json
import struct
from pathlib import Path
from typing import BinaryIO

import torch

from cbns.errors import CbnsError

MAGIC = b"CBNSCKPT"
FORMAT = 1
_LEN = struct.Struct("<I")
_CHUNK = 64 * 2**20


def encode(payload: dict, summary: dict) -> bytes:
    """The file's bytes for ``payload``, with ``summary`` (small JSON-able values) in the header."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getbuffer()
    header = json.dumps({**summary, "format": FORMAT, "payload_bytes": len(body),
                         "sha256": hashlib.sha256(body).hexdigest()}).encode()
    return b"".join([MAGIC, _LEN.pack(len(header)), header, body])


def write_stream(fh: BinaryIO, payload: dict, summary: dict) -> None:
    """Write the file's bytes for ``payload`` to ``fh`` (seekable, at the file's start), streaming:
    the same layout as :func:`encode`, the header JSON padded with spaces to a length reserved
    before the payload's length and digest are known."""
    reserved = len(_header_bytes(summary, 10 ** 19, "0" * 64))
    fh.write(MAGIC + _LEN.pack(reserved) + b" " * reserved)
    body = _HashingWriter(fh)
    torch.save(payload, body)
    header = _header_bytes(summary, body.size, body.digest.hexdigest())
    fh.seek(len(MAGIC) + _LEN.size)
    fh.write(header.ljust(reserved))
    fh.seek(0, io.SEEK_END)


def _header_bytes(summary: dict, size: int, digest: str) -> bytes:
    return json.dumps({**summary, "format": FORMAT, "payload_bytes": size, "sha256": digest}).encode()


class _HashingWriter:
    """A write-only file over ``fh`` that counts and hashes what passes through."""

    def __init__(self, fh: BinaryIO):
        self.fh, self.size, self.digest = fh, 0, hashlib.sha256()

    def write(self, data) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.fh.write(data)

    def flush(self) -> None:
        self.fh.flush()


def read_header(path: Path, what: str = "checkpoint") -> dict:
    """The header of the file at ``path``; :class:`CbnsError` if it is not one or is damaged."""
    with _open(path, what) as fh:
        return _header(fh, path, what)


def read_payload(path: Path, what: str = "checkpoint", map_location="cpu") -> dict:
    """The payload, after checking its length and SHA-256 against the header (the file is hashed in
    chunks and loaded from disk, so the payload is in memory once, as tensors)."""
    with _open(path, what) as fh:
        header = _header(fh, path, what)
        start, digest, size = fh.tell(), hashlib.sha256(), 0
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
        if size != header["payload_bytes"]:
            raise CbnsError(f"{path}: truncated {what} ({size} of {header['payload_bytes']} payload bytes)")
        if digest.hexdigest() != header["sha256"]:
            raise CbnsError(f"{path}: damaged {what} (SHA-256 of the payload does not match its header)")
        fh.seek(start)
        try:
            return torch.load(fh, map_location=map_location, weights_only=True)
        except Exception as exc:  # the digest matched, so this is a foreign or newer format
            raise CbnsError(f"{path}: cannot load the {what} payload ({type(exc).__name__})") from None


def _open(path: Path, what: str):
    try:
        return open(path, "rb")
    except OSError as exc:
        raise CbnsError(f"{path}: cannot open the {what} ({exc.strerror or exc})") from None


def _header(fh, path: Path, what: str) -> dict:
    start = fh.read(len(MAGIC) + _LEN.size)
    if len(start) < len(MAGIC) + _LEN.size or not start.startswith(MAGIC):
        raise CbnsError(f"{path}: not a cbns {what} (bad magic or truncated header)")
    (length,) = _LEN.unpack(start[len(MAGIC):])
    raw = fh.read(length)
    try:
        header = json.loads(raw.decode("utf-8")) if len(raw) == length else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        header = None
    if not isinstance(header, dict) or not isinstance(header.get("payload_bytes"), int) \
            or not isinstance(header.get("sha256"), str):
        raise CbnsError(f"{path}: truncated or damaged {what} header")
    if header.get("format") != FORMAT:
        raise CbnsError(f"{path}: {what} format {header.get('format')!r}, this cbns reads format {FORMAT}")
    return header
