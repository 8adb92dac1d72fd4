"""Reader for sequence files (the S3-Rec Amazon sets): one line per user, ``user item item ...``.

Items on a line are in time order; an event's time is its position on the line. Ids may be any
token; they are mapped to contiguous internal ids in sorted order (numerically when all are
integers). A file ``<stem>_item2attributes.json`` beside ``<stem>.txt`` (``{"item": [attr, ...]}``)
becomes the multi-valued item attribute ``attributes``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from cbns.data.events import EventLog
from cbns.data.features import FeatureTable, multi_column
from cbns.data.readers.file_checks import require_file
from cbns.data.readers.id_columns import remap_ids
from cbns.errors import CbnsError

SEQUENCE_SUFFIX = ".txt"
ATTRIBUTES_SUFFIX = "_item2attributes.json"


def attributes_path(path: Path) -> Path:
    return path.with_name(path.stem + ATTRIBUTES_SUFFIX)


def load_sequences(path: Path) -> EventLog:
    """The events of a sequence file, with the item attributes when their JSON file is beside it."""
    require_file(path)
    users, items, positions = [], [], []
    with open(path, "rb") as fh:
        for raw in fh:
            tokens = raw.decode("utf-8", errors="replace").split()
            if len(tokens) < 2:
                continue  # a blank line, or a user without items
            users.extend([tokens[0]] * (len(tokens) - 1))
            items.extend(tokens[1:])
            positions.extend(range(len(tokens) - 1))
    if not items:
        raise CbnsError(f"{path}: no (user, item) events in the file")
    user_codes, user_ids = remap_ids(_as_ids(users))
    item_codes, item_ids = remap_ids(_as_ids(items))
    log = EventLog(path.stem, len(user_ids), len(item_ids), user_codes, item_codes,
                   np.asarray(positions, dtype=np.float64), user_ids, item_ids)
    attrs = attributes_path(path)
    if attrs.is_file():
        log.item_features = read_item_attributes(attrs, item_ids)
    return log


def read_item_attributes(path: Path, item_ids: np.ndarray) -> FeatureTable:
    """``{"item": [attribute, ...]}`` as one multi-valued column over the internal item ids."""
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CbnsError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict) or not all(isinstance(v, list) for v in raw.values()):
        raise CbnsError(f"{path}: expected a mapping of item id to a list of attribute ids")
    lists = [raw.get(str(item), []) for item in item_ids]
    return FeatureTable(len(item_ids), [multi_column("attributes", lists)])


def _as_ids(tokens: list[str]) -> pd.Series:
    """Integers when every token is one (so that ``10`` sorts after ``9``), strings otherwise (an
    object array of ``str``, as the table readers give: pandas 3 would make ``astype(str)`` a
    ``StringDtype`` that numpy cannot hold)."""
    series = pd.Series(tokens, dtype=object)
    numbers = pd.to_numeric(series, errors="coerce")
    if not numbers.isna().any() and (numbers == numbers.round()).all():
        return numbers.astype(np.int64)
    return series
