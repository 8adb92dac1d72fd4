"""The final model file of a run: the best weights and the objective state, checksummed.

A finished run directory holds ``model.pt``: ``{"config", "model", "objective", "num_users",
"num_items", "custom_towers"}`` (state_dicts and plain values; the objective's state is the CBNS
bank) in a checksummed file (:mod:`cbns.runs.checksummed`),
so a damaged copy is refused instead of evaluated. Runs written before this file existed hold the
same payload as a plain ``torch.save`` in ``checkpoint.pt``; it is read when ``model.pt`` is absent.
"""
from __future__ import annotations

from pathlib import Path

import torch

from cbns.errors import CbnsError
from cbns.runs.atomic import atomic_write_with
from cbns.runs.checksummed import read_payload, write_stream

MODEL_FILE = "model.pt"
#: The name of the model file in run directories written before ``model.pt``.
LEGACY_MODEL_FILE = "checkpoint.pt"


def write_model_file(run: Path, payload: dict) -> Path:
    """Write ``payload`` as ``run/model.pt``, atomically."""
    path = Path(run) / MODEL_FILE
    atomic_write_with(path, lambda fh: write_stream(fh, payload, {"kind": "model"}))
    return path


def model_path(run: Path) -> Path:
    """``run/model.pt``, or the legacy ``checkpoint.pt`` of an older run; :class:`CbnsError` if neither."""
    run = Path(run)
    for name in (MODEL_FILE, LEGACY_MODEL_FILE):
        if (run / name).is_file():
            return run / name
    raise CbnsError(f"{run}: no {MODEL_FILE} in the run directory (has the run finished?)")


def read_model_file(run: Path, map_location="cpu") -> dict:
    """The payload of the run's model file, checked (a legacy ``checkpoint.pt`` has no checksum)."""
    path = model_path(run)
    if path.name == MODEL_FILE:
        return read_payload(path, "model file", map_location)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which file, not a traceback
        raise CbnsError(f"{path}: cannot read the model file ({type(exc).__name__})") from None
