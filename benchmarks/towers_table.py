"""Print a markdown table of run directories written by ``cbns train`` (the docs/towers.md rows).

usage: python benchmarks/towers_table.py [--mean] RUN_DIR [RUN_DIR ...]

With ``--mean``, runs whose names differ only in a ``-sN`` seed tag are one row: the mean and the
standard deviation over seeds of every metric (the number of seeds in the last column).
"""
from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

import yaml

HEAD = ("| user / item tower | sampler | B | M | negatives / row | best epoch | valid HR@20 | valid NDCG@20 "
        "| test HR@20 | test NDCG@20 | s / epoch | run |")
METRICS = (("valid", "hit@20"), ("valid", "ndcg@20"), ("test", "hit@20"), ("test", "ndcg@20"))


def read(run: Path) -> tuple[dict, dict]:
    return yaml.safe_load((run / "config.yaml").read_text()), json.loads((run / "metrics.json").read_text())


def settings(cfg: dict) -> str:
    bank = cfg["memory_size"] if cfg["sampler"] == "cbns" else 0
    joint = cfg["sampler"] == "cbns" and cfg["item_side"] != "split"
    sampler = cfg["sampler"] + (f" ({cfg['item_side']})" if joint else "")
    sampler += " streaming q" if cfg["item_frequency"] == "streaming" else ""
    return (f"| {cfg['user_tower']} / {cfg['item_tower']} | {sampler} | {cfg['batch_size']} | {bank or '-'} "
            f"| {cfg['batch_size'] - 1 + bank}")


def row(run: Path) -> str:
    cfg, m = read(run)
    values = " | ".join(f"{m[part][name]:.4f}" for part, name in METRICS)
    return (f"{settings(cfg)} | {m['best_epoch']}/{m['epochs_run']} | {values} "
            f"| {m['seconds_per_epoch']:.1f} | `{run.name}` |")


def mean_row(runs: list[Path]) -> str:
    read_all = [read(r) for r in runs]
    cfg = read_all[0][0]
    cells = []
    for part, name in METRICS:
        xs = [m[part][name] for _, m in read_all]
        sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
        cells.append(f"{statistics.mean(xs):.4f} ± {sd:.4f}")
    epochs = "/".join(str(m["best_epoch"]) for _, m in read_all)
    seconds = statistics.mean(m["seconds_per_epoch"] for _, m in read_all)
    name = re.sub(r"-s\d+", "", runs[0].name)
    return f"{settings(cfg)} | {epochs} | {' | '.join(cells)} | {seconds:.1f} | `{name}` x{len(runs)} |"


if __name__ == "__main__":
    args = sys.argv[1:]
    mean = "--mean" in args
    runs = [Path(a) for a in args if a != "--mean" and (Path(a) / "metrics.json").is_file()]
    print(HEAD)
    print("|" + "---|" * (HEAD.count("|") - 1))
    if not mean:
        for run in runs:
            print(row(run))
    else:
        groups: dict[str, list[Path]] = {}
        for run in runs:
            groups.setdefault(re.sub(r"-s\d+", "", run.name.rstrip("/")), []).append(run)
        for group in groups.values():
            print(mean_row(group))
