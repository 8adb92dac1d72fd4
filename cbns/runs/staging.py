"""Where a run writes, so that a finished run is never mixed with another or lost to a crash.

A run directory ``R`` holds at every moment one of:

* nothing, or an unfinished run (``config.yaml``, checkpoints): it is resumed with ``resume(R)``;
* a finished run: ``metrics.json`` present and no checkpoint (``metrics.json`` is the last file a
  run writes and the checkpoints are deleted after it).

A new run on a finished ``R`` (``overwrite=True``) never writes into it: it trains in the staging
directory ``.R.cbns-staging`` beside it (same parent, so renames are atomic), checkpoints included,
so that it is resumable there (``resume(R)`` finds it). Once it has finished (``metrics.json``
written, its checkpoints deleted), it is published:

    1. rename ``R`` to ``.R.cbns-replaced``
    2. rename ``.R.cbns-staging`` to ``R``
    3. delete ``.R.cbns-replaced``

A crash between 1 and 2 leaves no ``R`` beside a finished staging directory and the replaced
run; between 2 and 3, the replaced run beside the new ``R``; before 1, a finished staging
directory beside the old ``R``. :func:`settle` recognises each and completes the publication;
it runs before any command reads or writes ``R`` (:func:`cbns.runs.run_dir.load_run_config`).
Until step 1, ``R`` is the old run, untouched; from step 2 on, the new one.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

from cbns.errors import CbnsError, FlagsOnly, Opt
from cbns.runs import atomic
from cbns.runs.checkpoint import checkpoint_files
from cbns.runs.run_lock import LOCK_FILE, RunLock

METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.yaml"
STAGING_SUFFIX = ".cbns-staging"
REPLACED_SUFFIX = ".cbns-replaced"


def _sibling(run: Path, suffix: str) -> Path:
    run = Path(os.path.abspath(run))
    return run.with_name(f".{run.name}{suffix}")


def staging_dir(run: Path) -> Path:
    """``.R.cbns-staging`` beside run directory ``R``: where a run replacing a finished ``R`` trains."""
    return _sibling(run, STAGING_SUFFIX)


def replaced_dir(run: Path) -> Path:
    """``.R.cbns-replaced``: the finished run being replaced, for the moment of the publication."""
    return _sibling(run, REPLACED_SUFFIX)


def is_finished(run: Path) -> bool:
    """``run`` holds a finished run: ``metrics.json`` (written last) and no checkpoint left."""
    run = Path(run)
    return (run / METRICS_FILE).is_file() and not checkpoint_files(run)


def live_dir(run: Path) -> Path:
    """The directory the run of ``R`` writes or wrote: the staging directory while a run replacing
    ``R`` is unfinished there, else ``R``."""
    staging = staging_dir(run)
    return staging if (staging / CONFIG_FILE).is_file() else Path(run)


def settle(run: Path) -> None:
    """Publish a finished run waiting in the staging directory of ``run``, or complete a publication
    that a crash interrupted (see the module docstring); a no-op otherwise. Every command that reads
    or writes ``run`` calls it first. Each step tolerates another process doing the same at once."""
    run = Path(run)
    replaced, staging = replaced_dir(run), staging_dir(run)
    if is_finished(staging) and not replaced.exists() and run.exists():
        _try_rename(run, replaced)
    if not run.exists():
        if is_finished(staging):
            _try_rename(staging, run)
        elif replaced.is_dir():  # the new run is not there: the old one goes back
            _try_rename(replaced, run)
    if replaced.is_dir() and is_finished(run):
        remove_tree(replaced)


def publish(staging: Path, run: Path) -> None:
    """Replace run directory ``run`` by the finished run in ``staging``, its staging directory (a
    command that read ``run`` meanwhile may have published it already: :func:`settle`)."""
    assert Path(staging) == staging_dir(run), staging
    settle(run)


def _try_rename(src: Path, dst: Path) -> None:
    """:func:`rename`, unless another process has just done it (``src`` gone or ``dst`` there)."""
    if not Path(dst).exists():
        with contextlib.suppress(FileNotFoundError):
            rename(src, dst)


def refuse_occupied(run: Path, overwrite: bool) -> Path:
    """Where a new run on ``run`` trains: ``run`` itself when it holds no finished run, the staging
    directory beside it when it does and ``overwrite`` is set. Refuses a finished ``run`` without
    ``overwrite`` and an unfinished run that replaces it."""
    run = Path(run)
    staging = staging_dir(run)
    if staging.exists() and checkpoint_files(staging):
        raise CbnsError(Opt("out", run), f": an unfinished run that replaces it is in {staging}; continue it with ",
                        FlagsOnly("`cbns train ", Opt("resume", run), "`", otherwise=f"cbns.resume({str(run)!r})"),
                        f", or delete {staging} to start over")
    if not is_finished(run):
        return run
    if not overwrite:
        raise CbnsError(Opt("out", run), f": holds a finished run ({run / METRICS_FILE}); choose another ",
                        Opt("out"), ", or replace it with ",
                        FlagsOnly(Opt("overwrite"), otherwise="overwrite=True"),
                        " (it is replaced only once the new run has finished)")
    return staging


def rename(src: Path, dst: Path) -> None:
    """Rename directory ``src`` to ``dst`` (same parent) and make it durable."""
    try:
        atomic.rename_path(src, dst)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise CbnsError(f"{src}: cannot rename to {Path(dst).name} ({exc.strerror or exc})") from None
    atomic.fsync_dir(Path(dst).parent)


def remove_tree(path: Path) -> None:
    """Delete directory ``path``; a file already gone (another process removing it) is no error."""
    def gone(function, name, info):
        if not isinstance(info[1], FileNotFoundError):
            raise info[1]

    shutil.rmtree(path, onerror=gone)  # onexc needs Python 3.12


class RunSlot:
    """``with RunSlot(out, overwrite) as slot:`` locks run directory ``out`` and decides where a new
    run writes (``slot.dir``: ``out``, or its staging directory when it replaces a finished run; see
    :func:`refuse_occupied`). Call ``slot.started()`` once training has started (a step ran: towers
    that do not fit fail at the first) and ``slot.finish()`` once the run has written its outputs
    (it publishes a staged run). A run that fails before it started leaves nothing behind: the
    directories, the ``config.yaml`` and the lock file the slot created are deleted (a
    ``config.yaml`` it replaced is put back)."""

    def __init__(self, out: Path, overwrite: bool = False, option: str = "out"):
        self.out, self.overwrite, self.option = Path(out), overwrite, option
        self.dir: Path = self.out
        self._locks: list[RunLock] = []
        self._created: list[Path] = []
        self._lock_created = False
        self._started = False
        self._config_before: bytes | None = None

    def __enter__(self) -> RunSlot:
        settle(self.out)
        existed, lock_existed = self.out.exists(), (self.out / LOCK_FILE).exists()
        self._locks.append(RunLock(self.out, self.option).__enter__())
        try:
            if not existed:
                self._created.append(self.out)
            self._lock_created = not lock_existed
            self._config_before = _read(self.out / CONFIG_FILE)
            self.dir = refuse_occupied(self.out, self.overwrite)
            if staging_dir(self.out).exists():  # no checkpoint there (refuse_occupied); we hold the lock of out
                remove_tree(staging_dir(self.out))
            if self.dir != self.out:
                self._created.append(self.dir)
                self._locks.append(RunLock(self.dir, self.option).__enter__())
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def started(self) -> None:
        self._started = True

    def finish(self) -> None:
        if self.dir != self.out:
            publish(self.dir, self.out)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is not None and not self._started:
                for path in reversed(self._created):
                    remove_tree(path)
                if self.out not in self._created:
                    if self._config_before is None:
                        (self.out / CONFIG_FILE).unlink(missing_ok=True)
                    elif self._config_before != _read(self.out / CONFIG_FILE):
                        atomic.atomic_write_bytes(self.out / CONFIG_FILE, self._config_before)
                    if self._lock_created:
                        self._locks[0].remove()
        finally:
            for lock in reversed(self._locks):
                lock.__exit__(None, None, None)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None
