"""Reader for the GroupLens MovieLens-100k directory: ratings with times, user and item attributes.

Files (``|``-separated, Latin-1): ``u.data`` (tab-separated ``user item rating unix_time``),
``u.user`` (``user | age | gender | occupation | zip``), ``u.item`` (``item | title | release date
| video release | url | 19 genre flags``). Every rating is an interaction (implicit feedback),
unless ``min_rating`` keeps only those rated at least that.

User attributes: age band (the MovieLens-1M bands), gender, occupation, first character of the zip
code. Item attributes: genres (multi-hot), release decade.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cbns.data.events import EventLog
from cbns.data.features import FeatureTable, categorical_column, multi_column
from cbns.data.readers.file_checks import require_file
from cbns.data.readers.id_columns import remap_ids
from cbns.data.row_rules import rating_rule
from cbns.errors import CbnsError, Opt

#: Upper bounds of the MovieLens-1M age bands: <18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+.
AGE_BANDS = (18, 25, 35, 45, 50, 56)
GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
          "War", "Western")


def is_ml100k_dir(path: Path) -> bool:
    return path.is_dir() and (path / "u.data").is_file()


def load_ml100k(path: Path, min_rating: float | None = None) -> EventLog:
    """The ratings (all 100,000, or those >= ``min_rating``) as timed events, with the user and item
    attribute tables; users and items are those of the ratings kept."""
    ratings = _read(path / "u.data", "\t", ["user", "item", "rating", "time"])
    keep, rows = rating_rule(ratings["rating"].to_numpy(dtype=np.float64), min_rating, len(ratings))
    if keep is not None:
        ratings = ratings[keep]
    if not len(ratings):
        raise CbnsError(Opt("min_rating", f"{min_rating:g}"), f": no rating in {path / 'u.data'} is that high "
                        f"(they run from {rows.rating_range[0]:g} to {rows.rating_range[1]:g})")
    user_codes, user_ids = remap_ids(ratings["user"].to_numpy())
    item_codes, item_ids = remap_ids(ratings["item"].to_numpy())
    log = EventLog(path.name, len(user_ids), len(item_ids), user_codes, item_codes,
                   ratings["time"].to_numpy(dtype=np.float64), user_ids, item_ids, rows=rows)
    if (path / "u.user").is_file():
        log.user_features = _user_features(path / "u.user", user_ids)
    if (path / "u.item").is_file():
        log.item_features = _item_features(path / "u.item", item_ids)
    return log


def _read(path: Path, sep: str, names: list[str]) -> pd.DataFrame:
    require_file(path)
    try:
        frame = pd.read_csv(path, sep=sep, header=None, encoding="latin-1", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc
        raise CbnsError(f"{path}: cannot parse ({first})") from None
    if frame.shape[1] < len(names):
        raise CbnsError(f"{path}: expected at least {len(names)} fields per line, got {frame.shape[1]}")
    frame.columns = [*names, *[f"f{k}" for k in range(len(names), frame.shape[1])]]
    for col in ("user", "item", "rating", "time", "age"):
        if col in names:
            values = pd.to_numeric(frame[col], errors="coerce")
            bad = values.isna().to_numpy()
            if bad.any():
                row = int(np.argmax(bad))
                raise CbnsError(f"{path}:{row + 1}: {col} {frame[col].iloc[row]!r} is not a number")
            frame[col] = values.astype(np.int64)
    return frame


def _rows_for(frame: pd.DataFrame, key: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row of ``frame`` for each internal id, found mask)."""
    index = pd.Index(frame[key].to_numpy())
    rows = index.get_indexer(ids)
    return np.maximum(rows, 0), rows >= 0


def _user_features(path: Path, user_ids: np.ndarray) -> FeatureTable:
    frame = _read(path, "|", ["user", "age", "gender", "occupation", "zip"])
    rows, found = _rows_for(frame, "user", user_ids)
    sub = frame.iloc[rows]
    band = np.searchsorted(np.array(AGE_BANDS), sub["age"].to_numpy(), side="right")
    zip_region = [z[:1] if z else None for z in sub["zip"]]
    return FeatureTable(len(user_ids), [
        categorical_column("age_band", band.tolist(), found),
        categorical_column("gender", sub["gender"].tolist(), found),
        categorical_column("occupation", sub["occupation"].tolist(), found),
        categorical_column("zip_region", zip_region, found),
    ])


def _item_features(path: Path, item_ids: np.ndarray) -> FeatureTable:
    frame = _read(path, "|", ["item", "title", "release", "video", "url", *GENRES])
    rows, found = _rows_for(frame, "item", item_ids)
    sub = frame.iloc[rows]
    flags = sub[list(GENRES)].to_numpy() == "1"
    genres = [[g for g, on in zip(GENRES, row) if on] for row in flags]
    years = pd.to_datetime(sub["release"], format="%d-%b-%Y", errors="coerce").dt.year
    decade = [None if np.isnan(y) else int(y) // 10 * 10 for y in years]
    return FeatureTable(len(item_ids), [
        multi_column("genres", genres, found),
        categorical_column("decade", decade, found),
    ])
