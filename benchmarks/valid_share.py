"""Does a smaller validation carve pay, judged on validation alone?

    python benchmarks/valid_share.py RUN_A RUN_B [RUN ...]

The runs must share their data, split and seed and differ in ``--valid-fraction``. The carves of one
seed are nested (:func:`cbns.data.holdout.holdout_mask` takes the first ``round(f * n_u)`` of one
seeded order of each user's pairs), so the smallest carve is held out of every run's training.
Every run's exported vectors are ranked on that smallest carve, its train pairs masked (the same
relevant and masked sets for all; the pairs a larger carve held out are masked too, though that
run never trained on them). The models then differ only in the pairs they trained on, and the
validation numbers say what the extra training pairs are worth, without looking at the test set.
Prints one line per run and a JSON line.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cbns.config import TrainConfig
from cbns.data.loading import load_data
from cbns.evaluation.ranking import full_ranking
from cbns.runs.run_dir import load_run_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    configs = [load_run_config(run) for run in args.runs]
    shared = ("data", "split", "seed", "min_rating")
    for name in shared:
        values = {str(c[name]) for c in configs}
        if len(values) > 1:
            sys.exit(f"valid_share.py: the runs differ in {name} ({', '.join(sorted(values))}); they must share "
                     f"{', '.join(shared)}")
    if configs[0].data.split != "random":
        sys.exit(f"valid_share.py: --split {configs[0].data.split} does not carve validation from train by a fraction")
    smallest = min(c.data.valid_fraction for c in configs)
    base = configs[0]
    small = load_data(TrainConfig(data=base.data.source, split=base.data.split, seed=base.training.seed,
                                  min_rating=base.data.min_rating,
                                  valid_fraction=smallest).validate())
    relevant, exclude = small.matrix("valid"), small.matrix("train")
    print(f"ranked on the {smallest:g} carve: {len(small.valid):,} pairs of {relevant.getnnz(1).astype(bool).sum():,} "
          f"users; masked: its {len(small.train):,} train pairs")
    out = {"carve": smallest, "pairs": len(small.valid), "runs": {}}
    for run, config in zip(args.runs, configs):
        users = torch.from_numpy(np.load(run / "user_embeddings.npy"))
        items = torch.from_numpy(np.load(run / "item_embeddings.npy"))
        metrics = full_ranking(users, items, relevant, exclude, ks=(20, 50))
        row = {k: round(metrics[k], 4) for k in ("recall@20", "ndcg@20", "recall@50")}
        print(f"{run}: --valid-fraction {config.data.valid_fraction:g}: recall@20 {row['recall@20']:.4f}  "
              f"ndcg@20 {row['ndcg@20']:.4f}  recall@50 {row['recall@50']:.4f}")
        out["runs"][str(run)] = {"valid_fraction": config.data.valid_fraction, **row}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
