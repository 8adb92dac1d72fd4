"""The rows of the study's tables: settings aggregated over seeds, compared with in-batch.

Every number comes from the cells' ``metrics.json`` (and ``drift.json``); a setting's value is
the mean over its finished seeds, with the sample standard deviation. A difference to in-batch
is paired by seed (the same seed's in-batch run at the batch size named), so the noise shared by
a seed's data split cancels.
"""
from __future__ import annotations

from dataclasses import dataclass

from cbns.config import TrainConfig
from cbns.registry import SAMPLERS
from cbns.study.results import CellResult, Stat


def md_table(head: list[str], rows: list[list[str]]) -> str:
    """A GitHub Markdown table (numbers right-aligned by the caller's formatting)."""
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(stat: Stat | None, digits: int = 4, signed: bool = False) -> str:
    """``mean ± std`` (``mean`` for one seed, an em dash for none)."""
    if stat is None:
        return "—"
    sign = "+" if signed else ""
    text = f"{stat.mean:{sign}.{digits}f}"
    return text + (f" ± {stat.std:.{digits}f}" if stat.std is not None else "")


class InBatchIndex:
    """The finished in-batch cells, found by comparison context and batch size."""

    def __init__(self, results: list[CellResult]):
        self._cells: dict[tuple, list[CellResult]] = {}
        for r in results:
            if r.done and r.cell.sampler_name == "inbatch":
                self._cells.setdefault((r.cell.context_key(), r.cell.batch_size), []).append(r)

    def at(self, like: CellResult, batch_size: int, seeds: list[CellResult] | None = None) -> list[CellResult]:
        """In-batch cells of ``like``'s context (data, tower, training options) at ``batch_size``;
        with ``seeds``, only those whose seed one of these cells has (a like-for-like mean)."""
        found = self._cells.get((like.cell.context_key(), batch_size), [])
        if seeds is not None:
            wanted = {r.cell.seed for r in seeds}
            found = [r for r in found if r.cell.seed in wanted]
        return found


def paired_delta(group: list[CellResult], refs: list[CellResult], part: str, metric: str) -> Stat | None:
    """``group - refs`` of one metric, seed by seed, over the seeds both have."""
    by_seed = {r.cell.seed: r.value(part, metric) for r in refs}
    return Stat.of(r.value(part, metric) - by_seed[r.cell.seed]
                   for r in group if r.done and by_seed.get(r.cell.seed) is not None)


def stat(group: list[CellResult], part: str, metric: str) -> Stat | None:
    return Stat.of(r.value(part, metric) for r in group if r.done)


def ratio(a: Stat | None, b: Stat | None) -> str:
    return f"{a.mean / b.mean:.2f}×" if a and b and b.mean > 0 else "—"


def cost(group: list[CellResult], clock: str | None = None) -> tuple[Stat | None, str]:
    """Seconds per training epoch and which clock: ``cpu`` (process CPU time, see
    :mod:`cbns.training.callbacks.cpu_clock`) when every finished cell recorded it, else ``wall``;
    ``clock`` forces one."""
    done = [r for r in group if r.done]
    cpu = [r.value("", "cpu_seconds_per_epoch") for r in done]
    if clock != "wall" and cpu and all(v is not None for v in cpu):
        return Stat.of(cpu), "cpu"
    return Stat.of(r.value("", "seconds_per_epoch") for r in done), "wall"


def cost_ratio(group: list[CellResult], refs: list[CellResult]) -> str:
    """Time per epoch of ``group`` over ``refs``, in CPU time where both have it (else wall, marked)."""
    (a, clock_a), (b, clock_b) = cost(group), cost(refs)
    if clock_a != clock_b:
        (a, _), (b, _) = cost(group, "wall"), cost(refs, "wall")
    text = ratio(a, b)
    return text + (" (wall)" if "wall" in (clock_a, clock_b) and text != "—" else "")


