"""The test the CBNS paper implies: under a fixed memory budget, CBNS at a smaller batch with a bank
against in-batch at the largest batch that fits.

    python benchmarks/memory_budget.py --data ../shared/data/amazon-seq/Beauty.txt --budget-mb 250 --device cpu

A GRU user tower over each user's last 50 items (activations that grow with the batch) and an ID
item tower, trained with leave-one-out on a sequence dataset. Steps:

1. the peak memory of a training step, measured for in-batch at each batch size of ``--batches``:
   on the CPU the growth of the resident set over a few steps, each configuration in a fresh
   process (the allocator keeps freed blocks, so the resident set ends at its high-water mark);
   on a GPU ``torch.cuda.max_memory_allocated`` over the same steps;
2. ``B_max``, the largest in-batch batch within ``--budget-mb``;
3. CBNS at ``B_max / --shrink`` with the largest bank of ``--memories`` (multiples of ``B_max``,
   capped at ``I - B``: a bank beyond the catalogue only repeats items) whose step also fits the
   budget: more negatives per row for the same memory;
4. both trained ``--epochs`` epochs (validation HR@20 each epoch, the best epoch's weights tested
   once): quality at equal epochs; and at equal time, each run's best validation HR@20 within the
   training time of the faster run (the test set is touched once per run, at the end).

Prints a table and ends with one JSON line. ``--quick`` shrinks everything for a smoke run.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cbns.api import assemble, history_context, train
from cbns.cli.process_settings import set_threads, tune_allocator
from cbns.config import TrainConfig
from cbns.data.loading import load_data
from cbns.machine import resolve_device
from cbns.training.callbacks.base import Callback
from cbns.training.trainer import Trainer

MB = 2**20


def base_options(args) -> dict:
    return {"data": args.data, "split": "loo", "user_tower": "gru", "item_tower": "id", "max_history": 50,
            "dim": args.dim, "hidden_dim": args.hidden, "lr": 5e-3, "lr_schedule": "constant", "item_bias": False,
            "popularity_prior": "off", "item_side": "split", "ks": [20], "threads": args.threads,
            "device": args.device, "precision": args.precision, "epochs": args.epochs, "patience": args.epochs}


def resident_bytes() -> int:
    """The current resident set of this process (Linux)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def step_peak(options: dict, steps: int) -> int:
    """Bytes a training step of ``options`` needs beyond the model and data: measured here."""
    config = TrainConfig(**options).validate()
    set_threads(config.run.threads)
    tune_allocator()
    data = load_data(config)
    model, objective = assemble(config, data)
    contexts = history_context(config, data, model)
    trainer = Trainer(config, data, model, objective, progress=False, verbose=False, contexts=contexts)
    device = trainer.device
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, len(data.train), (config.sampler.batch_size,), generator=gen) for _ in range(steps)]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        before = resident_bytes()
    for index in batches:
        trainer.step(trainer.train_pairs[index.to(device)], trainer.context_of(index))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    return resident_bytes() - before


def measure(options: dict, steps: int) -> int:
    """:func:`step_peak` in a fresh process on the CPU (one configuration's high-water mark must not
    hide another's); in this process on a GPU."""
    if resolve_device(options["device"]).type == "cuda":
        return step_peak(options, steps)
    out = subprocess.run([sys.executable, __file__, "--probe", json.dumps(options), "--steps", str(steps)],
                         check=True, capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1])


