"""The first check of every reader: the path is a file (a directory or a missing path says so)."""
from __future__ import annotations

from pathlib import Path

from cbns.errors import CbnsError, Opt


def require_file(path: Path, option: str = "") -> None:
    """:class:`CbnsError` unless ``path`` is a file; the ``option`` that named it
    (``user_features``) leads the message."""
    path = Path(path)
    lead = Opt(option, path) if option else str(path)
    if path.is_dir():
        raise CbnsError(lead, ": is a directory, not a file; give the file itself")
    if not path.is_file():
        raise CbnsError(lead, ": no such file")
