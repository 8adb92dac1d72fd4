"""What makes a resumed run the same run: its configuration, its data, and its checkpoint."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from cbns.config import TrainConfig
from cbns.data import Interactions
from cbns.errors import CbnsError, FlagsOnly, Opt
from cbns.runs.checkpoint import checkpoint_files, peek

#: Options a resumed run may change: they decide how fast and how often, not what is computed.
#: (A different thread count or device can change float rounding; see docs/resume.md.)
MUTABLE_ON_RESUME = ("threads", "checkpoint_every", "device")


def data_fingerprint(data: Interactions) -> dict[str, Any]:
    """Sizes and a SHA-256 of the train/valid/test pairs: a resumed run must see the same data."""
    digest = hashlib.sha256()
    for part in (data.train, data.valid, data.test):
        digest.update(np.ascontiguousarray(part, dtype=np.int64).tobytes())
        digest.update(b"|")
    return {"num_users": int(data.num_users), "num_items": int(data.num_items), "train": len(data.train),
            "valid": len(data.valid), "test": len(data.test), "sha256": digest.hexdigest()}


def refuse_changes(run_dir: Path, saved: TrainConfig, requested: dict[str, Any]) -> TrainConfig:
    """``saved`` with the :data:`MUTABLE_ON_RESUME` options of ``requested`` applied.

    ``requested`` maps option names to values the user gave (``None`` = not given). Any other
    option that differs from the saved run is refused: resuming continues the same run.
    """
    updates = {}
    for name, value in requested.items():
        if value is None or value == saved[name]:
            continue
        if name not in MUTABLE_ON_RESUME:
            raise CbnsError(Opt(name, _show(value)), f": a resumed run keeps its configuration "
                            f"({name}: {_show(saved[name])} in {run_dir / 'config.yaml'}); drop the ",
                            FlagsOnly("flag", otherwise="option"), ", or start a new run with another ", Opt("out"))
        updates[name] = value
    return TrainConfig(**{**saved.to_dict(), **updates}).validate()


def check_same_run(path: Path, payload: dict, config: TrainConfig, fingerprint: dict) -> None:
    """:class:`CbnsError` if the checkpoint at ``path`` was written by another configuration or
    on other data than the run being resumed."""
    saved = payload.get("config", {})
    for name, value in config.to_dict().items():
        if name not in MUTABLE_ON_RESUME and saved.get(name) != value:
            raise CbnsError(f"{path.parent / 'config.yaml'}: {name} is {_show(value)}, but the checkpoint "
                            f"{path.name} was written with {_show(saved.get(name))}; restore the file or start "
                            f"a new run")
    theirs = payload.get("data", {})
    if theirs != fingerprint:
        what = next((k for k in fingerprint if theirs.get(k) != fingerprint[k]), "sha256")
        raise CbnsError(Opt("data", config.data.source),
                        f": the dataset changed since the checkpoint {path} was written "
                        f"({what}: {theirs.get(what)} then, {fingerprint[what]} now); resume needs the same data")


def refuse_unfinished(out: Path) -> None:
    """A fresh run must not overwrite the checkpoint of an interrupted one in ``out``."""
    files = checkpoint_files(out)
    if files:
        try:
            where = f" at step {peek(files[0])['step']}"
        except CbnsError:
            where = ""
        names = " and ".join(str(p) for p in files)
        raise CbnsError(Opt("out", out), f": holds an unfinished run (checkpoint{where}); continue it with ",
                        FlagsOnly("`cbns train ", Opt("resume", out), "`", otherwise=f"cbns.resume({str(out)!r})"),
                        f", or delete {names} to start over")


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)
