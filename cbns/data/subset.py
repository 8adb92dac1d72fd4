"""A user subset of a dataset, written as a LightGCN directory: quick trials on a slice of real data."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cbns.data.interactions import Interactions


def user_subset(data: Interactions, users: int, seed: int = 0) -> Interactions:
    """The pairs of ``users`` users drawn uniformly (seeded) from those with training pairs.

    Users and items are renumbered ``0..n-1`` in order of their old ids; items that occur in no
    kept training pair are dropped, and so are test pairs on them (a model cannot rank an item it
    has no row for). With ``users`` >= the number of users, every user is kept.
    """
    candidates = np.unique(data.train[:, 0])
    rng = np.random.default_rng(seed)
    kept = np.sort(rng.choice(candidates, size=min(users, len(candidates)), replace=False))
    train = data.train[np.isin(data.train[:, 0], kept)]
    items = np.unique(train[:, 1])
    test = data.test[np.isin(data.test[:, 0], kept) & np.isin(data.test[:, 1], items)]
    renumber = lambda col, ids: np.searchsorted(ids, col)  # noqa: E731  ids sorted, col drawn from ids
    train = np.stack([renumber(train[:, 0], kept), renumber(train[:, 1], items)], axis=1)
    test = np.stack([renumber(test[:, 0], kept), renumber(test[:, 1], items)], axis=1)
    return Interactions(f"{data.name}-{len(kept)}u", len(kept), len(items), train, test)


def write_lightgcn_dir(data: Interactions, out: Path) -> Path:
    """Write ``train.txt`` and ``test.txt`` (``user item item ...`` per line) into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, pairs in (("train.txt", data.train), ("test.txt", data.test)):
        pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
        users, starts = np.unique(pairs[:, 0], return_index=True)
        groups = np.split(pairs[:, 1], starts[1:])
        lines = [" ".join(map(str, [u, *g])) for u, g in zip(users, groups)]
        tmp = out / f".{name}.tmp"
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(out / name)
    return out
