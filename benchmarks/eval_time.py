"""CPU time of full-ranking evaluation, this checkout against another commit, side by side.

The modules that rank (``cbns/ranking/topk.py``, ``cbns/ranking/row_membership.py``,
``cbns/evaluation/metrics.py``, ``cbns/evaluation/ranking.py``) are read from ``--against`` with
``git show`` and loaded beside this checkout's, and both rank the same part of the same dataset
with the same seeded random embeddings, alternating, ``--repeats`` times each. Prints one JSON line:
the process CPU seconds of each (median and minimum), their ratio (this checkout / the other), and
the largest difference between the two metric dicts (they must agree to float rounding).

    python benchmarks/eval_time.py --data gowalla --part valid --against main --repeats 5
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: The modules of the ranking path, in import order, with the names they are loaded under.
MODULES = [("cbns/evaluation/metrics.py", "cbns.evaluation.metrics"),
           ("cbns/ranking/row_membership.py", "cbns.ranking.row_membership"),
           ("cbns/ranking/topk.py", "cbns.ranking.topk"),
           ("cbns/evaluation/ranking.py", "cbns.evaluation.ranking")]


def load_other(rev: str):
    """``full_ranking`` of commit ``rev``, its ranking modules loaded under the prefix ``_other_``."""
    loaded = None
    for path, name in MODULES:
        source = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:{path}"], check=True,
                                capture_output=True, text=True).stdout
        for _, other in MODULES:
            source = source.replace(f"from {other} import", f"from _other_{other.replace('.', '_')} import")
        alias = f"_other_{name.replace('.', '_')}"
        spec = importlib.util.spec_from_loader(alias, loader=None)
        module = importlib.util.module_from_spec(spec)
        sys.modules[alias] = module
        exec(compile(source, f"{rev}:{path}", "exec"), module.__dict__)
        loaded = module
    return loaded.full_ranking


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="gowalla", help="a dataset spec as cbns train --data takes it")
    parser.add_argument("--part", default="valid", choices=("valid", "test"))
    parser.add_argument("--against", default="main", help="the commit to compare with")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from cbns.data import load_dataset
    from cbns.data.holdout import carve_validation
    from cbns.evaluation.ranking import full_ranking, ranking_matrices

    other = load_other(args.against)
    data = load_dataset(args.data)
    if not len(data.valid):  # as cbns train carves it by default
        data = carve_validation(data, 0.1, 0)
    relevant, exclude = ranking_matrices(data, args.part)
    gen = torch.Generator().manual_seed(0)
    users = torch.randn(data.num_users, args.dim, generator=gen) / args.dim ** 0.5
    items = torch.randn(data.num_items, args.dim, generator=gen)
    times = {"this": [], "other": []}
    results = {}
    for _ in range(args.repeats):
        for name, fn in (("this", full_ranking), ("other", other)):
            start = time.process_time()
            results[name] = fn(users, items, relevant, exclude, (20, 50))
            times[name].append(time.process_time() - start)
    diff = max(abs(results["this"][k] - results["other"][k]) for k in results["this"])
    med = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({"data": args.data, "part": args.part, "against": args.against, "repeats": args.repeats,
                      "users": int((np.diff(relevant.indptr) > 0).sum()), "items": data.num_items,
                      "cpu_s_median": med, "cpu_s_min": {k: min(v) for k, v in times.items()},
                      "ratio_median": med["this"] / med["other"], "max_metric_diff": diff,
                      "recall@20": results["this"]["recall@20"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
