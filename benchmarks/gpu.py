"""One prepared script for a GPU: training throughput, evaluation against its floor, peak memory,
and the memory-budget comparison, ending with one JSON line.

    python benchmarks/gpu.py                          # on a GPU (auto), under 5 minutes on one
    python benchmarks/gpu.py --device cpu --quick     # the smoke run CI makes (seconds)

1. The default recipe on the bundled Gowalla (B = 2048, width 256, cosine scores, the learned item
   bias; CBNS with M = 4096) for in-batch and CBNS, in fp32 and bf16: steps/s and examples/s over
   ``--steps`` timed steps after a warm-up that fills the bank (the device synchronised before
   each clock read), and the peak memory of each (``max_memory_allocated`` on a GPU).
2. Full-ranking evaluation of every Gowalla user against every item (``evaluate_split``) beside its
   floor on the same device: the score matrix product and ``torch.topk`` over the same blocks.
3. :mod:`benchmarks.memory_budget` at one budget (``--budget-mb``; Amazon Beauty when
   ``../shared/data`` has it, a synthetic sequence file otherwise or with ``--quick``).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import memory_budget

from cbns.api import assemble
from cbns.cli.process_settings import set_threads, tune_allocator
from cbns.config import TrainConfig
from cbns.data.holdout import carve_validation
from cbns.data.loading import load_data
from cbns.data.subset import user_subset
from cbns.evaluation.ranking import evaluate_split, ranking_matrices, ranking_vectors
from cbns.machine import peak_memory, reset_peak_memory, resolve_device
from cbns.ranking.topk import default_chunk
from cbns.training.trainer import Trainer

BEAUTY = Path(__file__).resolve().parents[2] / "shared/data/amazon-seq/Beauty.txt"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(config: TrainConfig, data, steps: int) -> dict:
    """Steps/s and examples/s of ``config``'s training step, and its peak memory."""
    model, objective = assemble(config, data)
    trainer = Trainer(config, data, model, objective, progress=False, verbose=False)
    device = trainer.device
    gen = torch.Generator().manual_seed(0)
    warmup = config.sampler.memory_size // config.sampler.batch_size + 2 if config.sampler.name == "cbns" else 2
    batch = config.sampler.batch_size
    batches = [torch.randint(0, len(data.train), (batch,), generator=gen) for _ in range(warmup + steps)]
    reset_peak_memory(device)
    for index in batches[:warmup]:
        trainer.step(trainer.train_pairs[index.to(device)])
    sync(device)
    start = time.perf_counter()
    for index in batches[warmup:]:
        trainer.step(trainer.train_pairs[index.to(device)])
    sync(device)
    seconds = time.perf_counter() - start
    return {"steps_per_s": round(steps / seconds, 2),
            "examples_per_s": round(steps * config.sampler.batch_size / seconds),
            "step_ms": round(1000 * seconds / steps, 2), "peak_memory": peak_memory(device)}


def evaluation(config: TrainConfig, data, repeats: int) -> dict:
    """Seconds of a full-ranking evaluation of ``valid`` and of its floor (GEMM + topk) on the device."""
    device = resolve_device(config.run.device)
    model, _ = assemble(config, data)
    model.to(device)
    users, items = ranking_vectors(model, data)
    relevant, _ = ranking_matrices(data, "valid")
    rows = torch.from_numpy(np.flatnonzero(np.diff(relevant.indptr) > 0)).to(device)
    chunk = default_chunk(items.shape[0])
    kmax = min(max(config.evaluation.ks), items.shape[0])

    def floor():
        for s in range(0, len(rows), chunk):
            torch.topk(users[rows[s:s + chunk]] @ items.T, kmax, dim=1)

    def full():
        evaluate_split(model, data, "valid", config.evaluation.ks)

    timings = {}
    for name, fn in (("evaluate", full), ("floor", floor)):
        fn()  # warm-up
        sync(device)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            sync(device)
            best = min(best, time.perf_counter() - start)
        timings[name] = best
    return {"users": int(len(rows)), "items": int(items.shape[0]), "evaluate_s": round(timings["evaluate"], 4),
            "floor_s": round(timings["floor"], 4), "ratio_to_floor": round(timings["evaluate"] / timings["floor"], 3)}


def synthetic_sequences(path: Path, users: int = 600, items: int = 400, seed: int = 0) -> Path:
    """A sequence file (``user item item ...`` per line) with Zipf-like item popularity."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.8
    popularity /= popularity.sum()
    lines = [" ".join(map(str, [u, *rng.choice(items, size=rng.integers(5, 15), p=popularity)]))
             for u in range(users)]
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="tiny shapes and few steps: a smoke run")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--budget-mb", type=float, default=None,
                        help="memory budget of part 3 (default: 2048 on a GPU, 250 on a CPU, 40 with --quick)")
    parser.add_argument("--out", default=None, help="run directories of part 3 (default: a temporary folder)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    set_threads(args.threads)
    tune_allocator()
    started = time.perf_counter()
    shape = dict(batch_size=256, memory_size=512, dim=32) if args.quick else {}
    steps = 2 if args.quick else args.steps
    base = TrainConfig(device=str(device), threads=args.threads, **shape).validate()
    data = load_data(base)
    if args.quick:  # 3,000 users of Gowalla, with their own validation split
        data = carve_validation(user_subset(data, 3000, seed=0), base.data.valid_fraction, base.training.seed)
    result = {"device": str(device), "torch": torch.__version__, "quick": args.quick,
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None, "train": {}}
    for sampler in ("inbatch", "cbns"):
        for precision in ("fp32", "bf16"):
            config = TrainConfig(**{**base.to_dict(), "sampler": sampler, "precision": precision}).validate()
            result["train"][f"{sampler}-{precision}"] = throughput(config, data, steps)
            print(f"{sampler:8s} {precision}: {result['train'][f'{sampler}-{precision}']}", flush=True)
    result["evaluation"] = evaluation(base, data, repeats=1 if args.quick else 3)
    print(f"evaluation: {result['evaluation']}", flush=True)
    budget = args.budget_mb or (40.0 if args.quick else 2048.0 if device.type == "cuda" else 250.0)
    with tempfile.TemporaryDirectory(prefix="cbns-gpu-") as tmp:
        seqs = BEAUTY if BEAUTY.is_file() and not args.quick else synthetic_sequences(Path(tmp) / "seqs.txt")
        out = args.out or str(Path(tmp) / "memory-budget")
        budget_args = ["--data", str(seqs), "--budget-mb", str(budget), "--device", str(device), "--out", out,
                       "--threads", str(args.threads)]
        if args.quick:
            budget_args.append("--quick")
        elif device.type == "cuda":
            budget_args += ["--batches", "1024,2048,4096,8192,16384,32768", "--epochs", "4"]
        captured = _last_json(memory_budget.main, budget_args)
    result["memory_budget"] = captured
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))
    return 0


def _last_json(fn, argv) -> dict:
    """Run ``fn(argv)`` and return the JSON object of the last line it printed."""
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        fn(argv)
    text = buffer.getvalue()
    sys.stdout.write("\n".join(line for line in text.splitlines()[:-1]) + "\n")
    return json.loads(text.strip().splitlines()[-1])


if __name__ == "__main__":
    raise SystemExit(main())
