"""Seconds per training epoch of each run in a compare_samplers spec, measured side by side.

    python benchmarks/sampler_step_time.py --spec benchmarks/gowalla_samplers.yaml --threads 2

Long quality runs share the machine with whatever else runs, so their wall-clock seconds per
epoch are noisy. This script builds every configuration of the spec in one process, times
training steps of each in alternating rounds (median over rounds), and reports the step time,
the epoch time it implies (steps per epoch x step time + one validation), and the ratio to the
first run of the spec.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import yaml

from cbns.api import assemble
from cbns.cli.process_settings import set_threads, tune_allocator
from cbns.config import TrainConfig, check_option
from cbns.data.loading import load_data
from cbns.evaluation.evaluator import Evaluator
from cbns.training.trainer import Trainer


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    tune_allocator()
    spec = yaml.safe_load(Path(args.spec).read_text())
    trainers, data = {}, None
    for label, options in spec["runs"].items():
        merged = {k: check_option(k, v, args.spec) for k, v in {**spec.get("shared", {}), **options}.items()}
        config = TrainConfig(**{**merged, "threads": args.threads})
        data = data or load_data(config)
        trainers[label] = Trainer(config, data, *assemble(config, data), progress=False, verbose=False)
    pairs = trainers[next(iter(trainers))].train_pairs
    gen = torch.Generator().manual_seed(0)
    times = {label: [] for label in trainers}
    for label, trainer in trainers.items():  # warm-up, and fill CBNS banks
        for _ in range(max(3, trainer.config.sampler.memory_size // trainer.config.sampler.batch_size + 1)):
            trainer.step(pairs[torch.randint(0, len(pairs), (trainer.config.sampler.batch_size,), generator=gen)])
    for _ in range(args.rounds):
        for label, trainer in trainers.items():
            batches = [pairs[torch.randint(0, len(pairs), (trainer.config.sampler.batch_size,), generator=gen)]
                       for _ in range(args.steps)]
            start = time.perf_counter()
            for batch in batches:
                trainer.step(batch)
            times[label].append((time.perf_counter() - start) / args.steps)
    first = next(iter(trainers))
    evaluator = Evaluator(trainers[first].config, data, settle=trainers[first].settle)
    start = time.perf_counter()
    evaluator.evaluate(trainers[first].model, "valid")
    eval_seconds = time.perf_counter() - start
    rows = {}
    base = statistics.median(times[first])
    print(f"| run | ms/step | steps/epoch | s/epoch (train + one validation) | step / {first} step |")
    print("|---|---|---|---|---|")
    for label, trainer in trainers.items():
        step = statistics.median(times[label])
        steps = -(-len(pairs) // trainer.config.sampler.batch_size)
        epoch = step * steps + eval_seconds
        rows[label] = {"ms_per_step": round(step * 1e3, 2), "seconds_per_epoch": round(epoch, 1),
                       "over_first": round(step / base, 2)}
        print(f"| {label} | {step * 1e3:.1f} | {steps} | {epoch:.1f} | {step / base:.2f} |")
    print(json.dumps({"threads": args.threads, "validation_seconds": round(eval_seconds, 2), "runs": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
