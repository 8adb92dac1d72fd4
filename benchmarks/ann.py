"""Queries per second and recall of the flat, ivf and hnsw item indexes against exact torch scoring.

    python benchmarks/ann.py RUN_DIR [--queries 5000] [-k 20] [--threads 1]
    python benchmarks/ann.py            # trains a tiny run on a slice of bundled Gowalla first

Everything is measured in this one process, on the same sampled users:

* exact: ``cbns.ranking.topk.exact_top_k`` (chunked torch matmul + topk), the reference top-K;
* flat / ivf / hnsw: ``ItemIndex`` with its default parameters (or the flags below).

Each timing is the fastest of ``--repeat`` runs. By default it is this process's CPU time with one
thread, so other jobs on a shared machine slow the run down without changing the numbers much
(they still share caches and memory bandwidth); ``--clock wall`` measures elapsed time instead.

Two workloads: ``search`` (plain top-K) and ``recommend`` (top-K with each user's train and
validation items excluded, which makes the indexes over-fetch k + n_seen candidates). Index recall
= mean |index top-K & exact top-K| / K. The last line of output is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from cbns.ranking.filtered_search import index_top_k
from cbns.ranking.index_spec import IndexSpec
from cbns.ranking.item_index import ItemIndex
from cbns.ranking.topk import exact_top_k
from cbns.runs.run_dir import load_run_config
from cbns.serve.embeddings import load_embeddings
from cbns.serve.seen_items import seen_items


def tiny_run(out: Path, users: int, epochs: int) -> Path:
    """Train a small run on the first ``users`` users of bundled Gowalla (LightGCN text in ``out``)."""
    from cbns.api import train
    from cbns.config import TrainConfig
    from cbns.data import load_dataset

    gowalla = load_dataset("gowalla")
    data = out / "data"
    data.mkdir(parents=True)
    train_pairs = gowalla.train[gowalla.train[:, 0] < users]
    items = np.unique(train_pairs[:, 1])
    test_pairs = gowalla.test[(gowalla.test[:, 0] < users) & np.isin(gowalla.test[:, 1], items)]
    for name, pairs in (("train.txt", train_pairs), ("test.txt", test_pairs)):
        pairs = np.stack([pairs[:, 0], np.searchsorted(items, pairs[:, 1])], axis=1)
        cuts = np.flatnonzero(np.diff(pairs[:, 0])) + 1
        lines = [" ".join(map(str, [g[0, 0], *g[:, 1]])) for g in np.split(pairs, cuts)]
        (data / name).write_text("\n".join(lines) + "\n")
    config = TrainConfig(data=str(data), sampler="inbatch", batch_size=1024, epochs=epochs, lr=0.02, threads=1)
    train(config, out / "run", progress=False)
    return out / "run"


def overlap(rows: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each exact list (padding excluded) found in the index list."""
    found = [len(set(r[r >= 0]) & set(t[t >= 0])) / max((t >= 0).sum(), 1) for r, t in zip(rows, truth)]
    return float(np.mean(found))


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def timed(fn, repeat: int = 1, clock: str = "wall"):
    """``(fn(), fastest of repeat timings in seconds)`` on ``clock``."""
    now = CLOCKS[clock]
    best = float("inf")
    for _ in range(repeat):
        start = now()
        out = fn()
        best = min(best, now() - start)
    return out, best


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir", nargs="?", help="a run directory (default: train a tiny one)")
    p.add_argument("--queries", type=int, default=5000, help="users sampled as queries (default: %(default)s)")
    p.add_argument("-k", type=int, default=20)
    p.add_argument("--threads", type=int, default=1, help="torch and faiss threads (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=3, help="timings repeated, fastest kept (default: %(default)s)")
    p.add_argument("--clock", choices=tuple(CLOCKS), default="cpu",
                   help="cpu = this process's CPU seconds (default; with --threads 1 it is the cost of the "
                        "queries, unaffected by other processes sharing the cores), wall = elapsed time")
    p.add_argument("--tiny-users", type=int, default=3000, help="users of the tiny run (default: %(default)s)")
    p.add_argument("--tiny-epochs", type=int, default=2)
    p.add_argument("--nprobe", type=int, help="ivf nprobe (default: the library default)")
    p.add_argument("--ef-search", type=int, help="hnsw efSearch (default: the library default)")
    args = p.parse_args()

    import faiss
    import torch

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    tmp = None
    if args.clock == "cpu" and args.threads != 1:
        p.error("--clock cpu sums the CPU time of all threads; use --threads 1 or --clock wall")
    if args.run_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="cbns-ann-")
        run, seconds = timed(lambda: tiny_run(Path(tmp.name), args.tiny_users, args.tiny_epochs))
        print(f"trained a tiny run on {args.tiny_users} Gowalla users in {seconds:.1f}s")
    else:
        run = Path(args.run_dir)
    users, items = load_embeddings(run)
    seen = seen_items(run, load_run_config(run), len(users), items)
    rng = np.random.default_rng(0)
    query = np.sort(rng.choice(len(users), size=min(args.queries, len(users)), replace=False))
    vectors, excluded = users[query], seen[query]
    print(f"run {run}: {len(users):,} users, {len(items):,} items, dim {items.shape[1]}; "
          f"{len(query):,} queries, k={args.k}, threads={args.threads}, {args.clock} clock, fastest of {args.repeat}")

    exact_top_k(vectors[:64], items, args.k)  # warm-up: first-call allocations out of the timing
    (_, truth_search), t_search = timed(lambda: exact_top_k(vectors, items, args.k), args.repeat, args.clock)
    (_, truth_rec), t_rec = timed(lambda: exact_top_k(vectors, items, args.k, excluded), args.repeat, args.clock)
    results = {"exact": {"build_s": 0.0, "search_qps": len(query) / t_search, "search_recall": 1.0,
                         "recommend_qps": len(query) / t_rec, "recommend_recall": 1.0}}
    specs = {"flat": IndexSpec("flat"), "ivf": IndexSpec("ivf", nprobe=args.nprobe),
             "hnsw": IndexSpec("hnsw", ef_search=args.ef_search)}
    described = {}
    for name, spec in specs.items():
        index = ItemIndex.build(items, spec)
        described[name] = index.spec.describe()
        index.search(vectors[:64], args.k)
        (_, rows), t_search = timed(lambda: index.search(vectors, args.k), args.repeat, args.clock)
        (_, rec_rows), t_rec = timed(lambda: index_top_k(index, vectors, items, args.k, excluded), args.repeat,
                                     args.clock)
        results[name] = {"build_s": index.build_seconds, "search_qps": len(query) / t_search,
                         "search_recall": overlap(rows, truth_search),
                         "recommend_qps": len(query) / t_rec, "recommend_recall": overlap(rec_rows, truth_rec)}

    print(f"\n{'method':44s} {'build s':>8s} {'search q/s':>11s} {'recall':>7s} {'recommend q/s':>14s} {'recall':>7s}")
    for name, r in results.items():
        print(f"{described.get(name, 'exact (torch matmul + topk)'):44s} {r['build_s']:8.2f} "
              f"{r['search_qps']:11,.0f} {r['search_recall']:7.4f} {r['recommend_qps']:14,.0f} "
              f"{r['recommend_recall']:7.4f}")
    summary = {"run": str(run), "users": len(users), "items": len(items), "dim": int(items.shape[1]),
               "queries": len(query), "k": args.k, "threads": args.threads, "repeat": args.repeat, "clock": args.clock,
               "indexes": {name: {"spec": described.get(name, "exact"),
                                  **{key: round(v, 4) for key, v in r.items()}} for name, r in results.items()}}
    print(json.dumps(summary))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
