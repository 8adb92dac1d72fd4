"""Small plain-text tables for the terminal."""
from __future__ import annotations

from cbns.config import TrainConfig
from cbns.registry import SAMPLERS
from cbns.training.result import TrainResult


def metrics_table(parts: dict[str, dict[str, float]]) -> str:
    """One row per part (valid, test), one column per metric."""
    names = sorted({n for m in parts.values() for n in m}, key=lambda n: (n.split("@")[0], int(n.split("@")[1])))
    width = max([6, *(len(part) for part in parts)])
    head = " " * width + "".join(f"{n:>13s}" for n in names)
    rows = [f"{part:{width}s}" + "".join(f"{m.get(n, float('nan')):13.4f}" for n in names)
            for part, m in parts.items() if m]
    return "\n".join([head, *rows])


def results_table(result: TrainResult, config: TrainConfig) -> str:
    parts = {"valid": result.valid, "test": result.test}
    sampler = config.sampler
    lines = [f"sampler {sampler.name}  batch {sampler.batch_size}"
             + (f"  memory {sampler.memory_size}" if "memory_size" in SAMPLERS.options(sampler.name) else "")
             + f"  best epoch {result.best_epoch}/{result.epochs_run}  {result.seconds_per_epoch:.1f}s/epoch",
             metrics_table(parts)]
    return "\n".join(lines)
