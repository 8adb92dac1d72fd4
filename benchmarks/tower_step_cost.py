"""Seconds per epoch of CBNS vs in-batch for one tower pair, measured interleaved in one process.

For each setting (cbns at batch B with bank M, in-batch at B, in-batch at B + M) this times
``--steps`` real training steps per round, for ``--rounds`` rounds taken in turn, so that the load
of a shared machine hits every setting alike; it prints the median per-phase seconds of an epoch
(steps per epoch x seconds per step) and the ratio to in-batch at B.

usage: python benchmarks/tower_step_cost.py --data PATH --user-tower gru --item-tower id [--batch-size 256
       --memory-size 1024 --steps 20 --rounds 3 --max-history 20 --hidden-dim 64]
"""
from __future__ import annotations

import argparse
import statistics

import torch

from cbns.api import assemble, history_context
from cbns.cli.process_settings import set_threads, tune_allocator
from cbns.config import TrainConfig
from cbns.data.loading import load_data
from cbns.training.phase_timer import PHASES
from cbns.training.trainer import Trainer


def setting(base: dict, sampler: str, batch: int, memory: int) -> Trainer:
    config = TrainConfig(**{**base, "sampler": sampler, "batch_size": batch, "memory_size": memory}).validate()
    data = load_data(config)
    model, objective = assemble(config, data)
    return Trainer(config, data, model, objective, progress=False, verbose=False,
                   contexts=history_context(config, data, model))


def time_steps(trainer: Trainer, steps: int, generator: torch.Generator) -> dict[str, float]:
    """Seconds per step in each phase, over ``steps`` steps on random batches."""
    trainer.model.train()
    trainer.timer.reset()
    n, b = len(trainer.train_pairs), trainer.config.sampler.batch_size
    for _ in range(steps):
        with trainer.timer("data"):
            index = torch.randint(0, n, (b,), generator=generator)
            batch = trainer.train_pairs[index]
            context = trainer.contexts.for_pairs(index) if trainer.contexts is not None else None
        trainer.step(batch, context)
    return {p: s / steps for p, s in trainer.timer.seconds.items()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--user-tower", default="id")
    p.add_argument("--item-tower", default="id")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--memory-size", type=int, default=1024)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--max-history", type=int, default=50)
    p.add_argument("--hidden-dim", type=int, default=128)
    args = p.parse_args()
    set_threads(1)
    tune_allocator()
    base = dict(data=args.data, split="loo", user_tower=args.user_tower, item_tower=args.item_tower,
                max_history=args.max_history, hidden_dim=args.hidden_dim, threads=1)
    b, m = args.batch_size, args.memory_size
    settings = {f"cbns B={b} M={m}": setting(base, "cbns", b, m),
                f"inbatch B={b}": setting(base, "inbatch", b, 0),
                f"inbatch B={b + m}": setting(base, "inbatch", b + m, 0)}
    g = torch.Generator().manual_seed(0)
    for trainer in settings.values():      # warm-up: allocator, and the bank filled
        time_steps(trainer, -(-m // b) + 1, g)
    rounds = {name: [] for name in settings}
    for _ in range(args.rounds):
        for name, trainer in settings.items():
            rounds[name].append(time_steps(trainer, args.steps, g))
    n = len(next(iter(settings.values())).train_pairs)
    print(f"{args.user_tower} / {args.item_tower} on {args.data}: {n:,} train events; seconds per epoch "
          f"(median of {args.rounds} rounds of {args.steps} steps)")
    print(f"| setting | {' | '.join(PHASES)} | total | vs inbatch B={b} |")
    print("|---" * (len(PHASES) + 3) + "|")
    epoch = {}
    for name, per_round in rounds.items():
        steps = -(-n // settings[name].config.sampler.batch_size)
        epoch[name] = {ph: steps * statistics.median(r[ph] for r in per_round) for ph in PHASES}
    ref = sum(epoch[f"inbatch B={b}"].values())
    for name, phase in epoch.items():
        total = sum(phase.values())
        cells = " | ".join(f"{phase[ph]:.1f}" for ph in PHASES)
        print(f"| {name} | {cells} | {total:.1f} | {total / ref:.2f}x |")


if __name__ == "__main__":
    main()
