import os
from pathlib import Path

import numpy as np
import pytest
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


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A finished one-epoch run directory on 40 random users of 30 items (LightGCN ids, no id files)."""
    from cbns.api import train
    from cbns.config import TrainConfig

    root = tmp_path_factory.mktemp("tiny-run")
    rng = np.random.default_rng(2)
    lines = [f"{u} " + " ".join(map(str, rng.choice(30, size=6, replace=False))) for u in range(40)]
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    (root / "test.txt").write_text("".join(f"{u} {next(i for i in range(30) if str(i) not in line.split()[1:])}\n"
                                           for u, line in enumerate(lines)))
    train(TrainConfig(data=str(root), sampler="cbns", memory_size=64, dim=4, batch_size=32, epochs=1, threads=1),
          root / "run", progress=False, verbose=False)
    return root / "run"


def copy_run(run: Path, to: Path) -> Path:
    """A copy of run directory ``run`` at ``to`` (to damage without touching the original)."""
    import shutil

    shutil.copytree(run, to)
    return to
