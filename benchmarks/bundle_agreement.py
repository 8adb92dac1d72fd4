"""Does an exported bundle answer what ``cbns recommend`` answers on its run? (exact scoring)

    python benchmarks/bundle_agreement.py RUN_DIR [--bundle DIR] [--users N] [-k 20] [--threads 1]

1. ``cbns export RUN_DIR --to DIR`` (in a subprocess; skipped when ``--bundle`` names a bundle
   already written from this run);
2. ``cbns recommend RUN_DIR --exact --format json --user ...`` for the users (in a subprocess:
   the run's torch path, seen items excluded);
3. in this process, with ``import torch`` blocked: ``load_bundle(DIR, use_index=False)`` and the
   same users' top K from the bundle (numpy scoring, checksums verified on load).

Agreement: ``same_list`` = share of users whose K items are the same in the same order,
``same_set`` = the same items in any order, ``mean_overlap`` = mean |bundle & recommend| / K,
``max_score_diff`` = the largest difference between the two scores of an item both lists hold.
``onnx_max_abs_error`` is the export's check of the ONNX user tower against the torch tower
(recorded in the manifest; null for an ID user tower, which has no graph). Times are wall
seconds (the subprocesses are timed from outside). The last line of output is one JSON object.
"""
from __future__ import annotations

import argparse
import importlib.abc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing


class _NoTorch(importlib.abc.MetaPathFinder):
    """Refuses ``import torch`` in this process: the bundle must serve without it."""

    def find_spec(self, name, path, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"{name}: blocked, the bundle is served without torch")
        return None


def _cbns(*argv: str, threads: int) -> tuple[str, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "cbns", *argv], capture_output=True, text=True, env=env, cwd=REPO)
    if proc.returncode:
        sys.exit(f"cbns {argv[0]} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--bundle", type=Path, help="bundle directory (default: a temporary one)")
    parser.add_argument("--users", type=int, default=0, help="first N users of the run (default: all)")
    parser.add_argument("-k", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    sys.meta_path.insert(0, _NoTorch())
    import numpy as np

    from cbns.serve.bundle import load_bundle, read_manifest

    with tempfile.TemporaryDirectory() as scratch:
        bundle = args.bundle or Path(scratch) / "bundle"
        export_seconds = None
        if not (bundle / "manifest.json").is_file() or \
                read_manifest(bundle)["run"] != str(args.run_dir.resolve()):
            _, export_seconds = _cbns("export", str(args.run_dir), "--to", str(bundle), "--overwrite",
                                      "--threads", str(args.threads), threads=args.threads)
        manifest = read_manifest(bundle)
        start = time.perf_counter()
        rec = load_bundle(bundle, use_index=False, threads=args.threads)
        load_seconds = time.perf_counter() - start
        users = rec.user_map.to_ids(np.arange(len(rec.users) if not args.users else min(args.users, len(rec.users))))
        user_args = [a for u in users for a in ("--user", str(u))]
        out, recommend_seconds = _cbns("recommend", str(args.run_dir), *user_args, "-k", str(args.k), "--exact",
                                       "--format", "json", "--threads", str(args.threads), threads=args.threads)
        expected = json.loads(out)
        start = time.perf_counter()
        ranked = rec.recommend(list(users), k=args.k)
        query_seconds = time.perf_counter() - start
        got = ranked.to_json("user")
    same_list = same_set = overlap = 0
    max_diff = 0.0
    for mine, theirs in zip(got, expected, strict=True):
        assert mine["user"] == theirs["user"]
        a = [(x["item"], x["score"]) for x in mine["items"]]
        b = [(x["item"], x["score"]) for x in theirs["items"]]
        same_list += [i for i, _ in a] == [i for i, _ in b]
        same_set += {i for i, _ in a} == {i for i, _ in b}
        overlap += len({i for i, _ in a} & {i for i, _ in b}) / max(len(b), 1)
        scores = dict(b)
        max_diff = max([max_diff, *(abs(s - scores[i]) for i, s in a if i in scores)])
    n = len(expected)
    check = manifest["onnx_check"]
    print(json.dumps({
        "run": str(args.run_dir), "user_tower": manifest["user_tower"], "users": n, "items": manifest["num_items"],
        "k": args.k, "exclude_seen": True,
        "same_list": round(same_list / n, 6), "same_set": round(same_set / n, 6),
        "mean_overlap": round(overlap / n, 6), "max_score_diff": max_diff,
        "onnx_max_abs_error": check["max_abs_error"] if check else None,
        "onnx_check_queries": check["queries"] if check else None,
        "torch_imported_here": any(m == "torch" or m.startswith("torch.") for m in sys.modules),
        "export_seconds": round(export_seconds, 2) if export_seconds is not None else None,
        "bundle_load_seconds": round(load_seconds, 3), "bundle_query_seconds": round(query_seconds, 3),
        "recommend_cli_seconds": round(recommend_seconds, 2), "threads": args.threads,
    }))


if __name__ == "__main__":
    main()
