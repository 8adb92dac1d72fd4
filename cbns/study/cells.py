"""The cells of a study: one training run each, expanded from the spec's sections.

A cell is identified by its explicit options (everything the spec sets, the dataset by its
identity rather than its path) hashed into the name of its run directory, so that a cell shared
by two sections runs once, and editing the spec reruns exactly the cells whose options changed.
Options left to :class:`TrainConfig` defaults are not hashed, so adding a new option to the
library does not invalidate finished cells; a changed default is caught when a finished cell's
``config.yaml`` no longer matches (:func:`cbns.study.runner.is_finished`).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from cbns.config import LEGACY_VALUES, TrainConfig
from cbns.errors import CbnsError
from cbns.registry import SAMPLERS
from cbns.study.spec import DatasetSpec, Section, StudySpec

#: options that change the measurement but not the trained model
NOT_HASHED = ("threads", "device")
#: Options at the value that reproduces what the library did before the option existed
#: (:data:`cbns.config.LEGACY_VALUES`) are left out of the hash, so that cells finished before the
#: option existed keep their directory.
_NONE = object()


def sampler_options() -> tuple[str, ...]:
    """The options that describe the negative sampler rather than the rest of the training setup:
    ``sampler``, the loss's ``item_side`` (compared with the sampler: it is the CBNS paper's
    ``joint`` form or the ``split`` one), and every option a registered sampler declares it reads
    (``SAMPLERS.get(name).options``, the one list the config's checks and help also read). Two
    cells that differ only in these (and the batch size and seed) are comparable."""
    declared = (option for name in SAMPLERS.names() for option in SAMPLERS.get(name).options)
    return ("sampler", "item_side", *dict.fromkeys(declared))


@dataclass
class Cell:
    """One run of the study.

    Attributes:
        name: directory name under ``OUT/cells``: readable labels plus an 8-hex hash.
        dataset, tower, sampler: the spec labels of its axes.
        options: the explicit TrainConfig options (``data`` excluded: see ``dataset``).
        sections: names of the sections that asked for it.
        vary: the section's extra-axis values of this cell.
    """

    name: str
    dataset: DatasetSpec
    tower: str
    sampler: str
    options: dict[str, Any]
    sections: list[str] = field(default_factory=list)
    vary: dict[str, Any] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return int(self.options.get("seed", 0))

    @property
    def batch_size(self) -> int:
        return int(self.options.get("batch_size", TrainConfig.default("batch_size")))

    @property
    def sampler_name(self) -> str:
        return str(self.options.get("sampler", TrainConfig.default("sampler")))

    @property
    def memory_size(self) -> int | None:
        """The bank size of a CBNS cell, ``None`` for other samplers."""
        if "memory_size" not in SAMPLERS.options(self.sampler_name):
            return None
        return int(self.options.get("memory_size", TrainConfig.default("memory_size")))

    def config(self, data: str, threads: int | None = None, device: str | None = None) -> TrainConfig:
        """The validated run configuration with ``data`` as the data value (``threads`` and
        ``device`` override the cell's: they are not part of its identity)."""
        options = {**self.options, "data": data}
        if threads is not None:
            options["threads"] = threads
        if device is not None:
            options["device"] = device
        return TrainConfig(**options).validate()

    def setting_key(self) -> tuple:
        """Everything but the seed: cells with equal keys are repeats of one setting."""
        rest = {k: v for k, v in self.options.items() if k != "seed"}
        return (self.dataset.label, self.tower, self.sampler, json.dumps(rest, sort_keys=True))

    def context_key(self) -> tuple:
        """Everything but the sampler options, batch size and seed: the cells one compares."""
        rest = {k: v for k, v in self.options.items() if k not in (*sampler_options(), "batch_size", "seed")}
        return (self.dataset.label, self.tower, json.dumps(rest, sort_keys=True))


def expand(spec: StudySpec) -> list[Cell]:
    """Every cell of every section, each once: cells whose resolved configurations are equal
    (say one sets an option to its default and the other leaves it) are one cell, named after
    its first appearance, that lists every section asking for it."""
    cells: dict[str, Cell] = {}
    for section in spec.sections:
        for cell in _section_cells(spec, section):
            key = _resolved_key(cell)
            if key not in cells:
                cells[key] = cell
            elif section.name not in cells[key].sections:
                cells[key].sections.append(section.name)
    return list(cells.values())


def _resolved_key(cell: Cell) -> str:
    resolved = {k: v for k, v in cell.config("-").to_dict().items()
                if k not in (*NOT_HASHED, "data")}
    return json.dumps({"data": cell.dataset.identity, "tower": cell.tower, **resolved}, sort_keys=True)


def _section_cells(spec: StudySpec, section: Section):
    vary_names = list(section.vary)
    # seeds outermost: a study stopped half-way has whole comparisons at its first seeds
    axes = itertools.product(section.seeds, section.datasets, section.towers, section.samplers,
                             itertools.product(*section.vary.values()), section.batch_sizes)
    for seed, dataset, tower, sampler, vary_values, batch in axes:
        vary = dict(zip(vary_names, vary_values))
        options = _options(spec, section, tower, sampler, vary, batch, seed)
        has_bank = "memory_size" in SAMPLERS.options(options.get("sampler", TrainConfig.default("sampler")))
        for memory in section.memory_sizes if has_bank else [None]:
            cell_options = dict(options)
            if memory is not None:
                cell_options["memory_size"] = int(round(memory * batch)) if isinstance(memory, float) else memory
            yield _cell(spec, section, spec.datasets[dataset], tower, sampler, cell_options, vary)
            if memory and section.kind == "batch":
                # the equal-negatives reference: in-batch at B + M, everything else alike
                reference = _inbatch_label(spec, section)
                ref_options = _options(spec, section, tower, reference, vary, batch + cell_options["memory_size"], seed)
                yield _cell(spec, section, spec.datasets[dataset], tower, reference, ref_options, vary)


def _options(spec: StudySpec, section: Section, tower: str, sampler: str, vary: dict, batch: int,
             seed: int) -> dict:
    """A cell's explicit options, later winning (see :mod:`cbns.study.spec`); ``data`` apart."""
    options = {**spec.base, **spec.towers[tower], **spec.samplers[sampler], **section.options, **vary,
               "batch_size": batch, "seed": seed}
    options.pop("data", None)
    return options


def _inbatch_label(spec: StudySpec, section: Section) -> str:
    """The section's in-batch sampler label (the spec checked that there is one)."""
    return next(label for label in section.samplers if spec.samplers[label].get("sampler") == "inbatch")


def _cell(spec, section, dataset: DatasetSpec, tower: str, sampler: str, options: dict, vary: dict) -> Cell:
    try:
        TrainConfig(**options).validate()
    except CbnsError as exc:
        cell = f"{dataset.label}/{tower}/{sampler}"
        raise CbnsError(f"{spec.source}: sections.{section.name}: cell {cell}: ", *exc.parts) from None
    hashed = {k: v for k, v in options.items() if k not in NOT_HASHED and LEGACY_VALUES.get(k, _NONE) != v}
    digest = hashlib.sha1(json.dumps({"data": dataset.identity, **hashed}, sort_keys=True).encode()).hexdigest()[:8]
    parts = [dataset.label, tower, sampler, f"B{options['batch_size']}"]
    if "memory_size" in SAMPLERS.options(options.get("sampler", TrainConfig.default("sampler"))):
        parts.append(f"M{options.get('memory_size', TrainConfig.default('memory_size'))}")
    parts += [f"{k}{_short(v)}" for k, v in vary.items()]
    parts += [f"s{options['seed']}", digest]
    name = re.sub(r"[^A-Za-z0-9._=-]+", "-", "_".join(str(p) for p in parts))
    return Cell(name, dataset, tower, sampler, options, [section.name], vary)


def _short(value) -> str:
    return json.dumps(value) if not isinstance(value, str) else value
