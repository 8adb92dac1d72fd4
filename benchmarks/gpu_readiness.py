"""Ops and host reads per training step, per configuration: what a GPU step would launch and wait for.

    python benchmarks/gpu_readiness.py                       # MovieLens-100k, default shapes
    python benchmarks/gpu_readiness.py --tiny                # a small synthetic dataset (CI)

For each configuration (every sampler, every user tower, dense updates, bf16) it builds the run as
``cbns train`` does, runs warm-up steps (the CBNS bank fills), then counts with a
``TorchDispatchMode`` (:class:`cbns.training.dispatch_count.DispatchCounter`) every ATen op the
real ``Trainer.step`` dispatches, and those that would make a GPU wait for the host
(:func:`cbns.training.dispatch_count.host_read`), averaged over the counted steps. It prints one
JSON line: ``{"configs": {name: {"ops_per_step", "syncs_per_step", "sync_kinds", ...}}}``.
The counts are of the one step every device runs; on the CPU they are what a GPU would launch.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's cbns, not an installed one
ML100K = REPO.parent / "shared" / "data" / "ml-100k"

#: Each recipe's options over the defaults (sparse updates, the default); the default recipe is
#: ``cbns-stale``.
RECIPES = {
    "cbns-stale": {},
    "cbns-stale-bf16": {"precision": "bf16"},
    "cbns-refresh": {"bank_mode": "refresh"},
    "inbatch": {"sampler": "inbatch"},
    "uniform": {"sampler": "uniform"},
    "popularity": {"sampler": "popularity"},
    "mns": {"sampler": "mns"},
    "full": {"sampler": "full"},
    "pooled": {"user_tower": "pooled"},
    "gru": {"user_tower": "gru"},
    "features": {"user_tower": "features"},
}

#: name -> options: each recipe, then the same with dense updates (``NAME-dense``).
CONFIGS = {name: options for recipe, base in RECIPES.items()
           for name, options in ((recipe, base), (f"{recipe}-dense", {**base, "sparse_updates": False}))}

#: The small shapes of ``--tiny`` (the CI run): every code path, a bank that fills in 3 steps.
TINY = {"batch_size": 64, "memory_size": 128, "num_negatives": 32, "dim": 16, "hidden_dim": 16, "max_history": 8}


def tiny_data(seed: int = 0):
    """300 users, 200 items, 4000 timed pairs with a user attribute table: every tower can run."""
    from cbns.data.features import FeatureTable, categorical_column
    from cbns.data.interactions import Interactions
    rng = np.random.default_rng(seed)
    users, items = 300, 200
    pairs = np.unique(np.stack([rng.integers(0, users, 5000), rng.zipf(1.3, 5000) % items], 1), axis=0)
    pairs = pairs[rng.permutation(len(pairs))]
    n = len(pairs)
    times = rng.integers(0, 10**6, n).astype(np.float64)
    table = FeatureTable(users, [categorical_column("group", list(rng.integers(0, 5, users)))])
    return Interactions("tiny", users, items, train=pairs[: n - 400], valid=pairs[n - 400: n - 200],
                        test=pairs[n - 200:], train_time=times[: n - 400], valid_time=times[n - 400: n - 200],
                        test_time=times[n - 200:], user_features=table)


def build(options: dict, data_spec: str | None, data=None):
    """``(trainer, data)``: the run ``cbns train`` builds for ``options`` (on ``data`` when given)."""
    from cbns.api import assemble, history_context
    from cbns.config import TrainConfig
    from cbns.data.loading import load_data
    from cbns.training.recipe import resolve as resolve_recipe
    from cbns.training.trainer import Trainer
    config = TrainConfig(**{"data": data_spec or "tiny", "threads": 1, "lr_schedule": "cosine", **options})
    data = data if data is not None else load_data(config)
    config, _ = resolve_recipe(config, data.num_items, len(data.train))
    model, objective = assemble(config, data)
    trainer = Trainer(config, data, model, objective, progress=False, verbose=False,
                      contexts=history_context(config, data, model))
    return trainer, data


def run_steps(trainer, steps: int, counter=None, start: int = 0) -> None:
    """``steps`` real steps of the trainer's first epoch, from batch ``start``, as ``train_epoch`` runs
    them (the batch and its context are made outside the step, as there)."""
    from cbns.training.dispatch_count import DispatchCounter
    batches = trainer.epoch_batches()
    for k in range(start, start + steps):
        index = batches[k % len(batches)]
        batch = trainer.train_pairs[index]
        context = trainer.context_of(index)
        if counter is None:
            trainer.step(batch, context, global_rows=len(index))
        else:
            assert isinstance(counter, DispatchCounter)
            with counter:
                trainer.step(batch, context, global_rows=len(index))


def measure(name: str, options: dict, data_spec: str | None, data, warm: int, steps: int) -> dict:
    from cbns.training.dispatch_count import DispatchCounter
    trainer, data = build(options, data_spec, data)
    cfg = trainer.config
    warm = max(warm, cfg.sampler.memory_size // cfg.sampler.batch_size + cfg.sampler.warmup_steps + 1)
    run_steps(trainer, warm)
    counter = DispatchCounter()
    run_steps(trainer, steps, counter, start=warm)
    return {"ops_per_step": round(counter.ops / steps, 1), "launches_per_step": round(counter.launches / steps, 1),
            "syncs_per_step": round(counter.reads / steps, 2),
            "sync_kinds": {k: round(v / steps, 2) for k, v in counter.read_kinds.most_common()},
            "batch_size": cfg.sampler.batch_size, "sampler": cfg.sampler.name,
            "user_tower": cfg.model.user_tower, "sparse_updates": cfg.training.sparse_updates,
            "precision": cfg.training.precision}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help=f"dataset (default: {ML100K})")
    parser.add_argument("--tiny", action="store_true", help="a small synthetic dataset and shapes (CI)")
    parser.add_argument("--steps", type=int, default=3, help="counted steps per configuration")
    parser.add_argument("--warmup", type=int, default=2, help="uncounted steps first (at least the bank's fill)")
    parser.add_argument("--only", nargs="*", default=None, help="configuration names (default: all)")
    parser.add_argument("--cpu-blocks", action="store_true",
                        help="the fused softmax's CPU row blocks (default: a GPU's, as a CUDA step takes them)")
    args = parser.parse_args(argv)
    if not args.cpu_blocks:
        from cbns.objective import fused_softmax
        fused_softmax.BLOCK_BYTES = fused_softmax.DEVICE_BLOCK_BYTES
    torch.set_num_threads(1)
    torch.manual_seed(0)
    names = args.only or list(CONFIGS)
    data, spec, shapes = None, args.data, {}
    if args.tiny:
        data, shapes = tiny_data(), TINY
    elif spec is None:
        spec = str(ML100K)
    out = {}
    for name in names:
        options = {**shapes, **CONFIGS[name]}
        out[name] = measure(name, options, spec, data, args.warmup, args.steps)
        e = out[name]
        print(f"{name:24s} ops {e['ops_per_step']:7.1f}  launches {e['launches_per_step']:7.1f}  "
              f"syncs {e['syncs_per_step']:6.2f}  {e['sync_kinds']}", file=sys.stderr)
    print(json.dumps({"data": "tiny" if args.tiny else spec, "steps": args.steps,
                      "blocks": "cpu" if args.cpu_blocks else "gpu", "configs": out}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
