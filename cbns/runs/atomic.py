"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never half.

The bytes go to a temporary file in the same directory, are flushed and fsync'ed, and the
temporary file is renamed over the target with :func:`os.replace` (atomic on POSIX and Windows
when both names are on one filesystem); then the directory is fsync'ed so that the rename itself
survives a power cut. A crash at any point leaves either the previous file or the new one, plus
at worst a ``<name>.tmp-*`` leftover that :func:`remove_leftovers` deletes.

A full disk (ENOSPC) or a file-size limit (EFBIG, ``ulimit -f``) ends in one :class:`CbnsError`
naming the file, whether the writer lets the ``OSError`` through (numpy) or wraps it in its own
error (``torch.save`` raises a ``RuntimeError``); the temporary file is removed.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from cbns.errors import CbnsError

TMP_INFIX = ".tmp-"


def atomic_write_bytes(path: Path, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` atomically; :class:`CbnsError` naming the file if the disk refuses."""
    path = Path(path)
    atomic_rename(write_temp(path, data), path)


def write_temp(path: Path, data: bytes | memoryview) -> Path:
    """``data`` in a new fsync'ed ``<path>.tmp-*`` file beside ``path``, ready to be renamed over it."""
    return write_temp_with(path, lambda fh: fh.write(data))


def write_temp_with(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """What ``write(fh)`` writes into a new fsync'ed ``<path>.tmp-*`` file beside ``path``, ready to
    be renamed over it: a large payload streams to disk instead of being held in memory first."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + TMP_INFIX)
    except OSError as exc:
        raise CbnsError(f"{path}: cannot write ({exc.strerror or exc})") from None
    fh = None
    try:
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as raw:
            fh = _ErrorRecorder(raw, path)
            write(fh)
            fh.flush()
            os.fsync(raw.fileno())
    except BaseException as exc:
        _unlink_quietly(Path(tmp))
        error = exc if isinstance(exc, OSError) else getattr(fh, "error", None)
        if error is None:
            raise
        failure = CbnsError(f"{path}: cannot write ({error.strerror or error}); the previous version, if any, "
                            f"is left as it was")
        failure.errno = error.errno  # ENOSPC, EFBIG, ...: the caller may say how to go on
        raise failure from None
    return Path(tmp)


class _ErrorRecorder:
    """A binary file that remembers the ``OSError`` a write or flush raised, for writers (torch)
    that report it as an error of their own."""

    def __init__(self, fh: BinaryIO, path: Path):
        self.fh, self.path, self.error = fh, path, None

    def write(self, data) -> int:
        try:
            return self.fh.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        try:
            self.fh.flush()
        except OSError as exc:
            self.error = exc
            raise

    def __getattr__(self, name: str):  # seek, tell, fileno, ...
        return getattr(self.fh, name)


def atomic_write_with(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` atomically with ``write(fh)`` (see :func:`write_temp_with`)."""
    path = Path(path)
    atomic_rename(write_temp_with(path, write), path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_rename(src: Path, dst: Path, sync: bool = True) -> None:
    """``os.replace(src, dst)`` (both in one directory), then fsync the directory unless ``sync``
    is False (when another rename follows at once)."""
    try:
        rename_path(src, dst)
    except OSError as exc:
        raise CbnsError(f"{src}: cannot rename to {Path(dst).name} ({exc.strerror or exc})") from None
    if sync:
        fsync_dir(Path(dst).parent)


def rename_path(src: Path, dst: Path) -> None:
    """``os.replace``: the one place where cbns renames a file or a run directory (tests make it
    fail at a chosen call to stop a run between two of its writes)."""
    os.replace(src, dst)


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new name in ``directory`` durable (a no-op where directories cannot be
    opened, e.g. Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (network, FUSE) refuse fsync on a directory; the rename still happened
    finally:
        os.close(fd)


def remove_leftovers(path: Path) -> list[Path]:
    """Delete the ``<name>.tmp-*`` files a crash mid-write left next to ``path``; returns them."""
    path = Path(path)
    found = sorted(path.parent.glob(path.name + TMP_INFIX + "*"))
    for tmp in found:
        _unlink_quietly(tmp)
    return found


def remove_all_leftovers(directory: Path) -> list[Path]:
    """Delete every ``*.tmp-*`` file a crash mid-write left in ``directory``; returns them."""
    found = sorted(Path(directory).glob("*" + TMP_INFIX + "*"))
    for tmp in found:
        _unlink_quietly(tmp)
    return found


def current_umask() -> int:
    """The process's file-mode creation mask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
