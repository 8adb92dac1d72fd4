"""Running a study: every pending cell in turn, one progress bar, then the report.

Resumable: each cell trains into ``OUT/cells/<name>`` and counts as finished once its
``metrics.json`` exists (written last, atomically) and its ``config.yaml`` still agrees with the
cell's configuration; finished cells are read back, never retrained. An interrupted study (Ctrl-C,
a killed process) is resumed by running the same command again.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from cbns.config import TrainConfig
from cbns.runs.run_dir import prepare_out_dir
from cbns.study.cells import NOT_HASHED, Cell, expand
from cbns.study.datasets import data_path
from cbns.study.results import METRICS_FILE, CellResult, read_cell
from cbns.study.spec import StudySpec
from cbns.training.callbacks.cpu_clock import CpuClock
from cbns.training.recipe import RESOLVED, leaves_to_recipe

CELLS_DIR = "cells"
#: while training, rewrite the report after a cell once this many seconds have passed
REFRESH_SECONDS = 600.0


@dataclass
class StudyRun:
    """What :func:`run_study` did: the results of every cell and the files it wrote."""

    results: list[CellResult]
    trained: list[str]
    report: Path
    results_json: Path
    plots: list[Path]

    @property
    def pending(self) -> list[str]:
        return [r.cell.name for r in self.results if not r.done]


def run_study(spec: StudySpec, out: str | Path, threads: int | None = None, progress: bool = True,
              train_missing: bool = True, command: str | None = None,
              refresh_seconds: float = REFRESH_SECONDS, device: str | None = None,
              before_cell: Callable[[TrainConfig], object] | None = None) -> StudyRun:
    """Train the pending cells of ``spec`` into ``out`` (unless ``train_missing`` is False), then
    write ``report.md``, ``results.json`` and the plots from every finished cell.

    ``threads`` and ``device`` override every cell's (neither is part of a cell's identity);
    ``threads`` is recorded in each cell's configuration, and setting the process's thread count
    from it is left to ``before_cell`` (called with each cell's configuration before it trains;
    the command line applies its threads there). While
    cells train, the outputs are rewritten after a cell whenever ``refresh_seconds`` have passed
    since the last write, so a long study always shows how far it got. If training stops
    (Ctrl-C, a failing cell), the outputs of the cells finished so far are written before the
    exception propagates.
    """
    from cbns.study.report import write_outputs

    out = prepare_out_dir(Path(out))
    cells = expand(spec)

    def write():
        return write_outputs(spec, out, [_read(c, out) for c in cells], command, threads)

    trained: list[str] = []
    try:
        if train_missing:
            trained = _train_pending(cells, out, threads, progress, write, refresh_seconds, device, before_cell)
    except BaseException:  # Ctrl-C or a failing cell: report what finished, then stop
        write()
        raise
    report, results_json, plots = write()
    return StudyRun([_read(c, out) for c in cells], trained, report, results_json, plots)


def cell_dir(out: Path, cell: Cell) -> Path:
    return out / CELLS_DIR / cell.name


def is_finished(cell: Cell, out: Path) -> bool:
    """True when the cell's run directory holds its metrics and a configuration that matches (an
    option the cell leaves to the recipe, such as ``sampler: auto``, matches what it resolved to)."""
    folder = cell_dir(out, cell)
    if not (folder / METRICS_FILE).is_file():
        return False
    try:
        saved = yaml.safe_load((folder / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return False
    config = cell.config(saved.get("data", ""))
    skip = {"data", *NOT_HASHED, *(k for k in RESOLVED if leaves_to_recipe(k, config))}
    return all(saved[k] == v for k, v in config.to_dict().items() if k in saved and k not in skip)


def _read(cell: Cell, out: Path) -> CellResult:
    return read_cell(cell, cell_dir(out, cell)) if is_finished(cell, out) else CellResult(cell, cell_dir(out, cell))


def _train_pending(cells: list[Cell], out: Path, threads: int | None, progress: bool, write,
                   refresh_seconds: float, device: str | None = None, before_cell=None) -> list[str]:
    from cbns.api import train

    written = time.monotonic()
    pending = [c for c in cells if not is_finished(c, out)]
    trained = []
    bar = tqdm(total=len(cells), initial=len(cells) - len(pending), unit="cell", desc="study",
               disable=not progress, dynamic_ncols=True)
    for cell in pending:
        bar.set_postfix_str(cell.name)
        folder = cell_dir(out, cell)
        if (folder / METRICS_FILE).is_file():
            bar.write(f"{cell.name}: options changed since it ran; training it again")
        config = cell.config(data_path(cell.dataset, out), threads, device)
        if before_cell is not None:
            before_cell(config)
        start = time.perf_counter()
        result = train(config, folder, progress=False, verbose=False, callbacks=[CpuClock()],
                       overwrite=True)  # a finished cell here ran with other options: replaced once this one ends
        trained.append(cell.name)
        bar.update(1)
        bar.write(f"{cell.name}: test recall@20 {result.test.get('recall@20', float('nan')):.4f}, "
                  f"{result.seconds_per_epoch:.1f} s/epoch, best epoch {result.best_epoch}/{result.epochs_run}, "
                  f"{time.perf_counter() - start:.0f} s")
        if cell is not pending[-1] and time.monotonic() - written >= refresh_seconds:
            write()
            written = time.monotonic()
    bar.close()
    return trained
