"""The training-state checkpoint: written atomically, checked on read, the previous one kept.

"Checkpoint" in cbns means this file and nothing else: the state a run resumes from (weights,
optimizer moments, the objective (the bank, generators), the loop's position). A run directory holds at
most two of them while training, and none once the run has finished:

    train_state.ckpt        the latest state
    train_state.prev.ckpt   the one before it, the fallback when the latest cannot be read

Each is a checksummed file (:mod:`cbns.runs.checksummed`), so a truncated or damaged one is always
detected, never half-loaded; :func:`peek` reads its header only (step, epoch, batch), e.g. to
watch a run's progress. A new checkpoint is written to a temporary file and fsync'ed; then the
latest is renamed to ``.prev`` and the temporary file to the latest (:mod:`cbns.runs.atomic`). A
crash at any moment leaves a readable latest, or (between the two renames) no latest and a
readable ``.prev``; a leftover temporary file is never read.
"""
from __future__ import annotations

from pathlib import Path

from cbns.errors import CbnsError
from cbns.runs.atomic import atomic_rename, remove_leftovers, write_temp_with
from cbns.runs.checksummed import read_header, read_payload, write_stream

LATEST = "train_state.ckpt"
PREVIOUS = "train_state.prev.ckpt"


def write_checkpoint(run_dir: Path, payload: dict, summary: dict) -> Path:
    """Save ``payload`` as the latest checkpoint of ``run_dir`` (the old latest becomes ``.prev``).

    ``summary`` (small JSON-able values such as step and epoch) goes into the header for :func:`peek`.
    """
    run_dir = Path(run_dir)
    latest = run_dir / LATEST
    tmp = write_temp_with(latest, lambda fh: write_stream(fh, payload, summary))
    if latest.exists():
        atomic_rename(latest, run_dir / PREVIOUS, sync=False)
    atomic_rename(tmp, latest)
    return latest


def peek(path: Path) -> dict:
    """The header of a checkpoint file (step, epoch, batch, ...); :class:`CbnsError` if unreadable."""
    return read_header(path)


def read_checkpoint(path: Path) -> dict:
    """The payload of one checkpoint file, after checking its length and SHA-256."""
    return read_payload(path)


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
