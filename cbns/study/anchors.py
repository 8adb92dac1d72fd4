"""Published full-ranking results (@20) for the shared datasets, to print beside ours.

Copied from the table of ``shared/data/README.md``. They follow the standard protocol (every
item ranked, training items masked) but chose their epoch on the test set and trained stronger
models to convergence, so they bound what a few epochs of MF can reach rather than match it.
"""
from __future__ import annotations

from pathlib import Path

#: dataset name -> [(model, Recall@20, NDCG@20)]
ANCHORS: dict[str, list[tuple[str, float, float]]] = {
    "gowalla": [("LightGCN", 0.1830, 0.1554), ("SimpleX", 0.1872, 0.1557), ("UltraGCN", 0.1862, 0.1580),
                ("BARS YouTubeDNN", 0.1754, 0.1473), ("MF-BPR", 0.1291, 0.1109)],
    "yelp2018": [("LightGCN", 0.0649, 0.0530), ("SimpleX", 0.0701, 0.0575), ("UltraGCN", 0.0683, 0.0561)],
    "amazon-cds": [("UltraGCN", 0.1622, 0.1043)],
    "ml-1m": [("UltraGCN", 0.2787, 0.2642)],
}


def anchors_for(source: str) -> tuple[str, list[tuple[str, float, float]]] | None:
    """The anchors of a data value: the bundled name, or a folder named like a shared dataset."""
    name = source if source in ANCHORS else Path(source).name
    return (name, ANCHORS[name]) if name in ANCHORS else None