class TimeBudget(Callback):
    """Stops training after the epoch that reaches ``seconds`` of training time (None: never)."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds

    def on_epoch_end(self, trainer, record: dict) -> None:
        if self.seconds is not None and trainer.state.train_seconds >= self.seconds:
            trainer.state.done = True


def run(options: dict, out: Path, seconds: float | None = None) -> dict:
    config = TrainConfig(**options).validate()
    result = train(config, out, progress=False, verbose=False, callbacks=[TimeBudget(seconds)])
    curve, elapsed = [], 0.0
    for h in result.history:
        elapsed += h["seconds"]
        curve.append({"epoch": h["epoch"], "train_seconds": round(elapsed, 1),
                      "valid_hr20": round(h["valid"]["hit@20"], 4)})
    metrics = json.loads((out / "metrics.json").read_text())
    memory = config.sampler.memory_size if config.sampler.name == "cbns" else 0
    return {"batch_size": config.sampler.batch_size, "memory_size": memory,
            "best_epoch": result.best_epoch, "epochs": result.epochs_run,
            "valid_hr20": round(result.valid["hit@20"], 4),
            "test_hr20": round(result.test["hit@20"], 4), "test_ndcg20": round(result.test["ndcg@20"], 4),
            "train_seconds": round(result.train_seconds, 1), "curve": curve, "peak_memory": metrics["peak_memory"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    beauty = Path(__file__).resolve().parents[2] / "shared/data/amazon-seq/Beauty.txt"
    parser.add_argument("--data", default=str(beauty))
    parser.add_argument("--budget-mb", type=float, default=250.0, help="peak memory of a step (default: %(default)s)")
    parser.add_argument("--batches", default="256,512,1024,2048,4096,8192", help="in-batch sizes to try")
    parser.add_argument("--shrink", type=int, default=4, help="CBNS batch = B_max / SHRINK (default: %(default)s)")
    parser.add_argument("--memories", default="1,2,4,8,16", help="bank sizes to try, multiples of B_max")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3, help="steps per memory probe")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--out", default="runs/memory-budget")
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny budget, two epochs")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        print(step_peak(json.loads(args.probe), args.steps))
        return 0
    if args.quick:
        args.batches, args.memories, args.epochs, args.dim, args.hidden = "64,256", "2", 1, 16, 16
    base = base_options(args)
    budget = args.budget_mb * MB
    start = time.perf_counter()

    peaks = {}
    for b in (int(x) for x in args.batches.split(",")):
        peaks[b] = measure({**base, "sampler": "inbatch", "batch_size": b}, args.steps)
        print(f"in-batch B={b:6d}: step peak {peaks[b] / MB:8.1f} MB", flush=True)
        if peaks[b] > budget:
            break
    fitting = [b for b, p in peaks.items() if p <= budget]
    if not fitting:
        raise SystemExit(f"no in-batch batch of {args.batches} fits {args.budget_mb} MB")
    b_max = max(fitting)
    b_small = max(b_max // args.shrink, 16)
    num_items = load_data(TrainConfig(**base).validate()).num_items
    cap = num_items - b_small
    bank, bank_peaks = None, {}
    sizes = sorted({min(int(x) * b_max, cap) for x in args.memories.split(",")})
    for m in sizes:
        bank_peaks[m] = measure({**base, "sampler": "cbns", "batch_size": b_small, "memory_size": m}, args.steps)
        print(f"cbns B={b_small} M={m:6d}: step peak {bank_peaks[m] / MB:8.1f} MB", flush=True)
        if bank_peaks[m] > budget:
            break
        bank = m
    if bank is None:
        raise SystemExit(f"no bank of {args.memories} x B_max fits beside B={b_small} in {args.budget_mb} MB")

    out = Path(args.out)
    inbatch = run({**base, "sampler": "inbatch", "batch_size": b_max}, out / f"inbatch-b{b_max}")
    cbns = run({**base, "sampler": "cbns", "batch_size": b_small, "memory_size": bank},
               out / f"cbns-b{b_small}-m{bank}")
    horizon = min(inbatch["train_seconds"], cbns["train_seconds"])

    def best_within(r):
        reached = [c for c in r["curve"] if c["train_seconds"] <= horizon + 1e-6] or r["curve"][:1]
        return max(c["valid_hr20"] for c in reached)

    print(f"\nbudget {args.budget_mb:.0f} MB per step; in-batch B_max = {b_max}; CBNS B = {b_small}, M = {bank}")
    print(f"{'run':28s} {'negatives':>9s} {'peak MB':>8s} {'valid HR@20':>11s} {'test HR@20':>10s} "
          f"{'best/run':>8s} {'train s':>8s} {'valid HR@20 by ' + str(round(horizon)) + ' s':>22s}")
    for name, r, negatives, peak in (("in-batch", inbatch, b_max - 1, peaks[b_max]),
                                     ("cbns", cbns, b_small - 1 + bank, bank_peaks[bank])):
        print(f"{name + ' B=' + str(r['batch_size']) + (' M=' + str(bank) if name == 'cbns' else ''):28s} "
              f"{negatives:9d} {peak / MB:8.1f} {r['valid_hr20']:11.4f} {r['test_hr20']:10.4f} "
              f"{r['best_epoch']:3d}/{r['epochs']:<4d} {r['train_seconds']:8.1f} {best_within(r):22.4f}")
    summary = {"budget_mb": args.budget_mb, "device": str(resolve_device(args.device)), "precision": args.precision,
               "data": Path(args.data).name, "epochs": args.epochs,
               "inbatch_step_peak_mb": {str(b): round(p / MB, 1) for b, p in peaks.items()},
               "cbns_step_peak_mb": {str(m): round(p / MB, 1) for m, p in bank_peaks.items()},
               "inbatch": {**inbatch, "negatives": b_max - 1, "step_peak_mb": round(peaks[b_max] / MB, 1)},
               "cbns": {**cbns, "negatives": b_small - 1 + bank, "step_peak_mb": round(bank_peaks[bank] / MB, 1)},
               "equal_time_seconds": round(horizon, 1),
               "equal_time_valid_hr20": {"inbatch": best_within(inbatch), "cbns": best_within(cbns)},
               "wall_seconds": round(time.perf_counter() - start, 1)}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
