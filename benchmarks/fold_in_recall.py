"""How close does an ID-tower fold-in come to the stored rows it stands in for?

    python benchmarks/fold_in_recall.py RUN [RUN ...] [--users 1000] [--tune | --steps S --lr LR]

For each run (an ID user tower), the users with seen items are shuffled (``--seed``) and split in
two halves: validation users and held-out users (at most ``--users`` of each). A user's history is
their seen items (train + validation, the items the stored row was trained on). Each user is
ranked twice, seen items excluded both times: by the stored row (``recommend``) and by the fold-in
of the history (``recommend_history``, :mod:`cbns.serve.fold_in`). The figure is recall@20 of the
history query against the stored-row query: ``|top20(history) & top20(stored)| / 20``, averaged.
Test recall@20 of both queries (hits / the user's test items) is given beside it.

With ``--tune`` the steps and step size are chosen on the validation users of all runs together
(mean over runs of the validation figure; a grid of steps x lr), then the held-out users are
scored once with the choice. Without it, ``--steps`` / ``--lr`` (default: the library's defaults)
are scored on the held-out users. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cbns.data.loading import load_data
from cbns.ranking.topk import exact_top_k
from cbns.runs.run_dir import load_run_config
from cbns.serve import Recommender
from cbns.serve.fold_in import DEFAULT_LR, DEFAULT_STEPS, FoldInEncoder, fold_in

K = 20
STEP_GRID = (0, 5, 10, 20, 50, 100)
LR_GRID = (0.01, 0.03, 0.1, 0.2)


class RunUsers:
    """One run: its recommender, fold-in settings and validation / held-out users."""

    def __init__(self, run: Path, users: int, seed: int):
        self.run, self.config = run, load_run_config(run)
        if self.config.model.user_tower != "id":
            sys.exit(f"fold_in_recall.py: {run} has a {self.config.model.user_tower!r} user tower; fold-in is for 'id'")
        self.rec = Recommender.from_run(run, use_index=False)
        seen = self.rec.seen
        active = np.flatnonzero(np.diff(seen.indptr) > 0)
        order = np.random.default_rng(seed).permutation(active)
        half = len(order) // 2
        self.valid, self.held_out = np.sort(order[:half][:users]), np.sort(order[half:][:users])
        self.histories = {u: seen[u].indices.astype(np.int64) for u in np.concatenate([self.valid, self.held_out])}
        self.items = torch.from_numpy(self.rec.items)
        self.extra = self.rec.prior_column

    def fold(self, users, steps, lr, start=None):
        return fold_in(self.rec.items, [self.histories[u] for u in users], self.config.loss.temperature,
                       self.config.model.normalize, self.extra, steps, lr, start)

    def top(self, vectors, users):
        return exact_top_k(vectors, self.items, K, self.rec.seen[users])[1]

    def stored_top(self, users):
        return self.rec.recommend_rows(users, K).rows


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over rows of ``|a_row & b_row| / K``."""
    return float(np.mean([len(set(x) & set(y)) / K for x, y in zip(a, b)]))


def test_recall(run: RunUsers, users: np.ndarray, rows: np.ndarray) -> float:
    """Recall@20 of ``rows [len(users), K]`` against the users' test items (users without any skipped)."""
    if not hasattr(run, "test_sets"):
        data = load_data(run.config)
        run.test_sets = {}
        for u, i in data.test:
            run.test_sets.setdefault(int(u), set()).add(int(i))
    found = [len(set(r) & run.test_sets[u]) / len(run.test_sets[u]) for u, r in zip(users, rows) if u in run.test_sets]
    return float(np.mean(found))


def sweep(runs: list[RunUsers]) -> tuple[dict, int, float]:
    """Validation overlap of every (steps, lr) of the grid, and the best pair (mean over runs)."""
    grid = {}
    for lr in LR_GRID:
        per_run = []
        for run in runs:
            stored = run.stored_top(run.valid)
            vectors, done, scores = None, 0, []
            for steps in STEP_GRID:
                vectors = run.fold(run.valid, steps - done, lr, vectors)
                done = steps
                scores.append(overlap(run.top(vectors, run.valid), stored))
            per_run.append(scores)
        for at, steps in enumerate(STEP_GRID):
            grid[f"steps={steps},lr={lr}"] = [round(s[at], 4) for s in per_run]
    best = max(grid, key=lambda name: np.mean(grid[name]))
    steps, lr = (float(part.split("=")[1]) for part in best.split(","))
    return grid, int(steps), lr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--users", type=int, default=1000, help="at most this many validation and held-out users")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tune", action="store_true", help="choose steps and lr on the validation users")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--lr", type=float, default=DEFAULT_LR)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.process_time()
    runs = [RunUsers(run, args.users, args.seed) for run in args.runs]
    grid, steps, lr = sweep(runs) if args.tune else (None, args.steps, args.lr)
    result = {"k": K, "steps": steps, "lr": lr, "chosen_on": "validation users" if args.tune else "given", "runs": {}}
    for run in runs:
        users = run.held_out
        stored = run.stored_top(users)
        run.rec.user_encoder = FoldInEncoder(run.rec.items, run.config.loss.temperature, run.config.model.normalize,
                                             run.extra, steps, lr)
        history_ids = [run.rec.item_map.to_ids(run.histories[u]).tolist() for u in users]
        asked = run.rec.recommend_history(history_ids, K).rows
        mean_only = run.top(run.fold(users, 0, lr), users)
        result["runs"][str(run.run)] = {
            "data": run.config.data.source, "held_out_users": len(users), "validation_users": len(run.valid),
            "recall@20_vs_stored": round(overlap(asked, stored), 4),
            "recall@20_vs_stored_mean_of_history": round(overlap(mean_only, stored), 4),
            "test_recall@20_stored": round(test_recall(run, users, stored), 4),
            "test_recall@20_fold_in": round(test_recall(run, users, asked), 4),
            "test_recall@20_mean_of_history": round(test_recall(run, users, mean_only), 4)}
    if grid is not None:
        result["validation_grid"] = grid
    result["cpu_seconds"] = round(time.process_time() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
