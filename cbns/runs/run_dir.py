"""A run directory: what ``cbns train`` writes and ``cbns evaluate`` reads back.

Layout:
    config.yaml           the resolved configuration
    metrics.json          valid/test metrics, best epoch, timings, per-epoch history
    model.pt              the best weights and the objective state (the CBNS bank included) with
                          the config, checksummed (see cbns.runs.model_file; runs written before
                          it have the same payload unchecked in checkpoint.pt)
    train_state.ckpt      while training: the checkpoint to resume from (see cbns.runs.checkpoint);
                          removed once the run has finished
    user_embeddings.npy   [num_users, D] float32, row r = user r (normalised when scoring by cosine;
                          for history towers, the vector from the history as of the test)
    item_embeddings.npy   [num_items, D] float32, row r = item r
    user_ids.txt, item_ids.txt   for remapped tables: line r holds the original id of row r
    user_features.json    when the user tower reads attributes: each column's raw values by code,
                          so that request-time attributes find their codes (cbns.runs.feature_vocabulary)
    seen_items.npz        each user's train and validation items, the ones serving never
                          recommends (see cbns.runs.seen_items_file)
    drift.json, drift.png with drift_every: item-embedding drift (see cbns.training.callbacks.drift)
    source.json           the data the run was trained on and the hashes of the exported
                          embeddings (see cbns.runs.source_record)

A run that replaces a finished one trains in a staging directory beside it and is published by
rename once finished (see cbns.runs.staging).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from torch import nn

from cbns.config import LEGACY_VALUES, FileOptions, TrainConfig, build_config, load_yaml, save_yaml
from cbns.data.interactions import Interactions
from cbns.errors import CbnsError, Opt
from cbns.model.two_tower import TwoTower
from cbns.runs.atomic import atomic_write_text, atomic_write_with
from cbns.runs.feature_vocabulary import write_user_features
from cbns.runs.finite_rows import check_finite_rows
from cbns.runs.model_file import write_model_file
from cbns.runs.seen_items_file import seen_matrix, source_key, write_seen_items
from cbns.runs.source_record import write_source
from cbns.runs.staging import settle


def prepare_out_dir(out: Path) -> Path:
    """Create ``out`` and check it is writable before any training starts."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise CbnsError(Opt("out", out), f": cannot write there ({exc.strerror or exc})") from None
    return out


def resolved(config: TrainConfig) -> TrainConfig:
    """``config`` with the dataset and attribute-table paths made absolute, so the run directory
    can be read from anywhere."""
    changes = {}
    for name in ("data", "user_features", "item_features"):
        value = config[name]
        if value and Path(value).exists():
            changes[name] = str(Path(value).resolve())
    return TrainConfig(**{**config.to_dict(), **changes}) if changes else config


def save_run(out: Path, config: TrainConfig, data: Interactions, model: TwoTower, objective: nn.Module,
             metrics: dict, user_context: dict | None = None, custom_towers: bool = False) -> None:
    """Write the run's outputs, each file atomically; ``metrics.json`` last, so its presence means
    the run finished and every other file is complete. ``user_context`` (one row per user, e.g. the
    histories as of the test) is what the user tower reads when the user vectors are exported;
    ``custom_towers`` records that the towers were built in Python (the model file then cannot be
    rebuilt from the config alone)."""
    save_yaml(config, out / "config.yaml")
    # With a popularity prior both matrices carry one more column (cbns.model.popularity_prior), so
    # that user . item is still the ranking score.
    users, items = model.ranking_vectors(model.all_users(data.num_users, user_context).cpu(),
                                         model.all_items(data.num_items).cpu())
    matrices = {"user_embeddings.npy": users.numpy().astype(np.float32, copy=False),
                "item_embeddings.npy": items.numpy().astype(np.float32, copy=False)}
    for name, matrix in matrices.items():
        check_finite_rows(matrix, out / name, "the trained model is not finite there; nothing was exported "
                                              "(see docs/resume.md for NaN in training)")
    write_model_file(out, {"config": config.to_dict(), "model": model.state_dict(),
                           "objective": objective.state_dict(), "num_users": data.num_users,
                           "num_items": data.num_items, "custom_towers": custom_towers})
    for name, matrix in matrices.items():
        _atomic_npy(out / name, matrix)
    for name, ids in (("user_ids.txt", data.user_ids), ("item_ids.txt", data.item_ids)):
        if ids is not None:
            atomic_write_text(out / name, "".join(f"{x}\n" for x in ids))
    write_seen_items(out, seen_matrix(data), matrices["item_embeddings.npy"], source_key(config))
    if _reads_user_attributes(model):  # raw values at request time find their codes (cbns.serve)
        write_user_features(out, data.user_features)
    write_source(out, config, data, matrices)
    write_json(out / "metrics.json", metrics)


def _reads_user_attributes(model: TwoTower) -> bool:
    """Whether the user tower embeds user attribute codes (a feature or pooled tower with a table)."""
    return getattr(model.user_tower, "features", None) is not None


def write_json(path: Path, payload: dict) -> None:
    """Write atomically: a reader never sees half a file."""
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")


def _atomic_npy(path: Path, array: np.ndarray) -> None:
    atomic_write_with(path, lambda fh: np.save(fh, array))


def load_run_config(run: Path) -> TrainConfig:
    """The run's saved configuration; an option the file lacks (the run predates it) takes its
    :data:`cbns.config.LEGACY_VALUES` value, i.e. what the run really did, not today's default.
    A publication of ``run`` that a crash interrupted is completed first (:func:`cbns.runs.staging.settle`)."""
    settle(run)
    if not (run / "config.yaml").is_file():
        raise CbnsError(f"{run}: not a run directory (no config.yaml)")
    saved = load_yaml(run / "config.yaml")
    older = {k: v for k, v in LEGACY_VALUES.items() if k not in saved}
    return build_config(FileOptions({**older, **saved}, saved.where), {})
