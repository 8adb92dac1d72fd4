"""Recompute a finished run's test Recall@20 and NDCG@20 from its exported vectors alone.

    python benchmarks/verify_export.py runs/gowalla

Independent of ``cbns.evaluation.metrics`` and of the model: numpy scores ``user_embeddings @
item_embeddings.T``, the user's train and validation items are set to -inf, the top 20 are taken
by sorting, and the metrics are the textbook ones (recall = hits / |test items|; NDCG with binary
gains and the ideal DCG over min(|test items|, 20)). Only the split comes from cbns (the run's own
data, seed and validation fraction). Prints both results and exits 1 when they differ.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from cbns.data.loading import load_data
from cbns.runs.run_dir import load_run_config

K = 20


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--chunk", type=int, default=2000, help="users scored at once (default: %(default)s)")
    args = parser.parse_args(argv)
    data = load_data(load_run_config(args.run))
    users = np.load(args.run / "user_embeddings.npy")
    items = np.load(args.run / "item_embeddings.npy")
    seen: dict[int, list[int]] = {}
    for u, i in np.concatenate([data.train, data.valid]):
        seen.setdefault(int(u), []).append(int(i))
    relevant: dict[int, set[int]] = {}
    for u, i in data.test:
        relevant.setdefault(int(u), set()).add(int(i))
    order = sorted(relevant)
    discount = 1.0 / np.log2(np.arange(2, K + 2))
    recall, ndcg = [], []
    for start in range(0, len(order), args.chunk):
        chunk = order[start:start + args.chunk]
        scores = users[chunk] @ items.T
        for row, u in enumerate(chunk):
            scores[row, seen.get(u, [])] = -np.inf
            top = np.argsort(-scores[row], kind="stable")[:K]
            hits = np.array([i in relevant[u] for i in top], dtype=float)
            recall.append(hits.sum() / len(relevant[u]))
            ndcg.append((hits * discount).sum() / discount[:min(len(relevant[u]), K)].sum())
    got = {"recall@20": float(np.mean(recall)), "ndcg@20": float(np.mean(ndcg))}
    stored = json.loads((args.run / "metrics.json").read_text())["test"]
    print(f"vectors {users.shape} x {items.shape}; {len(order):,} test users")
    for key, value in got.items():
        print(f"{key}: from the vectors {value:.6f}, metrics.json {stored[key]:.6f}")
    same = all(abs(got[k] - stored[k]) < 1e-5 for k in got)
    print("agree" if same else "DIFFER")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
