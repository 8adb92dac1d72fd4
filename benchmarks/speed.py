"""How close training and evaluation run to their matrix-multiply floor, measured in one process.

    python benchmarks/speed.py --threads 1

Prints, each a median over ``--repeats`` rounds in which the things compared alternate:

* full-ranking evaluation of the Gowalla validation split over its floor, the bare score GEMM
  ``[U, D] x [D, I]`` plus top-K of the same shapes (same chunking);
* the training step of ``inbatch`` and of ``cbns`` with M in {B, 4B, 8B, 16B}: its ratio to the
  in-batch step, and its ratio to its own logits GEMM floor, the forward and backward matrix
  products of the same shapes (``[B, D] x [D, B+M]``, ``[B, B+M] x [B+M, D]``, ``[B, B]^T x [B, D]``);
* training throughput (examples/s) of the default configuration (:class:`cbns.config.TrainConfig`).

It ends with one JSON line. Times are process CPU time by default with one thread (the fairest
clock on a shared machine: time the scheduler gives to others is not counted), wall time otherwise
(``--clock`` to choose).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cbns.api import assemble
from cbns.config import TrainConfig
from cbns.evaluation.ranking import evaluate_split
from cbns.model.build import build_model

try:
    from cbns.ranking.topk import default_chunk
except ImportError:  # trees before default_chunk (12b0706): its fixed 64M-float block; lets the
    def default_chunk(num_items: int) -> int:  # script measure the "before" ratios too
        return max(1, (64 * 2**20) // max(num_items, 1))
from cbns.cli.process_settings import set_threads, tune_allocator
from cbns.data.loading import load_data
from cbns.training.trainer import Trainer


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    parser.add_argument("--clock", choices=("cpu", "wall"), help="cpu (default with 1 thread) or wall")
    parser.add_argument("--batch-size", type=int, default=2048, help="B (default: %(default)s)")
    parser.add_argument("--dim", type=int, help="embedding width (default: TrainConfig's)")
    parser.add_argument("--item-side", choices=("joint", "split"), help="CBNS item side (default: TrainConfig's)")
    parser.add_argument("--item-bias", choices=("true", "false"), help="learned item bias (default: TrainConfig's)")
    parser.add_argument("--repeats", type=int, default=5, help="alternating rounds (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per config per round (default: %(default)s)")
    parser.add_argument("--eval-repeats", type=int, default=3, help="evaluation rounds (default: %(default)s)")
    parser.add_argument("--skip-eval", action="store_true", help="time training only")
    args = parser.parse_args(argv)
    clock = args.clock or ("cpu" if args.threads == 1 else "wall")
    timer = time.process_time if clock == "cpu" else time.perf_counter
    set_threads(args.threads)
    tune_allocator()
    print(f"threads {torch.get_num_threads()}, clock {clock}, torch {torch.__version__}", flush=True)

    base = TrainConfig(threads=args.threads)
    if args.dim is not None:
        base = replace(base, dim=args.dim)
    if args.item_side is not None:
        base = replace(base, item_side=args.item_side)
    if args.item_bias is not None:
        base = replace(base, item_bias=args.item_bias == "true")
    data = load_data(base)
    result: dict = {"threads": args.threads, "clock": clock, "batch_size": args.batch_size, "dim": base.model.dim}
    if not args.skip_eval:
        result.update(time_evaluation(base, data, timer, args.eval_repeats))
    result.update(time_steps(base, data, timer, args.batch_size, args.repeats, args.steps))
    print(json.dumps(result))
    return 0


def time_evaluation(config: TrainConfig, data, timer, repeats: int) -> dict:
    """Full-ranking evaluation of the validation split against GEMM + top-K of the same shapes."""
    model = build_model(config, data.num_users, data.num_items)
    relevant = data.matrix("valid")
    users = torch.from_numpy((relevant.indptr[1:] > relevant.indptr[:-1]).nonzero()[0])
    user_emb = model.all_users(data.num_users)[users]
    item_emb = model.all_items(data.num_items)
    kmax = max(config.evaluation.ks)
    rows = default_chunk(data.num_items)
    block = torch.empty(rows, data.num_items)

    def floor(topk: bool = True):
        for start in range(0, len(users), rows):
            part = user_emb[start:start + rows]
            out = block[:len(part)]
            torch.mm(part, item_emb.T, out=out)
            if topk:
                torch.topk(out, kmax, dim=1)

    evals, floors, gemms = [], [], []
    floor()  # warm-up
    for _ in range(repeats):
        evals.append(_timed(timer, lambda: evaluate_split(model, data, "valid", config.evaluation.ks)))
        floors.append(_timed(timer, floor))
        gemms.append(_timed(timer, lambda: floor(topk=False)))
    ev, fl, gm = statistics.median(evals), statistics.median(floors), statistics.median(gemms)
    print(f"evaluation: {len(users):,} users x {data.num_items:,} items, K={kmax}, {rows} users per chunk: "
          f"{ev:.2f} s; floor (GEMM + top-K) {fl:.2f} s, ratio {ev / fl:.2f}; GEMM alone {gm:.2f} s, "
          f"ratio {ev / gm:.2f}", flush=True)
    return {"eval_seconds": round(ev, 3), "eval_floor_seconds": round(fl, 3), "eval_over_floor": round(ev / fl, 3),
            "eval_gemm_seconds": round(gm, 3), "eval_over_gemm": round(ev / gm, 3)}


def time_steps(base: TrainConfig, data, timer, batch: int, repeats: int, steps: int) -> dict:
    """Per-step time of each sampler configuration, alternating configurations within a round."""
    configs = {"inbatch": replace(base, sampler="inbatch", batch_size=batch)}
    for m in (1, 4, 8, 16):
        configs[f"cbns M={m}B"] = replace(base, sampler="cbns", batch_size=batch, memory_size=m * batch,
                                          warmup_steps=0)
    configs["default"] = base
    trainers = {name: _trainer(cfg, data) for name, cfg in configs.items()}
    floors = {name: _floor(trainer) for name, trainer in trainers.items()}
    batches = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))
    cursor = {name: 0 for name in trainers}

    def run(name: str, n: int) -> list[float]:
        trainer = trainers[name]
        size = trainer.config.sampler.batch_size
        times = []
        for _ in range(n):
            start = cursor[name] % (len(batches) - size)
            cursor[name] += size
            pairs = trainer.train_pairs[batches[start:start + size]]
            times.append(_timed(timer, lambda: trainer.step(pairs)))
        return times

    for name, trainer in trainers.items():  # warm-up, and fill each bank
        run(name, max(2, trainer.config.sampler.memory_size // trainer.config.sampler.batch_size + 1)
            if trainer.config.sampler.name == "cbns" else 2)
    step_times = {name: [] for name in trainers}
    floor_times = {name: [] for name in trainers}
    for _ in range(repeats):
        for name, trainer in trainers.items():
            step_times[name] += run(name, steps)
            floor_times[name] += [_timed(timer, floors[name]) for _ in range(steps)]
    adam = statistics.median(_timed(timer, trainers["default"].optimizer.step) for _ in range(5))
    step = {name: statistics.median(v) for name, v in step_times.items()}
    floor = {name: statistics.median(v) for name, v in floor_times.items()}
    print(f"{'config':14s} {'N':>6s} {'step ms':>8s} {'floor ms':>9s} {'step/floor':>10s} {'/inbatch':>9s}")
    for name in trainers:
        cfg = trainers[name].config
        n = cfg.sampler.batch_size + (cfg.sampler.memory_size if cfg.sampler.name == "cbns" else 0)
        print(f"{name:14s} {n:6d} {step[name] * 1e3:8.1f} {floor[name] * 1e3:9.1f} "
              f"{step[name] / floor[name]:10.2f} {step[name] / step['inbatch']:9.2f}")
    examples = base.sampler.batch_size / step["default"]
    print(f"default configuration ({base.sampler.name}, B={base.sampler.batch_size}, M={base.sampler.memory_size}, "
          f"item side {base.loss.item_side}): {examples:,.0f} examples/s; its dense Adam update over both "
          f"tables {adam * 1e3:.1f} ms of the {step['default'] * 1e3:.1f} ms step", flush=True)
    bf16 = _bf16_over_fp32(timer, batch, 8 * batch, base.model.dim)
    print(f"bank scores [B, D] x [D, 8B] in bfloat16 take {bf16:.2f}x the float32 time on this CPU", flush=True)
    return {
        "inbatch_step_ms": round(step["inbatch"] * 1e3, 2),
        "inbatch_step_over_floor": round(step["inbatch"] / floor["inbatch"], 3),
        "cbns_step_over_floor": round(step["cbns M=8B"] / floor["cbns M=8B"], 3),
        "cbns_over_inbatch_step": round(step["cbns M=8B"] / step["inbatch"], 3),
        "cbns_step_over_floor_by_m": {k: round(step[k] / floor[k], 3) for k in step if k.startswith("cbns")},
        "cbns_over_inbatch_by_m": {k: round(step[k] / step["inbatch"], 3) for k in step if k.startswith("cbns")},
        "default_step_ms": round(step["default"] * 1e3, 2),
        "default_adam_ms": round(adam * 1e3, 2),
        "bf16_over_fp32_bank_gemm": round(bf16, 3),
        "examples_per_second": round(examples, 1),
    }


def _trainer(config: TrainConfig, data) -> Trainer:
    return Trainer(config, data, *assemble(config, data), progress=False, verbose=False)


def _floor(trainer: Trainer):
    """The logits GEMMs of one step of ``trainer`` (forward, gradient to users, gradient to the
    fresh items), on random operands of the same shapes."""
    cfg = trainer.config
    b, d = cfg.sampler.batch_size, cfg.model.dim
    n = b + (cfg.sampler.memory_size if cfg.sampler.name == "cbns" else 0)
    users, cand, grad = torch.randn(b, d), torch.randn(n, d), torch.randn(b, n)

    def gemms():
        users @ cand.T
        grad @ cand
        grad[:, :b].T @ users

    return gemms


def _bf16_over_fp32(timer, rows: int, cols: int, dim: int) -> float:
    """Time of a bank-sized score GEMM in bfloat16 over the same in float32 (median of 3 each)."""
    users, bank = torch.randn(rows, dim), torch.randn(cols, dim)
    low_users, low_bank = users.bfloat16(), bank.bfloat16()
    times = {"bf16": [], "fp32": []}
    for _ in range(4):
        times["bf16"].append(_timed(timer, lambda: low_users @ low_bank.T))
        times["fp32"].append(_timed(timer, lambda: users @ bank.T))
    return statistics.median(times["bf16"][1:]) / statistics.median(times["fp32"][1:])


def _timed(timer, fn) -> float:
    start = timer()
    fn()
    return timer() - start


if __name__ == "__main__":
    raise SystemExit(main())
