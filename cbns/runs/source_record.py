"""What a finished run came from: ``source.json`` in the run directory.

Written with the run (before ``metrics.json``), it records

    format       1
    data         :func:`cbns.runs.resume.data_fingerprint` of the train/valid/test pairs trained on
    files        ``{option: {name: {"sha256", "size", "mtime_ns"}}}`` of each data and attribute
                 file the configuration names (name ``.``), or of each file the readers read
                 inside a directory it names (by file name); checked where the configuration puts
                 them now
    embeddings   ``{"user_embeddings.npy": digest, "item_embeddings.npy": digest}``
                 (:func:`cbns.ranking.item_index.items_digest` of each exported matrix)

so that a reader can tell a data file edited after training (:func:`changed_file`,
:func:`check_data`) and embedding files of another run (:func:`check_embeddings`) and say so in
one line. A run directory without the file (written before runs recorded it) is not checked.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from cbns.config import TrainConfig
from cbns.data.interactions import Interactions
from cbns.errors import CbnsError, Opt
from cbns.ranking.item_index import items_digest
from cbns.runs.atomic import atomic_write_text
from cbns.runs.resume import data_fingerprint

SOURCE_FILE = "source.json"
FORMAT = 1
#: The options that name files the dataset is read from.
DATA_OPTIONS = ("data", "user_features", "item_features")
_CHUNK = 4 * 2**20


def write_source(out: Path, config: TrainConfig, data: Interactions, matrices: dict[str, np.ndarray]) -> None:
    """Write ``out/source.json`` for a run trained on ``data`` (read as ``config`` says) that
    exported ``matrices`` (file name -> ``[rows, D]`` float32), atomically."""
    record = {"format": FORMAT, "data": data_fingerprint(data), "files": _file_records(config),
              "embeddings": {name: items_digest(matrix) for name, matrix in matrices.items()}}
    atomic_write_text(Path(out) / SOURCE_FILE, json.dumps(record, indent=2) + "\n")


def read_source(run: Path) -> dict[str, Any] | None:
    """The record of run directory ``run``; ``None`` when the run predates it; :class:`CbnsError`
    when it is damaged."""
    path = Path(run) / SOURCE_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CbnsError(f"{path}: cannot read it ({type(exc).__name__}); the run directory is damaged") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT or not all(
            isinstance(record.get(k), dict) for k in ("data", "files", "embeddings")):
        raise CbnsError(f"{path}: not a record this cbns reads (format {FORMAT}); the run directory is damaged")
    return record


def changed_file(run: Path, config: TrainConfig, record: dict[str, Any] | None = None,
                 missing: bool = True) -> str | None:
    """One line naming the first data file (where ``config`` puts it now) whose content changed
    since run ``run`` was trained, or that is gone (only with ``missing``); ``None`` when all are as
    recorded, or the run recorded none. A file whose size and modification time are as recorded is
    taken as unchanged without reading it."""
    record = read_source(run) if record is None else record
    if record is None:
        return None
    for option, files in record["files"].items():
        base = Path(config[option]) if option in DATA_OPTIONS and config[option] else None
        for name, saved in files.items() if isinstance(files, dict) and base is not None else ():
            path = base if name == "." else base / name
            saved = saved if isinstance(saved, dict) else {}  # a damaged entry: compared by content, so refused
            try:
                stat = path.stat()
            except OSError:
                if missing:
                    return f"{path}: the run {run} was trained on this file and it is gone"
                continue
            if stat.st_size == saved.get("size") and stat.st_mtime_ns == saved.get("mtime_ns"):
                continue
            if _sha256(path) != saved.get("sha256"):
                return (f"{path}: changed since the run {run} was trained (its SHA-256 is not the one in "
                        f"{Path(run) / SOURCE_FILE})")
    return None


def check_data(run: Path, config: TrainConfig, data: Interactions | None = None) -> None:
    """:class:`CbnsError` when the dataset of run ``run`` is not the one it was trained on: a
    recorded file changed or is gone, or (``data`` given) the pairs loaded now differ from the
    recorded fingerprint. Nothing is checked for a run that predates ``source.json``."""
    record = read_source(run)
    if record is None:
        return
    problem = changed_file(run, config, record)
    if problem is not None:
        raise CbnsError(problem, "; restore it, or train the run again")
    if data is None:
        return
    now, then = data_fingerprint(data), record["data"]
    if now != then:
        what = next((k for k in now if then.get(k) != now[k]), "sha256")
        raise CbnsError(Opt("data", config.data.source), f": the dataset read now is not the one the run {run} was "
                        f"trained on ({what}: {then.get(what)} then, {now[what]} now); restore it, or train the "
                        f"run again")


def check_embeddings(run: Path, matrices: dict[str, np.ndarray]) -> None:
    """:class:`CbnsError` naming the first of ``matrices`` (file name -> loaded matrix) that is not
    the one run ``run`` exported (the directory then mixes files of two runs)."""
    record = read_source(run)
    if record is None:
        return
    for name, matrix in matrices.items():
        saved = record["embeddings"].get(name)
        if saved is not None and saved != items_digest(matrix):
            raise CbnsError(f"{Path(run) / name}: not the file this run exported (its hash differs from the one in "
                            f"{Path(run) / SOURCE_FILE}): the directory mixes files of two runs; train the run again")


def _file_records(config: TrainConfig) -> dict[str, dict[str, dict[str, Any]]]:
    """``{option: {name: {"sha256", "size", "mtime_ns"}}}``: name ``.`` for a file the option
    names, the file's name for each file directly inside a directory it names."""
    records = {}
    for option in DATA_OPTIONS:
        value = config[option]
        path = Path(value) if value else None
        if path is None or not path.exists():
            continue  # a bundled dataset's name
        files = {".": path} if path.is_file() else {p.name: p for p in sorted(path.iterdir())
                                                    if p.is_file() and _read_from_directory(p.name)}
        records[option] = {name: _file_record(file) for name, file in files.items()}
    return records


def _read_from_directory(name: str) -> bool:
    """Whether a data directory's file ``name`` is one the readers read (:func:`cbns.data.loading.load_dataset`:
    LightGCN ``train.txt``/``test.txt``, ``train``/``test`` tables, MovieLens-100k ``u.data``, ``u.user``,
    ``u.item``), not e.g. a run directory's output kept beside them."""
    return name in ("u.data", "u.user", "u.item") or name.split(".")[0] in ("train", "test")


def _file_record(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"sha256": _sha256(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
