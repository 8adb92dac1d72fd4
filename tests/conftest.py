import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def gowalla_slice(tmp_path_factory) -> Path:
    """A LightGCN directory with the first 400 users of the bundled Gowalla, items renumbered."""
    from cbns.data import load_dataset

    full = load_dataset("gowalla")
    train = full.train[full.train[:, 0] < 400]
    test = full.test[full.test[:, 0] < 400]
    items, train_items = np.unique(train[:, 1], return_inverse=True)
    test = test[np.isin(test[:, 1], items)]
    test_items = np.searchsorted(items, test[:, 1])
    out = tmp_path_factory.mktemp("gowalla400")
    for name, users, its in (("train.txt", train[:, 0], train_items), ("test.txt", test[:, 0], test_items)):
        lines = [" ".join(map(str, [u, *its[users == u]])) for u in np.unique(users)]
        (out / name).write_text("\n".join(lines) + "\n")
    return out


def brute_force_metrics(user_emb, item_emb, relevant_pairs, exclude_pairs, k):
    """Recall@k and NDCG@k with numpy loops, independent of cbns.evaluation.metrics."""
    scores = user_emb @ item_emb.T
    for u, i in exclude_pairs:
        scores[u, i] = -np.inf
    rel = {}
    for u, i in relevant_pairs:
        rel.setdefault(int(u), set()).add(int(i))
    recall, ndcg = [], []
    for u, items in rel.items():
        top = np.argsort(-scores[u], kind="stable")[:k]
        hits = np.array([t in items for t in top], dtype=float)
        recall.append(hits.sum() / len(items))
        ndcg.append((hits / np.log2(np.arange(2, k + 2))).sum() / (1 / np.log2(np.arange(2, min(len(items), k) + 2))).sum())
    return float(np.mean(recall)), float(np.mean(ndcg))


def fuzz_settings(default_examples: int = 100):
    """Hypothesis settings for the fuzz tests: ``default_examples`` per test in CI (derandomised, so
    CI is reproducible), or ``CBNS_FUZZ_EXAMPLES`` random ones for a long exploratory run."""
    from hypothesis import HealthCheck, settings

    long_run = os.environ.get("CBNS_FUZZ_EXAMPLES")
    return settings(max_examples=int(long_run) if long_run else default_examples, deadline=None,
                    derandomize=not long_run, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


def write_tiny_lightgcn(root: Path, seed: int = 2) -> Path:
    """LightGCN files in ``root``: 40 users with 6 of 30 items each to train on (drawn with
    ``seed``) and one more to test."""
    rng = np.random.default_rng(seed)
    lines = [f"{u} " + " ".join(map(str, rng.choice(30, size=6, replace=False))) for u in range(40)]
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    (root / "test.txt").write_text("".join(f"{u} {next(i for i in range(30) if str(i) not in line.split()[1:])}\n"
                                           for u, line in enumerate(lines)))
    return root


def train_features_run(root: Path, users_csv: str, epochs: int = 1) -> Path:
    """A small feature-tower run on the LightGCN files in ``root`` with ``users_csv`` (the text of
    a users.csv written beside them); returns its run directory."""
    from cbns.api import train
    from cbns.config import TrainConfig

    (root / "users.csv").write_text(users_csv)
    train(TrainConfig(data=str(root), user_tower="features", user_features=str(root / "users.csv"), dim=4,
                      hidden_dim=6, batch_size=32, epochs=epochs, threads=1), root / "run", progress=False, verbose=False)
    return root / "run"


#: metrics.json keys that measure the machine (wall-clock times, peak memory), which no two runs share.
TIMING = ("train_seconds", "seconds_per_epoch", "seconds", "phases", "phase_seconds_per_epoch", "peak_memory")


def without_timing(value):
    """``metrics.json`` minus :data:`TIMING`, at any depth."""
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A finished one-epoch run directory on 40 random users of 30 items (LightGCN ids, no id files)."""
    from cbns.api import train
    from cbns.config import TrainConfig

    root = write_tiny_lightgcn(tmp_path_factory.mktemp("tiny-run"))
    train(TrainConfig(data=str(root), sampler="cbns", memory_size=64, dim=4, batch_size=32, epochs=1, threads=1),
          root / "run", progress=False, verbose=False)
    return root / "run"


def copy_run(run: Path, to: Path) -> Path:
    """A copy of run directory ``run`` at ``to`` (to damage without touching the original)."""
    import shutil

    shutil.copytree(run, to)
    return to


@pytest.fixture(scope="session")
def valid_run(tmp_path_factory) -> Path:
    """A one-epoch run on 40 users of 30 items (LightGCN ids) with a validation split carved from
    each user's 8 train items (``valid_fraction`` 0.25: 2 of them). Read-only: copy it to change it."""
    from cbns.api import train
    from cbns.config import TrainConfig

    root = tmp_path_factory.mktemp("valid-run")
    rng = np.random.default_rng(3)
    picks = [rng.choice(30, size=9, replace=False) for _ in range(40)]
    (root / "train.txt").write_text("".join(f"{u} " + " ".join(map(str, p[:8])) + "\n" for u, p in enumerate(picks)))
    (root / "test.txt").write_text("".join(f"{u} {p[8]}\n" for u, p in enumerate(picks)))
    train(TrainConfig(data=str(root), sampler="inbatch", dim=4, batch_size=32, epochs=1, threads=1,
                      valid_fraction=0.25), root / "run", progress=False, verbose=False)
    return root / "run"


def train_file_sets(run: Path) -> dict[int, set[int]]:
    """Brute force from the ``train.txt`` beside a :func:`valid_run` (LightGCN lines ``user item
    item ...``): the validation split is carved out of these items, so train + validation is every
    item of the user's line."""
    lines = (run.parent / "train.txt").read_text().split("\n")
    return {int(u): {int(i) for i in items} for u, *items in (line.split() for line in lines if line)}


def as_sets(matrix: sp.csr_matrix) -> dict[int, set[int]]:
    """``{row: its non-zero columns}`` of the rows that have any."""
    return {u: set(matrix[u].indices.tolist()) for u in range(matrix.shape[0]) if matrix[u].nnz}
