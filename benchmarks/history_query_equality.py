"""Does a history query give a trained user's stored top K when asked with that user's history?

    python benchmarks/history_query_equality.py RUN [-k 20]

For a pooled or GRU run: each user's history is their train and validation events (the pairs of
the run's dataset, loaded as its config says) ordered by time, ties train before validation and
then in the order the dataset holds them, which is the order the export read them in; built here
from the pairs and their times, not by the library's history code. Every user is asked twice, by
id (the stored row) and by that history; prints one JSON line: how many top-K lists are identical,
the largest score difference, and the same for the history sorted by time with ties in the other
order (validation first), which a GRU reads as another sequence.
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
from cbns.runs.run_dir import load_run_config
from cbns.serve import Recommender


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("-k", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rec = Recommender.from_run(args.run, use_index=False)
    data = load_data(load_run_config(args.run))
    parts = [(pairs, data.times(name), at) for at, (name, pairs) in enumerate((("train", data.train),
                                                                               ("valid", data.valid)))]
    result = {"run": str(args.run), "users": len(rec.users), "k": args.k}
    stored = rec.recommend_rows(np.arange(len(rec.users)), args.k)
    for label, tie_first in (("", 0), ("_valid_first_on_ties", 1)):
        users = np.concatenate([p[:, 0] for p, _, _ in parts])
        items = np.concatenate([p[:, 1] for p, _, _ in parts])
        times = np.concatenate([t for _, t, _ in parts])
        part = np.concatenate([np.full(len(p), at if not tie_first else 1 - at) for p, _, at in parts])
        order = np.lexsort((np.arange(len(users)), part, times, users))  # by user, time, part, position
        bounds = np.searchsorted(users[order], np.arange(len(rec.users) + 1))
        histories = [rec.item_map.to_ids(items[order[bounds[u]:bounds[u + 1]]]).tolist()
                     for u in range(len(rec.users))]
        clock = time.process_time()
        asked = rec.recommend_history(histories, args.k)
        seconds = time.process_time() - clock
        result[f"identical_top_k{label}"] = int((asked.rows == stored.rows).all(axis=1).sum())
        result[f"max_abs_score_difference{label}"] = float(np.abs(asked.scores - stored.scores).max())
        if not label:
            result["history_lengths"] = [min(map(len, histories)), max(map(len, histories))]
            result["cpu_ms_per_history_query"] = round(seconds / len(histories) * 1000, 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
