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

import torch

from cbns.errors import CbnsError

MAGIC = b"CBNSCKPT"
FORMAT = 1
_LEN = struct.Struct("<I")


def encode(payload: dict, summary: dict) -> bytes:
    """The file's bytes for ``payload``, with ``summary`` (small JSON-able values) in the header."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getbuffer()
    header = json.dumps({**summary, "format": FORMAT, "payload_bytes": len(body),
                         "sha256": hashlib.sha256(body).hexdigest()}).encode()
    return b"".join([MAGIC, _LEN.pack(len(header)), header, body])


def read_header(path: Path, what: str = "checkpoint") -> dict:
    """The header of the file at ``path``; :class:`CbnsError` if it is not one or is damaged."""
    with _open(path, what) as fh:
        return _header(fh, path, what)


def read_payload(path: Path, what: str = "checkpoint", map_location="cpu") -> dict:
    """The payload, after checking its length and SHA-256 against the header."""
    with _open(path, what) as fh:
        header = _header(fh, path, what)
        body = fh.read()
    if len(body) != header["payload_bytes"]:
        raise CbnsError(f"{path}: truncated {what} ({len(body)} of {header['payload_bytes']} payload bytes)")
    if hashlib.sha256(body).hexdigest() != header["sha256"]:
        raise CbnsError(f"{path}: damaged {what} (SHA-256 of the payload does not match its header)")
    try:
        return torch.load(io.BytesIO(body), map_location=map_location, weights_only=True)
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
