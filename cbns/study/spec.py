"""The study spec: a YAML file naming the grid of runs and how the report groups them.

Layout (every key optional except ``sections``)::

    description: text shown at the top of the report
    base: {option: value}            # TrainConfig options of every cell
    datasets:                        # label -> a data value, or a user slice of one
      gowalla: gowalla
      gowalla-3k: {from: gowalla, users: 3000, seed: 0}
    towers: {id: {}}                 # label -> options (e.g. {user_tower: gru}); default {id: {}}
    samplers:                        # label -> options; default one label per sampler name
      inbatch: {sampler: inbatch}
      cbns-split: {sampler: cbns, item_side: split}
    seeds: [0, 1]
    sections:                        # name -> one grid and one part of the report
      samplers:
        kind: samplers               # samplers | memory | batch | table (default table)
        title: Sampler comparison
        samplers: [inbatch, cbns-split]   # labels; default all (likewise datasets, towers)
        batch_sizes: [2048]          # default [base batch_size]
        memory_sizes: [2048, 2B]     # cbns samplers only; "kB" = k times the batch size
        seeds: [0, 1, 2]             # default the top-level seeds
        vary: {warmup_steps: [0, 100]}    # further axes over any option
        options: {epochs: 3}         # overrides for this section's cells
        drift_plot: true             # draw these cells' drift curves (default: kind samplers)

A cell's options are, later winning: base, dataset, tower, sampler, section options, vary,
then batch size, memory size and seed. A ``batch`` section also runs, for every CBNS cell at
(B, M), its section's in-batch sampler at batch size B + M: the same negatives per row.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cbns.config import TrainConfig, check_option
from cbns.config.yaml_file import load_yaml_text
from cbns.errors import CbnsError, Opt
from cbns.registry import SAMPLERS

SPECS_DIR = Path(__file__).with_name("specs")
KINDS = ("samplers", "memory", "batch", "table")
_TOP_KEYS = {"description", "base", "datasets", "towers", "samplers", "seeds", "sections"}
_SECTION_KEYS = {"kind", "title", "samplers", "datasets", "towers", "batch_sizes", "memory_sizes", "seeds",
                 "vary", "options", "drift_plot"}
_RELATIVE_MEMORY = re.compile(r"^(\d+(?:\.\d+)?|\.\d+)?B$")


@dataclass
class DatasetSpec:
    """A dataset of the study: ``source`` (a data value) and, for a slice, its user count."""

    label: str
    source: str
    users: int | None = None
    seed: int = 0

    @property
    def identity(self) -> dict:
        """What makes the data of a cell: stable across output folders (hashed into cell ids)."""
        if self.users is None:
            return {"source": self.source}
        return {"source": self.source, "users": self.users, "seed": self.seed}


@dataclass
class Section:
    """One grid of the study and one part of its report."""

    name: str
    kind: str
    title: str
    samplers: list[str]
    datasets: list[str]
    towers: list[str]
    batch_sizes: list[int]
    memory_sizes: list[int | float | str]  # int = items; float = multiple of the batch size
    seeds: list[int]
    vary: dict[str, list[Any]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    drift_plot: bool = False


@dataclass
class StudySpec:
    """A parsed, checked study spec (see the module docstring for the YAML form)."""

    name: str
    source: str
    description: str
    base: dict[str, Any]
    datasets: dict[str, DatasetSpec]
    towers: dict[str, dict[str, Any]]
    samplers: dict[str, dict[str, Any]]
    seeds: list[int]
    sections: list[Section]


def bundled_specs() -> list[str]:
    """Names of the specs shipped with the package (``default``, ``quick``, ...)."""
    return sorted(p.stem for p in SPECS_DIR.glob("*.yaml"))


def load_spec(name_or_path: str) -> StudySpec:
    """A bundled spec by name, or a YAML file by path; :class:`CbnsError` naming the key on error."""
    path = Path(name_or_path)
    if name_or_path in bundled_specs():
        path = SPECS_DIR / f"{name_or_path}.yaml"
    elif not path.is_file():
        raise CbnsError(Opt("spec", name_or_path), f": no such file, and not a bundled spec "
                        f"({', '.join(bundled_specs())})")
    try:
        raw = load_yaml_text(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise CbnsError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    except UnicodeDecodeError:
        raise CbnsError(f"{path}: not a text file") from None
    return parse_spec(raw, source=str(path), name=path.stem, root=path.parent)


def parse_spec(raw: Any, source: str = "<spec>", name: str = "study", root: Path | None = None) -> StudySpec:
    """Check ``raw`` (the loaded YAML) and fill defaults. Relative dataset paths are looked up
    under ``root`` (the spec's folder) first, then the current directory."""
    where = _Where(source)
    raw = where.mapping(raw, "")
    where.known(raw, _TOP_KEYS, "")
    base = where.options(raw.get("base", {}), "base")
    datasets = _datasets(raw.get("datasets"), base, where, root)
    towers_raw = where.mapping(raw.get("towers", {"id": {}}), "towers")
    towers = {str(k): where.options(v, f"towers.{k}") for k, v in towers_raw.items()}
    samplers_raw = raw.get("samplers", {s: {"sampler": s} for s in SAMPLERS})
    samplers = {str(k): where.options(v, f"samplers.{k}") for k, v in where.mapping(samplers_raw, "samplers").items()}
    seeds = where.ints(raw.get("seeds", [base.get("seed", 0)]), "seeds", minimum=0)
    defaults = TrainConfig(**{k: v for k, v in base.items() if k != "data"})
    sections_raw = where.mapping(raw.get("sections"), "sections")
    if not sections_raw:
        raise CbnsError(f"{source}: sections: at least one section is needed")
    sections = [_section(str(n), body, where, defaults, datasets, towers, samplers, seeds)
                for n, body in sections_raw.items()]
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise CbnsError(f"{source}: description: expected text, got {description!r}")
    return StudySpec(name, source, description.strip(), base, datasets, towers, samplers, seeds, sections)


def _datasets(raw, base: dict, where: _Where, root: Path | None) -> dict[str, DatasetSpec]:
    if raw is None:
        raw = [base.get("data", TrainConfig.default("data"))]
    if isinstance(raw, list):
        raw = {Path(str(d)).name or str(d): d for d in raw}
    out = {}
    for label, value in where.mapping(raw, "datasets").items():
        key = f"datasets.{label}"
        if isinstance(value, str):
            out[str(label)] = DatasetSpec(str(label), _locate(value, root))
            continue
        body = where.mapping(value, key)
        where.known(body, {"from", "users", "seed"}, key)
        if not isinstance(body.get("from"), str):
            raise CbnsError(f"{where.source}: {key}.from: expected a dataset (a data option's value), "
                            f"got {body.get('from')!r}")
        users = where.ints([body.get("users")], f"{key}.users", minimum=1)[0]
        seed = where.ints([body.get("seed", 0)], f"{key}.seed", minimum=0)[0]
        out[str(label)] = DatasetSpec(str(label), _locate(body["from"], root), users, seed)
    return out


def _locate(data: str, root: Path | None) -> str:
    """A dataset path relative to the spec's folder when it exists there, else unchanged."""
    if root is not None and not Path(data).is_absolute() and (root / data).exists():
        return str((root / data).resolve())
    return str(Path(data).resolve()) if Path(data).exists() else data


def _section(name, raw, where, defaults: TrainConfig, datasets, towers, samplers, seeds) -> Section:
    key = f"sections.{name}"
    body = where.mapping(raw, key)
    where.known(body, _SECTION_KEYS, key)
    kind = body.get("kind", "table")
    if kind not in KINDS:
        raise CbnsError(f"{where.source}: {key}.kind: must be one of {', '.join(KINDS)}, got {kind!r}")
    options = where.options(body.get("options", {}), f"{key}.options")
    vary = where.mapping(body.get("vary", {}), f"{key}.vary")
    for option, values in vary.items():
        if not isinstance(values, list) or not values:
            raise CbnsError(f"{where.source}: {key}.vary.{option}: expected a non-empty list, got {values!r}")
        vary[option] = [check_option(option, v, f"{where.source}: {key}.vary") for v in values]
    batch = options.get("batch_size", defaults.sampler.batch_size)
    memory = options.get("memory_size", defaults.sampler.memory_size)
    labels = where.labels(body.get("samplers"), samplers, f"{key}.samplers")
    if kind == "batch" and not any(samplers[s].get("sampler") == "inbatch" for s in labels):
        raise CbnsError(f"{where.source}: {key}.samplers: a batch section compares CBNS with in-batch at "
                        f"B + M, so it needs a label with sampler: inbatch, got {', '.join(labels)}")
    return Section(
        name=name, kind=kind, title=str(body.get("title", name)),
        samplers=labels,
        datasets=where.labels(body.get("datasets"), datasets, f"{key}.datasets"),
        towers=where.labels(body.get("towers"), towers, f"{key}.towers"),
        batch_sizes=where.ints(body.get("batch_sizes", [batch]), f"{key}.batch_sizes", minimum=1),
        memory_sizes=[_memory(m, where, f"{key}.memory_sizes")
                      for m in where.list(body.get("memory_sizes", [memory]), f"{key}.memory_sizes")],
        seeds=where.ints(body.get("seeds", seeds), f"{key}.seeds", minimum=0),
        vary=vary, options=options,
        drift_plot=bool(body.get("drift_plot", kind == "samplers")),
    )


def _memory(value, where: _Where, key: str) -> int | float:
    """An item count (int >= 0) or a multiple of the batch size (``"2B"`` -> 2.0)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        match = _RELATIVE_MEMORY.match(value.strip())
        if match:
            return float(match.group(1) or 1)
    raise CbnsError(f"{where.source}: {key}: expected an item count >= 0 or a multiple of the batch size "
                    f"such as 2B, got {value!r}")


class _Where:
    """Type checks that name the spec file and the key path in their error."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, message: str):
        raise CbnsError(f"{self.source}: {key + ': ' if key else ''}{message}")

    def mapping(self, value, key: str) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(key, f"expected a mapping, got {type(value).__name__} {value!r}")
        return dict(value)

    def list(self, value, key: str) -> list:
        if not isinstance(value, list) or not value:
            self.fail(key, f"expected a non-empty list, got {value!r}")
        return value

    def ints(self, value, key: str, minimum: int) -> list[int]:
        values = self.list(value, key)
        for v in values:
            if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
                self.fail(key, f"expected integers >= {minimum}, got {v!r}")
        return values

    def known(self, body: dict, keys: set, key: str) -> None:
        unknown = sorted(set(map(str, body)) - keys)
        if unknown:
            self.fail(key, f"unknown key {unknown[0]!r}; known keys: {', '.join(sorted(keys))}")

    def options(self, value, key: str) -> dict[str, Any]:
        body = self.mapping(value, key)
        return {str(k): check_option(str(k), v, f"{self.source}: {key}") for k, v in body.items()}

    def labels(self, value, known: dict, key: str) -> list[str]:
        if value is None:
            return list(known)
        labels = [str(v) for v in self.list(value, key)]
        for label in labels:
            if label not in known:
                self.fail(key, f"unknown label {label!r}; defined: {', '.join(known)}")
        return labels
