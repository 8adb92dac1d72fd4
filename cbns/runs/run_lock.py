"""One run writes a run directory at a time: an exclusive lock on ``DIR/run.lock``.

A training run and a resume take an ``fcntl.flock`` on the file before they
write anything into DIR and hold it until they return; a second run started on the same DIR
meanwhile is refused in one line naming the process that holds it. The kernel releases the
lock when its process ends, however it ends (SIGKILL included), so a stale ``run.lock`` left in
a finished or killed run's directory locks nothing. A run that fails before it starts deletes the
file it created (:meth:`RunLock.remove`); a process that then holds a lock on the deleted file
notices that the name no longer leads to it and locks the new file instead. Where ``fcntl`` does
not exist (Windows) nothing is locked.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from cbns.errors import CbnsError, Opt

LOCK_FILE = "run.lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None


class RunLock:
    """``with RunLock(out, "out"):`` holds the lock of run directory ``out`` (created if needed);
    ``option`` is the option that named it, for messages."""

    def __init__(self, run_dir: Path, option: str = "out"):
        self.run_dir, self.option, self._fd = Path(run_dir), option, None

    def __enter__(self) -> RunLock:
        while True:
            fd = self._open()
            if fcntl is None or self._take(fd):
                break
        self._fd = fd
        return self

    def _open(self) -> int:
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            return os.open(self.run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise CbnsError(Opt(self.option, self.run_dir), f": cannot write there ({exc.strerror or exc})") from None

    def _take(self, fd: int) -> bool:
        """Lock ``fd``; False (and ``fd`` closed) when its file was deleted meanwhile: open again."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise CbnsError(Opt(self.option, self.run_dir), f": another cbns run ({holder}) is writing this "
                            f"directory; wait for it to end, or choose another ", Opt(self.option)) from None
        try:
            current = os.stat(self.run_dir / LOCK_FILE).st_ino
        except OSError:
            current = None
        if current != os.fstat(fd).st_ino:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
        return True

    def remove(self) -> None:
        """Delete the lock file (while holding it: call before leaving the ``with`` block)."""
        with contextlib.suppress(OSError):
            (self.run_dir / LOCK_FILE).unlink()

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            if fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
