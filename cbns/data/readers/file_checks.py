"""The first check of every reader: the path is a file (a directory or a missing path says so)."""
from __future__ import annotations

from pathlib import Path

from cbns.errors import CbnsError


def require_file(path: Path, prefix: str = "") -> None:
    """:class:`CbnsError` unless ``path`` is a file; ``prefix`` (``--user-features``) leads the message."""
    path = Path(path)
    lead = f"{prefix} {path}" if prefix else str(path)
    if path.is_dir():
        raise CbnsError(f"{lead}: is a directory, not a file; give the file itself")
    if not path.is_file():
        raise CbnsError(f"{lead}: no such file")
