"""Recall/NDCG@20 of a finished run's vectors under each popularity-prior strength BETA, on
validation and (as a diagnostic, never for selection) on test.

    python benchmarks/prior_sweep.py runs/gowalla --parts valid,test --betas 0,0.1,0.2,0.3

Ranks by ``s(u, i) / T + BETA * log(1 + train count(i))`` from the exported embeddings (the prior
that the run chose is taken out of their last column first; a learned item bias stays in the score),
with the run's own split and masking.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from cbns.data.loading import load_data
from cbns.evaluation.ranking import full_ranking, ranking_matrices
from cbns.model.popularity_prior import strip_prior
from cbns.runs.run_dir import load_run_config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--parts", default="valid,test")
    parser.add_argument("--betas", default="0,0.1,0.2,0.3,0.4,0.5,0.7,1.0")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = load_run_config(args.run)
    data = load_data(config)
    users = np.load(args.run / "user_embeddings.npy")
    items = np.load(args.run / "item_embeddings.npy")
    # The run's own prior comes out of the last column; a learned item bias stays in it (the users'
    # column of ones, divided by T below like the rest, puts it back in logit units).
    chosen = json.loads((args.run / "metrics.json").read_text()).get("popularity_prior", {}).get("beta", 0)
    items = strip_prior(items, data.item_counts(), chosen, config.loss.temperature)
    log_count = np.log1p(data.item_counts()).astype(np.float32)[:, None]
    scaled_users = torch.from_numpy(np.hstack([users / config.loss.temperature, np.ones((len(users), 1), np.float32)]))
    counts = data.item_counts()
    for part in args.parts.split(","):
        pairs = getattr(data, part)
        print(f"{part}: {len(pairs) / data.num_users:.2f} items per user, mean log(1 + train count) of its "
              f"items {np.log1p(counts[pairs[:, 1]]).mean():.2f}")
    print("| part | BETA | recall@20 | ndcg@20 |\n|---|---|---|---|")
    for part in args.parts.split(","):
        relevant, exclude = ranking_matrices(data, part)
        for beta in (float(b) for b in args.betas.split(",")):
            scored_items = torch.from_numpy(np.hstack([items, beta * log_count]))
            m = full_ranking(scaled_users, scored_items, relevant, exclude, [20])
            print(f"| {part} | {beta:g} | {m['recall@20']:.4f} | {m['ndcg@20']:.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
