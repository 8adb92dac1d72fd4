"""Train every sampler on one dataset at one batch size and print a Markdown results table.

    python benchmarks/compare_samplers.py --spec benchmarks/gowalla_samplers.yaml --out runs/compare

The spec lists the shared options and, per sampler, the options tuned for it on the validation
split. Each run writes its own run directory under --out; a finished run (metrics.json present)
is read back instead of retrained, so the command resumes after an interruption.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from cbns.api import train
from cbns.config import TrainConfig, check_option


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", required=True, help="YAML: {shared: {...}, runs: {label: {...}}}")
    parser.add_argument("--out", required=True, help="directory for the run directories")
    parser.add_argument("--only", nargs="*", help="labels to run (default: all)")
    args = parser.parse_args(argv)
    spec = yaml.safe_load(Path(args.spec).read_text())
    shared = spec.get("shared", {})
    rows = []
    for label, options in spec["runs"].items():
        if args.only and label not in args.only:
            continue
        out = Path(args.out) / label
        if not (out / "metrics.json").exists():
            merged = {k: check_option(k, v, args.spec) for k, v in {**shared, **options}.items()}
            print(f"== {label}: {merged}", file=sys.stderr, flush=True)
            train(TrainConfig(**merged), out, progress=False)
        metrics = json.loads((out / "metrics.json").read_text())
        config = yaml.safe_load((out / "config.yaml").read_text())
        rows.append((label, config, metrics, without_prior(out, config, metrics)))
    print(table(rows))
    return 0


def without_prior(out: Path, config: dict, metrics: dict) -> dict | None:
    """Test metrics of the same vectors ranked without the popularity prior (taken out of the last
    column; a learned item bias stays), for the table's ablation column; None when the run had no prior."""
    beta = (metrics.get("popularity_prior") or {}).get("beta", 0)
    if beta <= 0:
        return None
    import numpy as np
    import torch

    from cbns.data.loading import load_data
    from cbns.evaluation.ranking import full_ranking, ranking_matrices
    from cbns.model.popularity_prior import strip_prior

    data = load_data(TrainConfig(**config))
    users = torch.from_numpy(np.load(out / "user_embeddings.npy"))
    items = torch.from_numpy(strip_prior(np.load(out / "item_embeddings.npy"), data.item_counts(), beta,
                                         config["temperature"]))
    return full_ranking(users, items, *ranking_matrices(data, "test"), ks=[20])


def table(rows) -> str:
    head = ("| run | sampler | B | M | T | lr | prior beta | valid R@20 | test R@20 | test N@20 | test R@50 "
            "| test R@20 / N@20 without prior | best epoch | s/epoch |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for label, c, m, raw in rows:
        mem = str(c["memory_size"]) if c["sampler"] == "cbns" else "-"
        beta = (m.get("popularity_prior") or {}).get("beta", 0.0)
        ablation = f"{raw['recall@20']:.4f} / {raw['ndcg@20']:.4f}" if raw else "-"
        lines.append(f"| {label} | {c['sampler']} | {c['batch_size']} | {mem} | {c['temperature']} | {c['lr']} | "
                     f"{beta:g} | {m['valid']['recall@20']:.4f} | {m['test']['recall@20']:.4f} | "
                     f"{m['test']['ndcg@20']:.4f} | {m['test']['recall@50']:.4f} | {ablation} | "
                     f"{m['best_epoch']}/{m['epochs_run']} | {m['seconds_per_epoch']:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
