"""The study's outputs: ``report.md``, ``results.json`` and the PNG plots under ``plots/``.

Each section of the spec becomes a part of the report: its table (every setting, mean ± std
over seeds), and by kind: ``samplers`` adds the published anchors and validation recall against
training time; ``memory`` plots test recall against the bank size M; ``batch`` puts CBNS at
(B, M) beside in-batch at B + M and plots recall against B and against negatives per row. A
section with ``drift_plot`` draws and tabulates its cells' item-embedding drift.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
from pathlib import Path

import torch

from cbns.config import TrainConfig
from cbns.plots.panels import Panel, Series, save_drift_grid, save_panels
from cbns.runs.run_dir import write_json
from cbns.study.anchors import anchors_for
from cbns.study.results import CellResult, Stat, group_by_setting
from cbns.study.spec import SPECS_DIR, Section, StudySpec
from cbns.study.tables import (
    InBatchIndex,
    Setting,
    cost,
    drift_table,
    equal_negatives_table,
    md_table,
    metric_names,
    negatives_per_row,
    option,
    section_table,
    short,
    stat,
)

PLOTS_DIR = "plots"


def write_outputs(spec: StudySpec, out: Path, results: list[CellResult], command: str | None = None,
                  threads: int | None = None) -> tuple[Path, Path, list[Path]]:
    """Write ``results.json``, the plots and ``report.md`` from ``results``; returns their paths."""
    results_json = out / "results.json"
    write_json(results_json, {"spec": spec.name, "source": spec.source,
                              "cells": [r.to_json(out) for r in results]})
    (out / PLOTS_DIR).mkdir(exist_ok=True)
    index = InBatchIndex(results)
    names = metric_names(results)
    parts, plots = [_header(spec, results, command, threads)], []
    for section in spec.sections:
        text, figs = _section(section, [r for r in results if section.name in r.cell.sections], index, names, out)
        parts.append(text)
        plots += figs
    report = out / "report.md"
    report.write_text("\n\n".join(parts) + "\n")
    return report, results_json, plots


def _spec_place(source: str) -> str:
    """A bundled spec by its path in the package (the same on every machine), a user's file as given."""
    path = Path(source)
    if path.parent.resolve() == SPECS_DIR.resolve():
        return f"bundled, `cbns/study/specs/{path.name}`"
    return f"`{source}`"


def _header(spec: StudySpec, results: list[CellResult], command: str | None, threads: int | None) -> str:
    done = [r for r in results if r.done]
    seconds = sum(r.value("", "train_seconds") or 0.0 for r in done)
    if threads is None:
        threads = spec.base.get("threads", TrainConfig.default("threads"))
    lines = [f"# Study `{spec.name}`", ""]
    if spec.description:
        lines += [spec.description, ""]
    lines += [f"- command: `{command or f'cbns.study.run_study(cbns.study.load_spec({str(spec.source)!r}), ...)'}`",
              f"- spec: {_spec_place(spec.source)}",
              f"- cells finished: {len(done)} of {len(results)}"
              + ("" if len(done) == len(results) else " (rerun the command to finish the rest)"),
              f"- training time of the finished cells: {seconds / 60:.1f} min (validation and test excluded)",
              f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
              f"torch {torch.__version__}; written {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}",
              "",
              "How to read: every number is a test-set metric of the epoch with the best validation "
              "Recall (full ranking over all items, training items masked), as mean ± sample standard "
              "deviation over the seeds listed (`seeds` = finished/asked). Δ vs in-batch is paired by seed. "
              f"Times are per training epoch (validation excluded), with {threads or 'all'} torch "
              f"thread{'s' if threads != 1 else ''} per cell: wall-clock, and the process's CPU time, which "
              "a busy machine distorts far less; time ratios use CPU time where both cells recorded it."]
    return "\n".join(lines)