@dataclass
class Setting:
    """How to name a setting in one section: only the axes that vary there get a column."""

    datasets: bool
    towers: bool
    vary: list[str]

    @staticmethod
    def of(groups: list[list[CellResult]], vary: list[str]) -> Setting:
        cells = [g[0].cell for g in groups]
        return Setting(len({c.dataset.label for c in cells}) > 1, len({c.tower for c in cells}) > 1, vary)

    def head(self) -> list[str]:
        return ((["dataset"] if self.datasets else []) + (["tower"] if self.towers else [])
                + ["sampler", "B", "M"] + self.vary)

    def cells(self, r: CellResult) -> list[str]:
        c = r.cell
        return (([c.dataset.label] if self.datasets else []) + ([c.tower] if self.towers else [])
                + [c.sampler, str(c.batch_size), str(c.memory_size) if c.memory_size is not None else "—"]
                + [str(option(c, k)) for k in self.vary])

    def label(self, r: CellResult) -> str:
        """A legend label: the sampler, then whatever else varies (B, M, options)."""
        c = r.cell
        parts = ([c.dataset.label] if self.datasets else []) + ([c.tower] if self.towers else []) + [c.sampler]
        if c.memory_size is not None:
            parts.append(f"M={c.memory_size}")
        parts += [f"{k}={option(c, k)}" for k in self.vary]
        return " ".join(parts)


def option(cell, name: str):
    """The value of option ``name`` in ``cell``, its default where the spec leaves it."""
    return cell.options.get(name, TrainConfig.default(name))


def metric_names(results: list[CellResult]) -> list[str]:
    """``recall@K``/``ndcg@K`` for the first two cut-offs the finished cells report."""
    for r in results:
        if r.done:
            ks = sorted({int(n.split("@")[1]) for n in r.metrics.get("test", {}) if n.startswith("recall@")})
            return [f"{m}@{k}" for k in ks[:2] for m in ("recall", "ndcg")]
    return ["recall@20", "ndcg@20", "recall@50", "ndcg@50"]


def section_table(groups: list[list[CellResult]], setting: Setting, index: InBatchIndex,
                  names: list[str]) -> str:
    """One row per setting: metrics (mean ± std over seeds), the paired difference to in-batch at
    the same batch size, seconds per epoch, its ratio to in-batch, and the best epoch."""
    key = names[0]
    head = setting.head() + ["seeds", f"valid {short(key)}"] + [f"test {short(n)}" for n in names] + [
        f"Δ test {short(key)} vs in-batch, same B", "s/epoch (wall)", "CPU s/epoch", "time × in-batch",
        "best epoch / run"]
    rows = []
    for group in groups:
        first = group[0]
        done = [r for r in group if r.done]
        seeds = f"{len(done)}/{len(group)}"
        if not done:
            rows.append(setting.cells(first) + [seeds, "pending"] + [""] * (len(head) - len(setting.head()) - 2))
            continue
        refs = index.at(first, first.cell.batch_size, done)
        is_ref = first.cell.sampler_name == "inbatch"
        seconds = stat(done, "", "seconds_per_epoch")
        cpu, clock = cost(done)
        best = Stat.of(r.value("", "best_epoch") for r in done)
        run = Stat.of(r.value("", "epochs_run") for r in done)
        rows.append(setting.cells(first) + [seeds, fmt(stat(done, "valid", key))]
                    + [fmt(stat(done, "test", n)) for n in names]
                    + ["(reference)" if is_ref else fmt(paired_delta(done, refs, "test", key), signed=True),
                       fmt(seconds, 1), fmt(cpu, 1) if clock == "cpu" else "—",
                       "1.00×" if is_ref else cost_ratio(done, refs),
                       f"{best.mean:.3g} / {run.mean:.3g}"])
    return md_table(head, rows)


def short(metric: str) -> str:
    """``recall@20`` -> ``R@20``, ``ndcg@50`` -> ``N@50``."""
    name, k = metric.split("@")
    return {"recall": "R", "ndcg": "N"}.get(name, name) + "@" + k


def negatives_per_row(r: CellResult) -> int | None:
    """How many negatives a row's softmax sees (B-1 in-batch, + M for CBNS, N for sampled, None for
    every item): what the cell's sampler says (:meth:`cbns.objective.sampler_spec.SamplerSpec.negatives_per_row`)."""
    c = r.cell
    return SAMPLERS.get(c.sampler_name).negatives_per_row(c.batch_size, c.config("-").sampler)


