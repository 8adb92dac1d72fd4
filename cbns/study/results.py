"""Reading finished cells back, and aggregating repeats over seeds."""
from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cbns.study.cells import Cell

METRICS_FILE = "metrics.json"
DRIFT_FILE = "drift.json"


@dataclass
class CellResult:
    """A cell and what its run directory holds (``metrics`` is ``None`` while it is pending)."""

    cell: Cell
    dir: Path
    metrics: dict | None = None
    drift: dict | None = None

    @property
    def done(self) -> bool:
        return self.metrics is not None

    def value(self, part: str, name: str) -> float | None:
        """``metrics[part][name]`` (``part`` = valid or test), or for ``part=""`` a top-level
        number or ``cpu_seconds_per_epoch`` (see :mod:`cbns.training.callbacks.cpu_clock`; ``None`` if not recorded)."""
        if self.metrics is None:
            return None
        if not part and name == "cpu_seconds_per_epoch":
            return self.cpu_seconds_per_epoch
        value = self.metrics.get(part, {}).get(name) if part else self.metrics.get(name)
        return float(value) if value is not None else None

    @property
    def cpu_seconds_per_epoch(self) -> float | None:
        cpu = [h["cpu_seconds"] for h in (self.metrics or {}).get("history", []) if "cpu_seconds" in h]
        return sum(cpu) / len(cpu) if cpu else None

    def curve(self, metric: str = "recall@20", clock: str = "wall") -> list[tuple[float, float]]:
        """``[(cumulative training seconds, validation metric)]`` at each validated epoch; seconds
        of wall-clock, or of process CPU time for ``clock="cpu"``."""
        field = "cpu_seconds" if clock == "cpu" else "seconds"
        points, elapsed = [], 0.0
        for record in (self.metrics or {}).get("history", []):
            elapsed += record.get(field, 0.0)
            if "valid" in record:
                points.append((elapsed, record["valid"][metric]))
        return points

    def to_json(self, out: Path) -> dict:
        c = self.cell
        entry = {"name": c.name, "dir": str(self.dir.relative_to(out)), "status": "done" if self.done else "pending",
                 "sections": c.sections, "dataset": c.dataset.label, "tower": c.tower, "sampler": c.sampler,
                 "batch_size": c.batch_size, "memory_size": c.memory_size, "seed": c.seed, "vary": c.vary,
                 "options": c.options}
        if self.metrics is not None:
            keep = ("valid", "test", "best_epoch", "epochs_run", "train_seconds", "seconds_per_epoch", "history")
            entry.update({k: self.metrics[k] for k in keep if k in self.metrics})
            entry["cpu_seconds_per_epoch"] = self.cpu_seconds_per_epoch
        return entry


def read_cell(cell: Cell, cell_dir: Path) -> CellResult:
    metrics = _read_json(cell_dir / METRICS_FILE)
    drift = _read_json(cell_dir / DRIFT_FILE) if metrics is not None else None
    return CellResult(cell, cell_dir, metrics, drift)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@dataclass
class Stat:
    """Mean and sample standard deviation (``None`` for one value) of ``n`` values."""

    mean: float
    std: float | None
    n: int

    @staticmethod
    def of(values: Iterable[float | None]) -> Stat | None:
        xs = [v for v in values if v is not None]
        if not xs:
            return None
        mean = sum(xs) / len(xs)
        std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else None
        return Stat(mean, std, len(xs))


def group_by_setting(results: Iterable[CellResult]) -> list[list[CellResult]]:
    """Results grouped by :meth:`Cell.setting_key` (seeds together), in first-seen order."""
    groups: dict[tuple, list[CellResult]] = {}
    for r in results:
        groups.setdefault(r.cell.setting_key(), []).append(r)
    return list(groups.values())
