"""The row-sparse Adam step against an earlier commit's, on the same gradients, side by side.

    python benchmarks/sparse_step.py                     # MovieLens-100k, default recipe
    python benchmarks/sparse_step.py --before 24d6ccb --steps 40 --rounds 5

Builds the default run on MovieLens-100k as ``cbns train`` does (sparse updates: the user and item
tables and the item bias under :class:`cbns.training.row_adam.RowAdam`), trains ``--warmup``
steps, then records the real gradients of ``--steps`` more. Both optimizers, this tree's RowAdam
(built as the trainer builds it, ``whole_rows`` the batch size) and the ``--before`` commit's (its
``cbns/training/row_adam.py``, read with ``git show``), start from the same tables and take those
gradients in turn; per optimizer step it counts the ATen ops
dispatched and those that would make a GPU wait for the host
(:class:`cbns.training.dispatch_count.DispatchCounter`), and times the steps with the process
CPU clock over ``--rounds`` alternating rounds (median). Prints one JSON line: both sides'
counts and times, their ratios, the largest difference between the two sides' settled tables,
in float32 and with the same steps replayed in float64, and, in float64, each side's largest
difference from ``torch.optim.Adam`` (dense, eps included) on the same gradients: the update
both approximate. The recorded steps cross an epoch's end, so one of them is a short last batch.
"""
from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's cbns, not an installed one
ML100K = REPO.parent / "shared" / "data" / "ml-100k"


def earlier_row_adam(commit: str) -> type:
    """The ``RowAdam`` class of ``cbns/training/row_adam.py`` at ``commit``."""
    source = subprocess.run(["git", "show", f"{commit}:cbns/training/row_adam.py"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType(f"row_adam_{commit}")
    exec(compile(source, f"{commit}:cbns/training/row_adam.py", "exec"), module.__dict__)
    return module.RowAdam


def recorded_gradients(data: str, warmup: int, steps: int):
    """``(tables, lr, gradients, batch_size)``: the sparse tables after ``warmup`` real steps of
    the default run on ``data`` (copies), the run's table learning rate, the sparse gradients of
    the ``steps`` real steps after (one list per step, in the tables' order) and the batch size."""
    from cbns.api import assemble
    from cbns.config import TrainConfig
    from cbns.data.loading import load_data
    from cbns.training.recipe import resolve as resolve_recipe
    from cbns.training.trainer import Trainer

    config = TrainConfig(data=data, threads=1)
    loaded = load_data(config)
    config, _ = resolve_recipe(config, loaded.num_items, len(loaded.train))
    model, objective = assemble(config, loaded)
    trainer = Trainer(config, loaded, model, objective, progress=False, verbose=False)
    tables = trainer.model.sparse_parameters()
    batches = trainer.epoch_batches()
    start, gradients = None, []
    original = trainer.optimizer.step

    def record():
        gradients.append([p.grad.detach().clone() for p in tables])
        original()

    for k in range(warmup + steps):
        if k == warmup:
            start = [p.detach().clone() for p in tables]
            trainer.optimizer.step = record
        trainer.step(trainer.train_pairs[batches[k % len(batches)]])
    return start, trainer.optimizer.sparse.param_groups[0]["lr"], gradients, config.sampler.batch_size


def replay(optimizer_class, start, lr, gradients, counter=None):
    """The tables and optimizer after ``optimizer_class`` takes ``gradients`` from ``start``, and
    the CPU seconds its steps took (the dispatch counter, when given, around each step)."""
    tables = [torch.nn.Parameter(t.clone()) for t in start]
    optimizer = optimizer_class(tables, lr=lr)
    seconds = 0.0
    for step in gradients:
        for p, g in zip(tables, step):
            p.grad = g
        begin = time.process_time()
        if counter is None:
            optimizer.step()
        else:
            with counter:
                optimizer.step()
        seconds += time.process_time() - begin
    return tables, optimizer, seconds


def settled(optimizer_class, start, gradients, lr):
    tables, optimizer, _ = replay(optimizer_class, start, lr, gradients)
    optimizer.settle()
    return tables


def largest_difference(a, b) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b))


def dense_adam(start, gradients, lr):
    """The tables after ``torch.optim.Adam`` takes ``gradients`` (made dense) from ``start``."""
    tables = [torch.nn.Parameter(t.clone()) for t in start]
    optimizer = torch.optim.Adam(tables, lr=lr, foreach=False)
    for step in gradients:
        for p, g in zip(tables, step):
            p.grad = g.to_dense()
        optimizer.step()
    return tables


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ML100K), help="dataset (default: %(default)s)")
    parser.add_argument("--before", default="24d6ccb", help="the commit to compare with (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=20, help="real steps before recording (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=40, help="recorded steps replayed (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating timed rounds (default: %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    from cbns.training.dispatch_count import DispatchCounter
    from cbns.training.row_adam import RowAdam

    start, lr, gradients, batch_size = recorded_gradients(args.data, args.warmup, args.steps)
    sides = {"before": earlier_row_adam(args.before), "after": functools.partial(RowAdam, whole_rows=batch_size)}
    out = {}
    for name, cls in sides.items():
        counter = DispatchCounter()
        tables, optimizer, _ = replay(cls, start, lr, gradients, counter)
        optimizer.settle()
        out[name] = {"ops_per_step": round(counter.ops / len(gradients), 1),
                     "syncs_per_step": round(counter.reads / len(gradients), 2),
                     "sync_kinds": {k: round(v / len(gradients), 2) for k, v in counter.read_kinds.most_common()},
                     "tables": tables}
    times = {name: [] for name in sides}
    for r in range(args.rounds):
        for name in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
            times[name].append(replay(sides[name], start, lr, gradients)[2] / len(gradients))
    difference = {"float32": largest_difference(out["before"].pop("tables"), out["after"].pop("tables"))}
    wide = [t.double() for t in start], [[g.double() for g in step] for step in gradients]
    wide_tables = {name: settled(sides[name], *wide, lr) for name in sides}
    difference["float64"] = largest_difference(*wide_tables.values())
    reference = dense_adam(*wide, lr)
    from_dense = {name: largest_difference(tables, reference) for name, tables in wide_tables.items()}
    for name in sides:
        out[name]["cpu_ms_per_step"] = round(1e3 * statistics.median(times[name]), 3)
    print(json.dumps({
        "data": Path(args.data).name, "before": args.before, "tables": [list(t.shape) for t in start],
        "entries_per_step": [g._nnz() for g in gradients[0]], "steps": len(gradients), "rounds": args.rounds,
        **out,
        "ops_ratio": round(out["after"]["ops_per_step"] / out["before"]["ops_per_step"], 3),
        "cpu_time_ratio": round(out["after"]["cpu_ms_per_step"] / out["before"]["cpu_ms_per_step"], 3),
        "max_table_difference": difference, "max_difference_from_dense_adam": from_dense}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
