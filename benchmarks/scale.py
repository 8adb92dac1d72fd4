"""What a catalogue of millions costs: step time, memory, load time and ranking time per size.

For each item count of ``--items`` (default 40k, 400k and 4M) a synthetic dataset with the same
number of interactions (``--interactions``, default 8M) over ``--users`` users is written as a
Parquet table: user u drawn with probability proportional to ``1 / (u + 10)^0.8`` and item i to
``1 / (i + 10)^1.0`` (a few very active users and very popular items, a long tail), plus one row
for every item (a random user) so that the catalogue really holds every item. Each size then
runs in a fresh process (so the peak resident set is that size's own), with the default recipe
(``cbns train``'s defaults: CBNS with B 2048 and M 4096, width 256, the item bias, sparse
updates) unless told otherwise, one thread:

    load_seconds        wall-clock of ``cbns.data.load_data`` on the Parquet file
    step_ms             process CPU time per training step, the median of ``--steps`` steps taken
                        after ``--warmup`` steps (optimizer state allocated, bank full)
    eval_ms_per_user    process CPU time of one exact validation over ``--eval-users`` sampled
                        users against every item, per user
    peak_rss_bytes      the process's peak resident set (ru_maxrss), imports and data included
    state_bytes         parameters + optimizer state + the objective's buffers (the bank)
    rss_over_state      peak_rss_bytes / state_bytes

and the last line is one JSON object with every size and ``step_ratio_4m_over_40k`` (the largest
size's step time over the smallest's, both measured in this run). ``--sparse-updates false`` runs
the dense Adam of before, for the comparison (it needs a dense gradient and Adam state for every
row: about 4x the table in memory).

Usage::

    python benchmarks/scale.py                       # 40k, 400k, 4M items; about 10 minutes
    python benchmarks/scale.py --items 40000,400000 --sparse-updates false
    python benchmarks/scale.py --quick               # tiny sizes, a smoke run
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_dataset(path: Path, users: int, items: int, interactions: int, seed: int = 0) -> None:
    """The Parquet table of the module docstring: ``interactions`` rows, every item at least once."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    extra = interactions - items
    if extra < 0:
        raise SystemExit(f"--interactions {interactions:,} must be at least the largest --items ({items:,}): "
                         "every item gets a row")
    user_p = 1.0 / np.power(np.arange(users) + 10.0, 0.8)
    item_p = 1.0 / (np.arange(items) + 10.0)
    user = np.concatenate([rng.choice(users, extra, p=user_p / user_p.sum()), rng.integers(0, users, items)])
    item = np.concatenate([rng.choice(items, extra, p=item_p / item_p.sum()), rng.permutation(items)])
    order = rng.permutation(interactions)
    table = pa.table({"user": user[order].astype(np.int64), "item": item[order].astype(np.int64),
                      "timestamp": np.arange(interactions, dtype=np.int64)})
    pq.write_table(table, path)


def cpu_ms(fn) -> float:
    start = time.process_time()
    fn()
    return 1000 * (time.process_time() - start)


