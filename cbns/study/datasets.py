"""The data value of each study dataset; user slices are written once under ``OUT/data``."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cbns.data import load_dataset
from cbns.data.subset import user_subset, write_lightgcn_dir
from cbns.study.spec import DatasetSpec


def data_path(dataset: DatasetSpec, out: Path) -> str:
    """``dataset.source`` itself, or for a slice the LightGCN directory holding it (written on
    first use, reused afterwards: its ``slice.json`` records what it was cut from)."""
    if dataset.users is None:
        return dataset.source
    digest = hashlib.sha1(json.dumps(dataset.identity, sort_keys=True).encode()).hexdigest()[:8]
    folder = Path(out) / "data" / f"{dataset.label}-{digest}"
    marker = folder / "slice.json"
    if not marker.is_file():
        full = load_dataset(dataset.source, seed=dataset.seed)
        sliced = user_subset(full, dataset.users, dataset.seed)
        write_lightgcn_dir(sliced, folder)
        marker.write_text(json.dumps({**dataset.identity, "summary": sliced.summary()}, indent=2) + "\n")
    return str(folder.resolve())