def equal_negatives_table(groups: list[list[CellResult]], index: InBatchIndex, key: str) -> tuple[str, list[str]]:
    """CBNS at (B, M) beside in-batch at B and at B + M (the same negatives per row): the table
    and one sentence per pair."""
    head = ["sampler", "B", "M", "negatives / row", f"CBNS test {short(key)}", "in-batch at B",
            "in-batch at B+M", "Δ CBNS − in-batch(B+M)", "CBNS s/epoch", "in-batch(B+M) s/epoch",
            "time CBNS / in-batch(B+M)"]  # seconds: CPU where recorded, else wall (marked)
    rows, notes = [], []
    for group in groups:
        first = group[0]
        done = [r for r in group if r.done]
        if first.cell.sampler_name != "cbns" or not done:
            continue
        B, M = first.cell.batch_size, first.cell.memory_size
        at_b, at_bm = index.at(first, B, done), index.at(first, B + M, done)
        delta = paired_delta(done, at_bm, "test", key)
        (mine, clock_a), (theirs, clock_b) = cost(done), cost(at_bm)
        if clock_a != clock_b:
            (mine, clock_a), (theirs, clock_b) = cost(done, "wall"), cost(at_bm, "wall")
        unit = " CPU" if clock_a == "cpu" else " wall"
        rows.append([first.cell.sampler, str(B), str(M), str(B - 1 + M), fmt(stat(done, "test", key)),
                     fmt(stat(at_b, "test", key)), fmt(stat(at_bm, "test", key)) if at_bm else "not run",
                     fmt(delta, signed=True), fmt(mine, 1) + unit, (fmt(theirs, 1) + unit) if at_bm else "—",
                     ratio(mine, theirs)])
        if at_bm and delta is not None:
            notes.append(f"{first.cell.sampler} at B={B} with M={M}: {verdict(delta)} in-batch at B={B + M} "
                         f"(Δ {fmt(delta, signed=True)}, {delta.n} seed{'s' if delta.n > 1 else ''}), "
                         f"at {ratio(mine, theirs)} its{unit} training time per epoch.")
    return md_table(head, rows), notes


def verdict(delta: Stat) -> str:
    """``matches`` when the paired difference is within two standard deviations of zero (or
    within 0.002 for a single seed), else ``beats`` / ``trails``."""
    noise = 2 * delta.std if delta.std is not None else 0.002
    if abs(delta.mean) <= max(noise, 1e-4):
        return "matches"
    return "beats" if delta.mean > 0 else "trails"


def drift_table(items: list[tuple[str, CellResult]]) -> tuple[str, list[str]]:
    """Per drawn cell: mean D(t, dt) over the first and the last epoch for the smallest and
    largest dt, and the first/last ratio; plus one sentence per cell on whether drift fell."""
    head = ["run", "dt", "first measurement", "mean over epoch 1", "mean over last epoch", "epoch 1 / last",
            "mean before warm-up end", "mean after"]
    rows, notes = [], []
    for name, r in items:
        d = r.drift
        steps, per_epoch, warm = d["steps"], d.get("steps_per_epoch") or 0, d.get("warmup_steps") or 0
        last_epoch = (max(steps) - 1) // per_epoch if steps and per_epoch else 0
        for dt in sorted({d["deltas"][0], d["deltas"][-1]}):
            pts = [(s, v) for s, v in zip(steps, d["drift"][str(dt)]) if v is not None]
            if not pts:
                continue
            first = _mean(v for s, v in pts if per_epoch and s <= per_epoch)
            last = _mean(v for s, v in pts if per_epoch and (s - 1) // per_epoch == last_epoch)
            before = _mean(v for s, v in pts if s <= warm) if warm else None
            after = _mean(v for s, v in pts if s > warm) if warm else None
            rows.append([name, str(dt), f"{pts[0][1]:.2f} (t={pts[0][0]})", _num(first), _num(last),
                         f"{first / last:.2f}" if first and last else "—", _num(before), _num(after)])
            if dt == d["deltas"][0] and first and last and last_epoch > 0:
                trend = "fell" if first > last else "did not fall"
                notes.append(f"{name}: D(t, {dt}) {trend} from {first:.2f} (epoch 1 mean) to {last:.2f} "
                             f"(epoch {last_epoch + 1} mean), {first / last:.1f}×.")
    return md_table(head, rows), notes


def _mean(values) -> float | None:
    xs = list(values)
    return sum(xs) / len(xs) if xs else None


def _num(x: float | None) -> str:
    return f"{x:.2f}" if x is not None else "—"