def _section(section: Section, results: list[CellResult], index: InBatchIndex, names: list[str],
             out: Path) -> tuple[str, list[Path]]:
    groups = sorted(group_by_setting(results), key=lambda g: _order(section, g[0]))
    setting = Setting.of(groups, list(section.vary))
    parts = [f"## {section.title}", section_table(groups, setting, index, names)]
    plots: list[Path] = []
    key = names[0]
    if section.kind == "samplers":
        parts += _anchors(results, key)
        plots.append(_convergence(section, groups, setting, out, key))
    elif section.kind == "memory":
        plots.append(_memory_plot(section, groups, setting, index, out, key))
    elif section.kind == "batch":
        table, notes = equal_negatives_table(groups, index, key)
        parts += ["### Equal negatives: CBNS at (B, M) against in-batch at B + M", table]
        parts += ["\n".join(f"- {n}" for n in notes)] if notes else []
        plots.append(_batch_plot(section, groups, setting, out, key))
    if section.drift_plot:
        drift_text, drift_plot = _drift(section, groups, setting, out)
        parts += drift_text
        plots += drift_plot
    parts += [f"![{p.stem}]({PLOTS_DIR}/{p.name})" for p in plots if p is not None]
    return "\n\n".join(parts), [p for p in plots if p is not None]


def _order(section: Section, r: CellResult) -> tuple:
    """Table order: the section's sampler order, then B, M and the varied options."""
    c = r.cell
    return (section.datasets.index(c.dataset.label) if c.dataset.label in section.datasets else 0,
            section.towers.index(c.tower) if c.tower in section.towers else 0,
            section.samplers.index(c.sampler) if c.sampler in section.samplers else len(section.samplers),
            c.batch_size, c.memory_size or 0,
            tuple((type(v).__name__, v) for v in (option(c, k) for k in section.vary)))


def _anchors(results: list[CellResult], key: str) -> list[str]:
    texts = []
    for source in sorted({r.cell.dataset.source for r in results if r.cell.dataset.users is None}):
        found = anchors_for(source)
        if found is None or not key.endswith("@20"):
            continue
        name, rows = found
        texts.append(f"Published anchors on {name} (full ranking, @20; trained to convergence with the "
                     f"epoch chosen on the test set, so an upper reference rather than a like-for-like "
                     f"number):\n\n" + md_table(["model", "Recall@20", "NDCG@20"],
                                                 [[m, f"{r:.4f}", f"{n:.4f}"] for m, r, n in rows]))
    return texts


def _convergence(section, groups, setting: Setting, out: Path, key: str) -> Path | None:
    series = []
    clock = _clock([r for g in groups for r in g if r.done])
    for group in groups:
        label = setting.label(group[0]) + (f" B={group[0].cell.batch_size}" if len(section.batch_sizes) > 1 else "")
        for i, r in enumerate(x for x in group if x.done):
            pts = r.curve(key, clock)
            if pts:  # one colour per setting, one line style and marker per seed
                series.append(Series(f"{label} (seed {r.cell.seed})", [p[0] for p in pts], [p[1] for p in pts],
                                     color_key=label, variant=i))
    if not series:
        return None
    panel = Panel(f"Validation {short(key)} against training time (one line per seed: colour = setting, "
                  f"line style = seed)",
                  f"cumulative training {'CPU time' if clock == 'cpu' else 'wall-clock'} (s, validation excluded)",
                  f"validation {key}", series)
    return save_panels([panel], out / PLOTS_DIR / f"{section.name}_convergence.png", cols=1)


def _line(points: dict, label: str, color_key: str | None = None) -> Series:
    xs = sorted(points)
    return Series(label, xs, [points[x].mean for x in xs], [points[x].std for x in xs], color_key=color_key)