def child(args) -> dict:
    """One size, in this process: load, build, step, validate; the measurements as a dict."""
    import torch

    from cbns.api import assemble
    from cbns.cli.process_settings import set_threads
    from cbns.config import TrainConfig
    from cbns.data.loading import load_data
    from cbns.evaluation.evaluator import Evaluator
    from cbns.training.recipe import resolve
    from cbns.training.trainer import Trainer

    set_threads(args.threads)
    config = TrainConfig(data=str(args.child), threads=args.threads, dim=args.dim, batch_size=args.batch_size,
                         memory_size=args.memory_size, sparse_updates=args.sparse_updates == "true",
                         eval_users=args.eval_users, seed=0).validate()
    start = time.perf_counter()
    data = load_data(config, progress=False)
    load_seconds = time.perf_counter() - start
    config, _ = resolve(config, data.num_items, len(data.train))
    model, objective = assemble(config, data)
    trainer = Trainer(config, data, model, objective, progress=False, verbose=False)
    order = torch.Generator().manual_seed(0)
    rows = len(trainer.train_pairs)

    def step():
        index = torch.randint(0, rows, (config.sampler.batch_size,), generator=order)
        trainer.step(trainer.train_pairs[index])

    for _ in range(args.warmup):
        step()
    times = [cpu_ms(step) for _ in range(args.steps)]
    evaluator = Evaluator(config, data, settle=trainer.settle)
    eval_ms = cpu_ms(lambda: evaluator.evaluate(trainer.model, "valid"))
    evaluated = len(evaluator.users["valid"]) if evaluator.users["valid"] is not None else \
        int((np.diff(data.matrix("valid").indptr) > 0).sum())
    optimizer_state = trainer.optimizer.state_dict()

    def tensor_bytes(obj) -> int:
        if isinstance(obj, torch.Tensor):
            return obj.numel() * obj.element_size()
        if isinstance(obj, dict):
            return sum(tensor_bytes(v) for v in obj.values())
        if isinstance(obj, (list, tuple)):
            return sum(tensor_bytes(v) for v in obj)
        return 0

    state = tensor_bytes(model.state_dict()) + tensor_bytes(optimizer_state) + tensor_bytes(objective.state_dict())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"items": data.num_items, "users": data.num_users, "train_pairs": rows,
            "sampler": config.sampler.name, "sparse_updates": config.training.sparse_updates,
            "load_seconds": round(load_seconds, 2), "step_ms": round(statistics.median(times), 1),
            "step_ms_min": round(min(times), 1), "eval_ms_per_user": round(eval_ms / max(evaluated, 1), 3),
            "eval_users": evaluated, "peak_rss_bytes": peak, "state_bytes": state,
            "rss_over_state": round(peak / state, 3)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", default="40000,400000,4000000", help="item counts, comma-separated")
    parser.add_argument("--interactions", type=int, default=8_000_000)
    parser.add_argument("--users", type=int, default=30_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--memory-size", type=int, default=4096)
    parser.add_argument("--sparse-updates", choices=("true", "false"), default="true")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--eval-users", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke run")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args)))
        return 0
    if args.quick:
        args.items, args.interactions, args.users = "2000,20000", 60_000, 3_000
        args.batch_size, args.memory_size, args.dim, args.steps, args.warmup, args.eval_users = 256, 512, 32, 5, 3, 100
    sizes = [int(s) for s in args.items.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for items in sizes:
            path = Path(tmp) / f"items{items}.parquet"
            write_dataset(path, args.users, items, args.interactions)
            forwarded = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--quick"]
            if args.quick:
                forwarded += ["--batch-size", str(args.batch_size), "--memory-size", str(args.memory_size),
                              "--dim", str(args.dim), "--steps", str(args.steps), "--warmup", str(args.warmup),
                              "--eval-users", str(args.eval_users)]
            done = subprocess.run([sys.executable, __file__, *forwarded, "--child", str(path)],
                                  capture_output=True, text=True)
            if done.returncode:
                sys.stderr.write(done.stderr)
                raise SystemExit(f"the run with {items:,} items failed (exit {done.returncode})")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            path.unlink()
            results.append(result)
            gib = 2**30
            print(f"{result['items']:>10,} items  load {result['load_seconds']:6.2f} s  "
                  f"step {result['step_ms']:8.1f} ms  eval {result['eval_ms_per_user']:7.3f} ms/user  "
                  f"peak RSS {result['peak_rss_bytes'] / gib:6.2f} GiB  state {result['state_bytes'] / gib:6.2f} GiB  "
                  f"({result['rss_over_state']:.2f}x)", flush=True)
    summary = {"sizes": results, "step_ratio_4m_over_40k": round(results[-1]["step_ms"] / results[0]["step_ms"], 3),
               "largest_over_smallest_items": results[-1]["items"] / results[0]["items"],
               "threads": args.threads, "interactions": args.interactions, "sparse_updates": args.sparse_updates}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
