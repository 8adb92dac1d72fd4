"""``load_dataset``: from a name or a path to :class:`Interactions`, with validation and test.

What becomes an interaction is decided once, before any split (:mod:`cbns.data.row_rules`): rows
rated below ``min_rating`` are dropped, then every (user, item) pair counts once; both are
counted in ``Interactions.rows`` and shown by ``Interactions.summary()``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cbns.data.event_splits import split_events
from cbns.data.events import EventLog
from cbns.data.holdout import carve_validation, holdout_mask
from cbns.data.interactions import Interactions
from cbns.data.load_progress import LoadProgress
from cbns.data.read_options import DEFAULT_READ, ReadOptions
from cbns.data.readers.bundled import BUNDLED, load_bundled
from cbns.data.readers.feature_files import read_feature_file
from cbns.data.readers.id_columns import IdColumn
from cbns.data.readers.lightgcn import read_lightgcn_file
from cbns.data.readers.ml100k import is_ml100k_dir, load_ml100k
from cbns.data.readers.sequences import SEQUENCE_SUFFIX, load_sequences
from cbns.data.readers.table_columns import Table
from cbns.data.readers.tables import TABLE_SUFFIXES, read_table
from cbns.data.row_rules import RowCounts, pair_keys, rating_rule, unique_pairs
from cbns.errors import CbnsError, Opt

#: Share of each user's pairs held out as test when a single table is given.
TABLE_TEST_FRACTION = 0.2


def load_dataset(spec: str, seed: int = 0, split: str = "random", valid_fraction: float = 0.1,
                 read: ReadOptions | None = None, progress: LoadProgress | None = None) -> Interactions:
    """Load ``spec``: a bundled name (``gowalla``), a LightGCN directory (``train.txt`` and
    ``test.txt``), a directory with ``train`` and ``test`` tables, a MovieLens-100k directory
    (``u.data``), a sequence file (``.txt``, one ``user item item ...`` line per user in time
    order), or one table file (CSV, TSV, Parquet) whose test part is a seeded 20% of each user's
    pairs.

    ``split`` (see :mod:`cbns.data.event_splits`) applies to the sources with event times
    (MovieLens-100k, sequence files, a table with a time column); the others come with their own
    test split and accept ``random`` only. With ``random`` the validation split is not carved here
    (see :func:`cbns.data.holdout.carve_validation`); ``loo`` and ``temporal`` return it. ``read``
    names a table's columns and the rating threshold; a source they do not apply to refuses them.
    """
    read = read or ReadOptions()
    progress = progress or LoadProgress(enabled=False)
    if spec in BUNDLED:
        read.refuse_for(f"the bundled {spec} (check-ins, stored as pairs)", columns=False, ratings=False)
        return _presplit(load_bundled(spec), split, spec)
    path = Path(spec)
    if not path.exists():
        names = ", ".join(sorted(BUNDLED))
        raise CbnsError(Opt("data", spec), f": no such file or directory, and not a bundled dataset ({names})")
    if path.is_dir():
        if is_ml100k_dir(path):
            read.refuse_for(f"{path} (MovieLens-100k)", columns=False)
            return split_events(load_ml100k(path, read.min_rating), split, valid_fraction, seed, str(path))
        if (path / "train.txt").exists() or (path / "test.txt").exists():
            read.refuse_for(f"{path} (LightGCN text)", columns=False, ratings=False)
            return _presplit(load_lightgcn_dir(path, progress), split, spec)
        tables = {stem: _find_table(path, stem) for stem in ("train", "test")}
        if all(tables.values()):
            return _presplit(load_table_pair(tables["train"], tables["test"], read, progress), split, spec)
        if path.suffix.lower() in (*TABLE_SUFFIXES, SEQUENCE_SUFFIX):
            raise CbnsError(Opt("data", path), f": is a directory, not a {path.suffix} file")
        raise CbnsError(f"{path}: expected train.txt and test.txt (LightGCN text), train/test "
                        f"tables ({', '.join(TABLE_SUFFIXES)}) or u.data (MovieLens-100k)")
    if path.suffix.lower() == SEQUENCE_SUFFIX:
        read.refuse_for(f"{path} (a sequence file)", columns=False, ratings=False)
        if split == "temporal":
            raise CbnsError(Opt("split", "temporal"), f": {path} orders each user's items but has no global "
                            f"clock; use ", Opt("split", "loo"), " or random")
        return split_events(load_sequences(path), split, valid_fraction, seed, str(path))
    if path.suffix.lower() in TABLE_SUFFIXES:
        if split == "random":
            return load_single_table(path, seed, read, progress)
        return split_events(table_events(path, split, read, progress), split, valid_fraction, seed,
                            str(path))
    raise CbnsError(f"{path}: unknown dataset file type {path.suffix!r}; give a directory, a .txt "
                    f"sequence file or a .csv, .tsv or .parquet table")


def _presplit(data: Interactions, split: str, spec: str) -> Interactions:
    if split != "random":
        raise CbnsError(Opt("split", split), f": {spec} comes with its own test split and no event times; use ",
                        Opt("split", "random"))
    return data


def rated_table(path: Path, read: ReadOptions, progress: LoadProgress) -> tuple[Table, RowCounts]:
    """The table with the rows rated below ``read.min_rating`` dropped, and its row counts."""
    table = read_table(path, read, progress)
    progress.stage("applying the rating threshold" if read.min_rating is not None else "remapping ids")
    keep, counts = rating_rule(table.rating, read.min_rating, len(table))
    if keep is not None:
        if not keep.any():
            lo, hi = counts.rating_range
            raise CbnsError(Opt("min_rating", f"{read.min_rating:g}"), f": no row of {path} is rated that high "
                            f"(its ratings run from {lo:g} to {hi:g})")
        table = table.take(keep)
    return table, counts


def table_events(path: Path, split: str, read: ReadOptions = DEFAULT_READ,
                 progress: LoadProgress | None = None) -> EventLog:
    """A table with a time column as an :class:`EventLog` (for the time-based splits)."""
    table, counts = rated_table(path, read, progress or LoadProgress(enabled=False))
    if table.timestamp is None:
        raise CbnsError(Opt("split", split), f": {path} has no {read.time_column!r} column; name the column of "
                        f"event times with ", Opt("time_column"), ", or use ", Opt("split", "random"))
    return EventLog(path.stem, len(table.user.originals), len(table.item.originals), table.user.codes,
                    table.item.codes, table.timestamp, table.user.originals, table.item.originals, rows=counts)


def load_lightgcn_dir(path: Path, progress: LoadProgress | None = None) -> Interactions:
    train_path, test_path = path / "train.txt", path / "test.txt"
    train = read_lightgcn_file(train_path, progress)
    test = read_lightgcn_file(test_path, progress)
    num_users = int(train[:, 0].max()) + 1
    num_items = int(train[:, 1].max()) + 1
    return finish(path.name, num_users, num_items, train, test, train_path, test_path,
                  RowCounts(len(train) + len(test), unit="pairs"))


def load_table_pair(train_path: Path, test_path: Path, read: ReadOptions = DEFAULT_READ,
                    progress: LoadProgress | None = None) -> Interactions:
    progress = progress or LoadProgress(enabled=False)
    (train_table, train_rows), (test_table, test_rows) = (rated_table(p, read, progress)
                                                          for p in (train_path, test_path))
    for column in ("user", "item"):
        kinds = [getattr(t, column).kind for t in (train_table, test_table)]
        if kinds[0] != kinds[1]:
            raise CbnsError(f"{test_path}: {column} ids are {kinds[1]}, but those of {train_path.name} are "
                            f"{kinds[0]}; both tables must use the same id type")
    user_ids, item_ids = train_table.user.originals, train_table.item.originals
    train = np.stack([train_table.user.codes, train_table.item.codes], axis=1)
    test = np.stack([_lookup(test_table, "user", user_ids, train_path, read),
                     _lookup(test_table, "item", item_ids, train_path, read)], axis=1)
    data = finish(train_path.parent.name, len(user_ids), len(item_ids), train, test, train_path, test_path,
                  train_rows + test_rows, user_ids, item_ids)
    data.user_ids, data.item_ids = user_ids, item_ids
    return data


def load_single_table(path: Path, seed: int, read: ReadOptions = DEFAULT_READ,
                      progress: LoadProgress | None = None) -> Interactions:
    progress = progress or LoadProgress(enabled=False)
    table, rows = rated_table(path, read, progress)
    user_ids, item_ids = table.user.originals, table.item.originals
    progress.stage("splitting")
    pairs = unique_pairs(np.stack([table.user.codes, table.item.codes], axis=1), len(item_ids))
    rows.duplicates = len(table) - len(pairs)
    del table
    mask = holdout_mask(pairs, TABLE_TEST_FRACTION, seed)
    if not mask.any():
        raise CbnsError(f"{path}: no test pairs: the test split holds out round({TABLE_TEST_FRACTION} * n) of "
                        f"each user's n distinct items, and no user has 3 or more")
    data = Interactions(path.stem, len(user_ids), len(item_ids), pairs[~mask], pairs[mask], rows=rows)
    data.user_ids, data.item_ids = user_ids, item_ids
    return data


#: A LightGCN id range more than this many times the number of ids that occur (and larger than
#: SPARSE_MIN) is refused: a typo such as 10000000 would otherwise allocate a huge embedding table.
SPARSE_FACTOR = 10
SPARSE_MIN = 100_000


def finish(name, num_users, num_items, train, test, train_path, test_path, rows: RowCounts,
           user_ids: np.ndarray | None = None, item_ids: np.ndarray | None = None) -> Interactions:
    """Check test ids against the train id range, deduplicate each part (counted into ``rows``),
    and reject train/test overlap, naming a shared pair by its original ids (``user_ids[code]``,
    ``item_ids[code]``; None: the codes are the ids)."""
    for col, size, what in ((0, num_users, "user"), (1, num_items, "item")):
        bad = test[:, col] >= size
        if bad.any():
            raise CbnsError(f"{test_path}: {what} id {int(test[bad][0, col])} is outside the id range of "
                            f"{train_path.name} (0..{size - 1})")
        if size > SPARSE_MIN:
            distinct = int(np.count_nonzero(np.bincount(train[:, col], minlength=size)))
            if size > SPARSE_FACTOR * distinct:
                raise CbnsError(f"{train_path}: {what} ids run up to {size - 1} but only {distinct:,} distinct "
                                f"{what}s occur; ids must be numbered from 0 without large gaps (a CSV table "
                                f"has its ids renumbered for you)")
    read = len(train) + len(test)
    train, test = unique_pairs(train, num_items), unique_pairs(test, num_items)
    rows.duplicates += read - len(train) - len(test)
    train_keys, test_keys = (pair_keys(p[:, 0], p[:, 1], num_items) for p in (train, test))  # both sorted
    at = np.minimum(np.searchsorted(train_keys, test_keys), max(len(train_keys) - 1, 0))
    overlap = train_keys[at] == test_keys if len(train_keys) else np.zeros(len(test_keys), dtype=bool)
    if overlap.any():
        u, i = (int(c) if ids is None else ids[c] for c, ids in zip(test[overlap][0], (user_ids, item_ids)))
        raise CbnsError(f"{test_path}: {int(overlap.sum())} (user, item) pair(s) also in {train_path.name}, "
                        f"e.g. ({u}, {i}); a test pair must not be a training pair")
    return Interactions(name, num_users, num_items, train, test, rows=rows)


def _find_table(path: Path, stem: str) -> Path | None:
    found = [path / f"{stem}{suffix}" for suffix in TABLE_SUFFIXES if (path / f"{stem}{suffix}").is_file()]
    if len(found) > 1:
        raise CbnsError(f"{path}: both {' and '.join(p.name for p in found)}; keep one {stem} table")
    return found[0] if found else None


def _lookup(table: Table, column: str, originals: np.ndarray, train_path: Path, read: ReadOptions) -> np.ndarray:
    """``[N]`` codes of ``table``'s ids in the sorted train ids ``originals``; every id must occur."""
    ids: IdColumn = getattr(table, column)
    at = np.minimum(np.searchsorted(originals, ids.originals), len(originals) - 1)
    found = originals[at] == ids.originals
    if not found.all():
        row = int(np.flatnonzero(~found[ids.codes])[0])
        value = ids.originals[ids.codes[row]]
        dropped = (" (after ", Opt("min_rating", f"{read.min_rating:g}"), ")") if read.min_rating is not None else ()
        raise CbnsError(f"{table.where(row)}: {column} {value!r} does not occur in the train table "
                        f"{train_path.name}", *dropped)
    return at[ids.codes].astype(np.int64)


def load_data(config, progress: bool = False) -> Interactions:
    """The dataset of ``config`` split as ``config.data.split`` says, with its validation split (carved
    from train for ``random``; made by the split itself for ``loo`` and ``temporal``), and the
    attribute tables named by ``user_features`` / ``item_features`` added to the dataset's own.
    With ``progress``, a load that takes more than a few seconds shows a progress bar on stderr."""
    read = ReadOptions.from_config(config.data)
    with LoadProgress(f"loading {Path(config.data.source).name or config.data.source}", enabled=progress) as bar:
        data = load_dataset(config.data.source, seed=config.training.seed, split=config.data.split,
                            valid_fraction=config.data.valid_fraction, read=read, progress=bar)
        if config.data.split == "random":
            bar.stage("carving the validation split")
            data = carve_validation(data, config.data.valid_fraction, config.training.seed)
        for side, num in (("user", data.num_users), ("item", data.num_items)):
            path = config[f"{side}_features"]
            if path:
                bar.stage(f"reading the {side} features")
                table = read_feature_file(path, side, config[f"{side}_feature_columns"],
                                          getattr(data, f"{side}_ids"), num)
                own = getattr(data, f"{side}_features")
                setattr(data, f"{side}_features", table if own is None else own.merged(table))
    return data
