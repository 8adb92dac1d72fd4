"""The Python entry points: ``train(config, out)`` and ``evaluate_run(run_dir)``."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from cbns.build import build_loss, build_model, build_sampler
from cbns.config import TrainConfig
from cbns.distributed import build_trainer, init_distributed
from cbns.drift import drift_callback, save_drift
from cbns.evaluate import evaluate_split
from cbns.runtime import set_threads, tune_allocator
from cbns.run_dir import load_checkpoint, load_data, load_run_config, prepare_out_dir, resolved, save_run
from cbns.train import Callback, TrainResult


def train(config: TrainConfig, out: str | Path | None = None, progress: bool = True,
          verbose: bool = True, callbacks: Sequence[Callback] = ()) -> TrainResult:
    """Train, validate, test once; with ``out``, write the run directory (see :mod:`cbns.run_dir`).

    Under ``torchrun`` (or ``cbns train --nproc N``) every process calls this and trains as one
    rank (see :mod:`cbns.distributed`); all return the same result, and rank 0 alone writes ``out``.
    With ``config.drift_every`` > 0 the run also records item-embedding drift
    (:mod:`cbns.drift`) into ``drift.json`` and ``drift.png``.
    """
    config = resolved(config.validate())
    ctx = init_distributed()
    try:
        out_dir = prepare_out_dir(Path(out)) if out is not None and ctx.is_main else None
        set_threads(ctx.threads(config.threads))
        tune_allocator()
        data = load_data(config)
        model = build_model(config, data.num_users, data.num_items)
        sampler = build_sampler(config, data.item_counts())
        drift = drift_callback(config, data.num_items)
        callbacks = [*callbacks, drift] if drift is not None else list(callbacks)
        trainer = build_trainer(ctx, config, data, model, sampler, build_loss(config), progress=progress,
                                verbose=verbose, callbacks=callbacks)
        result = trainer.fit()
        if out_dir is not None:
            if drift is not None:
                save_drift(out_dir, drift, config, steps_per_epoch=-(-len(data.train) // config.batch_size))
            metrics = {**result.to_dict(), "dataset": data.summary(), "world_size": ctx.world_size}
            save_run(out_dir, config, data, model, sampler, metrics)
        ctx.barrier()
    finally:
        ctx.close()
    return result


def evaluate_run(run: str | Path) -> dict[str, dict[str, float]]:
    """Recompute the valid and test metrics of a run directory from its checkpoint."""
    run = Path(run)
    config = load_run_config(run)
    set_threads(config.threads)
    data = load_data(config)
    state = load_checkpoint(run)
    model = build_model(config, data.num_users, data.num_items)
    model.load_state_dict(state["model"])
    parts = ("valid", "test") if len(data.valid) else ("test",)
    return {part: evaluate_split(model, data, part, config.ks) for part in parts}
