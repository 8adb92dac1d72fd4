"""``load_dataset``: from a name or a path to :class:`Interactions`, with validation and test."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cbns.data.event_splits import split_events
from cbns.data.events import EventLog
from cbns.data.holdout import carve_validation, holdout_mask
from cbns.data.interactions import Interactions
from cbns.data.readers.bundled import BUNDLED, load_bundled
from cbns.data.readers.feature_files import read_feature_file
from cbns.data.readers.lightgcn import read_lightgcn_file
from cbns.data.readers.ml100k import is_ml100k_dir, load_ml100k
from cbns.data.readers.sequences import SEQUENCE_SUFFIX, load_sequences
from cbns.data.readers.tables import TABLE_SUFFIXES, Table, read_table, remap_ids
from cbns.errors import CbnsError

#: Share of each user's pairs held out as test when a single table is given.
TABLE_TEST_FRACTION = 0.2


def load_dataset(spec: str, seed: int = 0, split: str = "random", valid_fraction: float = 0.1) -> Interactions:
    """Load ``spec``: a bundled name (``gowalla``), a LightGCN directory (``train.txt`` and
    ``test.txt``), a directory with ``train`` and ``test`` tables, a MovieLens-100k directory
    (``u.data``), a sequence file (``.txt``, one ``user item item ...`` line per user in time
    order), or one table file (CSV, TSV, Parquet) whose test part is a seeded 20% of each user's
    pairs.

    ``split`` (see :mod:`cbns.data.event_splits`) applies to the sources with event times
    (MovieLens-100k, sequence files, a table with a ``timestamp`` column); the others come with
    their own test split and accept ``random`` only. With ``random`` the validation split is not
    carved here (see :func:`cbns.data.holdout.carve_validation`); ``loo`` and ``temporal`` return it.
    """
    if spec in BUNDLED:
        return _presplit(load_bundled(spec), split, spec)
    path = Path(spec)
    if not path.exists():
        names = ", ".join(sorted(BUNDLED))
        raise CbnsError(f"--data {spec}: no such file or directory, and not a bundled dataset ({names})")
    if path.is_dir():
        if is_ml100k_dir(path):
            return split_events(load_ml100k(path), split, valid_fraction, seed)
        if (path / "train.txt").exists() or (path / "test.txt").exists():
            return _presplit(load_lightgcn_dir(path), split, spec)
        tables = {stem: _find_table(path, stem) for stem in ("train", "test")}
        if all(tables.values()):
            return _presplit(load_table_pair(tables["train"], tables["test"]), split, spec)
        raise CbnsError(f"{path}: expected train.txt and test.txt (LightGCN text), train/test "
                        f"tables ({', '.join(TABLE_SUFFIXES)}) or u.data (MovieLens-100k)")
    if path.suffix.lower() == SEQUENCE_SUFFIX:
        if split == "temporal":
            raise CbnsError(f"--split temporal: {path} orders each user's items but has no global clock; "
                            f"use --split loo or random")
        return split_events(load_sequences(path), split, valid_fraction, seed)
    if path.suffix.lower() in TABLE_SUFFIXES:
        if split == "random":
            return load_single_table(path, seed)
        return split_events(table_events(path, split), split, valid_fraction, seed)
    raise CbnsError(f"{path}: unknown dataset file type {path.suffix!r}; give a directory, a .txt "
                    f"sequence file or a .csv, .tsv or .parquet table")


def _presplit(data: Interactions, split: str, spec: str) -> Interactions:
    if split != "random":
        raise CbnsError(f"--split {split}: {spec} comes with its own test split and no event times; "
                        f"use --split random")
    return data


def table_events(path: Path, split: str) -> EventLog:
    """A table with a ``timestamp`` column as an :class:`EventLog` (for the time-based splits)."""
    table = read_table(path)
    if table.timestamp is None:
        raise CbnsError(f"--split {split}: {path} has no timestamp column; use --split random")
    user_codes, user_ids = remap_ids(table.user)
    item_codes, item_ids = remap_ids(table.item)
    return EventLog(path.stem, len(user_ids), len(item_ids), user_codes, item_codes, table.timestamp,
                    user_ids, item_ids)


def load_lightgcn_dir(path: Path) -> Interactions:
    train_path, test_path = path / "train.txt", path / "test.txt"
    train = read_lightgcn_file(train_path)
    test = read_lightgcn_file(test_path)
    num_users = int(train[:, 0].max()) + 1
    num_items = int(train[:, 1].max()) + 1
    return finish(path.name, num_users, num_items, train, test, train_path, test_path)


def load_table_pair(train_path: Path, test_path: Path) -> Interactions:
    train_table, test_table = read_table(train_path), read_table(test_path)
    for column in ("user", "item"):
        kinds = [_kind(getattr(t, column)) for t in (train_table, test_table)]
        if kinds[0] != kinds[1]:
            raise CbnsError(f"{test_path}: {column} ids are {kinds[1]}, but those of {train_path.name} are "
                            f"{kinds[0]}; both tables must use the same id type")
    user_codes, user_ids = remap_ids(train_table.user)
    item_codes, item_ids = remap_ids(train_table.item)
    train = np.stack([user_codes, item_codes], axis=1)
    test = np.stack([_lookup(test_table, "user", user_ids, train_path),
                     _lookup(test_table, "item", item_ids, train_path)], axis=1)
    data = finish(train_path.parent.name, len(user_ids), len(item_ids), train, test, train_path, test_path)
    data.user_ids, data.item_ids = user_ids, item_ids
    return data


def load_single_table(path: Path, seed: int) -> Interactions:
    table = read_table(path)
    user_codes, user_ids = remap_ids(table.user)
    item_codes, item_ids = remap_ids(table.item)
    pairs = _dedupe(np.stack([user_codes, item_codes], axis=1))
    mask = holdout_mask(pairs, TABLE_TEST_FRACTION, seed)
    if not mask.any():
        raise CbnsError(f"{path}: no test pairs: the test split holds out round({TABLE_TEST_FRACTION} * n) of "
                        f"each user's n distinct items, and no user has 3 or more")
    data = Interactions(path.stem, len(user_ids), len(item_ids), pairs[~mask], pairs[mask])
    data.user_ids, data.item_ids = user_ids, item_ids
    return data


#: A LightGCN id range more than this many times the number of ids that occur (and larger than
#: SPARSE_MIN) is refused: a typo such as 10000000 would otherwise allocate a huge embedding table.
SPARSE_FACTOR = 10
SPARSE_MIN = 100_000


def finish(name, num_users, num_items, train, test, train_path, test_path) -> Interactions:
    """Check test ids against the train id range, deduplicate, and reject train/test overlap."""
    for col, size, what in ((0, num_users, "user"), (1, num_items, "item")):
        bad = test[:, col] >= size
        if bad.any():
            raise CbnsError(f"{test_path}: {what} id {int(test[bad][0, col])} is outside the id range of "
                            f"{train_path.name} (0..{size - 1})")
        distinct = len(np.unique(train[:, col]))
        if size > SPARSE_MIN and size > SPARSE_FACTOR * distinct:
            raise CbnsError(f"{train_path}: {what} ids run up to {size - 1} but only {distinct:,} distinct "
                            f"{what}s occur; ids must be numbered from 0 without large gaps (a CSV table "
                            f"has its ids renumbered for you)")
    train, test = _dedupe(train), _dedupe(test)
    key = lambda pairs: pairs[:, 0] * num_items + pairs[:, 1]  # noqa: E731
    overlap = np.isin(key(test), key(train))
    if overlap.any():
        u, i = test[overlap][0]
        raise CbnsError(f"{test_path}: {int(overlap.sum())} (user, item) pair(s) also in {train_path.name}, "
                        f"e.g. ({u}, {i}); a test pair must not be a training pair")
    return Interactions(name, num_users, num_items, train, test)


def _dedupe(pairs: np.ndarray) -> np.ndarray:
    return np.unique(pairs, axis=0) if len(pairs) else pairs


def _find_table(path: Path, stem: str) -> Path | None:
    found = [path / f"{stem}{suffix}" for suffix in TABLE_SUFFIXES if (path / f"{stem}{suffix}").is_file()]
    if len(found) > 1:
        raise CbnsError(f"{path}: both {' and '.join(p.name for p in found)}; keep one {stem} table")
    return found[0] if found else None


def _kind(ids: np.ndarray) -> str:
    return "integers" if ids.dtype.kind in "iu" else "strings"


def _lookup(table: Table, column: str, originals: np.ndarray, train_path: Path) -> np.ndarray:
    """``[N]`` codes of ``table``'s ids in the sorted train ids ``originals``; every id must occur."""
    values = getattr(table, column)
    codes = np.minimum(np.searchsorted(originals, values), len(originals) - 1)
    found = originals[codes] == values
    if not found.all():
        row = int(np.argmin(found))
        raise CbnsError(f"{table.where(row)}: {column} {values[row]!r} does not occur in the train table "
                        f"{train_path.name}")
    return codes.astype(np.int64)


def load_data(config) -> Interactions:
    """The dataset of ``config`` split as ``config.split`` says, with its validation split (carved
    from train for ``random``; made by the split itself for ``loo`` and ``temporal``), and the
    attribute tables named by ``user_features`` / ``item_features`` added to the dataset's own."""
    data = load_dataset(config.data, seed=config.seed, split=config.split, valid_fraction=config.valid_fraction)
    if config.split == "random":
        data = carve_validation(data, config.valid_fraction, config.seed)
    for side, num in (("user", data.num_users), ("item", data.num_items)):
        path = getattr(config, f"{side}_features")
        if path:
            table = read_feature_file(path, side, getattr(config, f"{side}_feature_columns"),
                                      getattr(data, f"{side}_ids"), num)
            own = getattr(data, f"{side}_features")
            setattr(data, f"{side}_features", table if own is None else own.merged(table))
    return data
