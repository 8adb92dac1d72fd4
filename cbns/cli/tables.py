"""Small plain-text tables for the terminal."""
from __future__ import annotations

from cbns.config import TrainConfig
from cbns.registry import SAMPLERS
from cbns.training.result import TrainResult

#: The narrowest metric column; a wider name or value (``precision@10000``) widens its column so
#: that at least a space separates it from the one before.
COLUMN = 13


def metrics_table(parts: dict[str, dict[str, float]]) -> str:
    """One row per part (valid, test), one column per metric."""
    names = sorted({n for m in parts.values() for n in m}, key=lambda n: (n.split("@")[0], int(n.split("@")[1])))
    width = max([6, *(len(part) for part in parts)])
    cells = {part: [f"{m.get(n, float('nan')):.4f}" for n in names] for part, m in parts.items() if m}
    widths = [max(COLUMN, 1 + max([len(n), *(len(row[c]) for row in cells.values())])) for c, n in enumerate(names)]
    head = " " * width + "".join(f"{n:>{w}s}" for n, w in zip(names, widths))
    rows = [f"{part:{width}s}" + "".join(f"{v:>{w}s}" for v, w in zip(row, widths)) for part, row in cells.items()]
    return "\n".join([head, *rows])


def results_table(result: TrainResult, config: TrainConfig) -> str:
    parts = {"valid": result.valid, "test": result.test}
    sampler = config.sampler
    lines = [f"sampler {sampler.name}  batch {sampler.batch_size}"
             + (f"  memory {sampler.memory_size}" if "memory_size" in SAMPLERS.options(sampler.name) else "")
             + f"  best epoch {result.best_epoch}/{result.epochs_run}  {result.seconds_per_epoch:.1f}s/epoch",
             metrics_table(parts)]
    return "\n".join(lines)