def _memory_plot(section, groups, setting: Setting, index: InBatchIndex, out: Path, key: str) -> Path | None:
    lines: dict[str, dict] = {}
    seconds: dict[str, dict] = {}
    refs: dict[tuple, tuple[str, Stat | None, Stat | None]] = {}
    for group in groups:
        first, done = group[0], [r for r in group if r.done]
        if first.cell.memory_size is None or not done:
            continue
        name = " ".join(p for p in setting.label(first).split() if not p.startswith("M="))
        name += f" B={first.cell.batch_size}" if len(section.batch_sizes) > 1 else ""
        m = first.cell.memory_size
        if m > 0:
            lines.setdefault(name, {})[m] = stat(done, "test", key)
            seconds.setdefault(name, {})[m] = done
        ref = index.at(first, first.cell.batch_size, done)
        if ref:
            refs[(first.cell.context_key(), first.cell.batch_size)] = (
                f"in-batch at B={first.cell.batch_size}", stat(ref, "test", key), ref)
    if not lines:
        return None
    hlines = [(s.mean, label) for label, s, _ in refs.values() if s is not None]
    clock = _clock([r for points in seconds.values() for g in points.values() for r in g]
                   + [r for _, _, ref in refs.values() for r in ref])
    seconds = {k: {m: cost(g, clock)[0] for m, g in v.items()} for k, v in seconds.items()}
    ref_seconds = [(t.mean, label) for label, _, ref in refs.values() for t in [cost(ref, clock)[0]] if t]
    panels = [Panel(f"Test {short(key)} against the bank size", "memory size M (items, log scale)",
                    f"test {key}", [_line(v, k) for k, v in lines.items()], log2_x=True, hlines=hlines),
              Panel("Training time against the bank size", "memory size M (items, log scale)",
                    _TIME_LABEL[clock], [_line(v, k) for k, v in seconds.items()], log2_x=True,
                    hlines=ref_seconds)]
    return save_panels(panels, out / PLOTS_DIR / f"{section.name}_memory.png")


def _batch_plot(section, groups, setting: Setting, out: Path, key: str) -> Path | None:
    by_b: dict[str, dict] = {}
    by_neg: dict[str, dict] = {}
    secs: dict[str, dict] = {}
    for group in groups:
        first, done = group[0], [r for r in group if r.done]
        if not done:
            continue
        c = first.cell
        name = c.sampler + (f" M={c.memory_size / c.batch_size:g}B" if c.memory_size is not None else "")
        name += "".join(f" {k}={v}" for k, v in c.vary.items())
        by_b.setdefault(name, {})[c.batch_size] = stat(done, "test", key)
        by_neg.setdefault(name, {})[negatives_per_row(first)] = stat(done, "test", key)
        secs.setdefault(name, {})[c.batch_size] = done
    if not by_b:
        return None
    clock = _clock([r for points in secs.values() for g in points.values() for r in g])
    secs = {k: {b: cost(g, clock)[0] for b, g in v.items()} for k, v in secs.items()}
    panels = [Panel(f"Test {short(key)} against the batch size", "batch size B (log scale)", f"test {key}",
                    [_line(v, k) for k, v in by_b.items()], log2_x=True),
              Panel(f"Test {short(key)} at equal negatives per row",
                    "negatives per row (B − 1 in-batch, B − 1 + M CBNS; log scale)", f"test {key}",
                    [_line(v, k) for k, v in by_neg.items()], log2_x=True),
              Panel("Training time against the batch size", "batch size B (log scale)",
                    _TIME_LABEL[clock], [_line(v, k) for k, v in secs.items()], log2_x=True)]
    return save_panels(panels, out / PLOTS_DIR / f"{section.name}_batch.png", cols=3)


_TIME_LABEL = {"cpu": "process CPU seconds per training epoch", "wall": "wall-clock seconds per training epoch"}


def _clock(results: list[CellResult]) -> str:
    """``cpu`` when every one of ``results`` recorded CPU time, else ``wall``: one clock per plot."""
    return cost(results)[1] if results else "wall"


def _drift(section, groups, setting: Setting, out: Path) -> tuple[list[str], list[Path]]:
    items = []
    for group in groups:
        first = next((r for r in group if r.done and r.drift), None)
        if first is not None:
            name = setting.label(first) + f" B={first.cell.batch_size} seed {first.cell.seed}"
            items.append((name, first))
    if not items:
        return [], []
    plot = save_drift_grid([(n, r.drift) for n, r in items], out / PLOTS_DIR / f"{section.name}_drift.png",
                           "Item-tower feature drift D(t, dt) over a fixed item sample")
    table, notes = drift_table(items)
    text = ["### Item-embedding drift", table] + (["\n".join(f"- {n}" for n in notes)] if notes else [])
    return text, [plot]
