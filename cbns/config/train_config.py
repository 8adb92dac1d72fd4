"""The training configuration: typed sections, every option declared once with its metadata.

Each field is an :func:`cbns.config.option.option`: its default, its help sentence, its group
and its bounds or choices. :meth:`TrainConfig.validate` checks every field from that metadata, the
``cbns train`` flags are generated from it (:mod:`cbns.cli.options`), and YAML files are read
against it (:func:`load_yaml`). Defaults are the tuned Gowalla CBNS recipe (README).
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from cbns.config.choices import (
    BANK_MODES,
    EVAL_RANKINGS,
    ITEM_FREQUENCIES,
    ITEM_SIDE_CHOICES,
    LR_SCHEDULES,
    PRECISIONS,
    SPLITS,
)
from cbns.config.option import Option, coerce, option, spec_of
from cbns.config.word_or_number import parse_min_rating, parse_prior
from cbns.config.yaml_file import FileOptions, read_options
from cbns.config.yaml_file import save_yaml as _save_options
from cbns.errors import CbnsError, OptionError
from cbns.registry import ITEM_TOWERS, SAMPLERS, USER_TOWERS

#: Largest seed: seed + 5 must fit torch's and numpy's seed types.
MAX_SEED = 2**62


def _device(value: str) -> None:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (whether it is there is checked when a run starts)."""
    import re

    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value.strip().lower()):
        raise ValueError(f"must be auto, cpu, cuda or cuda:N, got {value!r}")


def _min_rating(value: str) -> None:
    """``off`` or a finite number (see :mod:`cbns.data.read_options`)."""
    try:
        parse_min_rating(value)
    except ValueError:
        raise ValueError(f"must be off or a number, got {value!r}") from None


def _prior(value: str) -> None:
    """``auto``, ``off`` or a number in [0, 100] (see :mod:`cbns.model.popularity_prior`); the
    ValueError's message is the detail."""
    parse_prior(value)


@dataclass
class DataConfig:
    """Where the interactions come from and how they are read and split."""

    source: str = option("gowalla", "bundled name (gowalla), LightGCN directory, MovieLens-100k directory, .txt "
                         "sequence file, or CSV/TSV/Parquet table", metavar="DATA", nonempty=True, key="data")
    min_rating: str = option("off", "tables with a rating column, MovieLens-100k: keep only the rows rated R or "
                             "more as positives (off = every row, whatever its rating)", metavar="off|R",
                             check=_min_rating, words=("off",))
    user_column: str = option("user", "tables: the column of user ids", metavar="NAME", nonempty=True)
    item_column: str = option("item", "tables: the column of item ids", metavar="NAME", nonempty=True)
    rating_column: str = option("rating", "tables: the column of ratings (optional; see `min_rating`)",
                                metavar="NAME", nonempty=True)
    time_column: str = option("timestamp", "tables: the column of event times (optional; needed by `split` loo "
                              "and temporal)", metavar="NAME", nonempty=True)
    valid_fraction: float = option(0.05, "share of each user's train items held out for validation",
                                   metavar="F", minimum=0, below=1)
    split: str = option("random", "random = seeded 20% of each user's items; loo = each user's last item test, "
                        "the one before valid; temporal = global time cut", choices=SPLITS)
    user_features: str = option("", "CSV/TSV/Parquet of user attributes, key column 'user'", metavar="FILE")
    user_feature_columns: list[str] = option([], "columns of `user_features` to use (default: all)",
                                             metavar="A,B")
    item_features: str = option("", "CSV/TSV/Parquet of item attributes, key column 'item'", metavar="FILE")
    item_feature_columns: list[str] = option([], "columns of `item_features` to use (default: all)",
                                             metavar="A,B")


@dataclass
class SamplerConfig:
    """The negatives: the sampler, the batch, the CBNS bank, the item distribution q."""

    name: str = option("cbns", "negative sampler", choices=SAMPLERS, key="sampler")
    batch_size: int = option(2048, "training batch size", metavar="B", minimum=1)
    memory_size: int = option(4096, "cbns: bank size in items", metavar="M", minimum=0)
    warmup_steps: int = option(0, "cbns: steps with in-batch negatives only before the bank is used",
                               metavar="W", minimum=0)
    bank_mode: str = option("stale", "cbns: stale = stored vectors (paper), refresh = re-encode stored ids",
                            choices=BANK_MODES)
    num_negatives: int = option(2048, "uniform/popularity/mns: sampled negatives per step",
                                metavar="N", minimum=1)
    popularity_alpha: float = option(0.75, "popularity: q proportional to count^A", metavar="A")
    item_frequency: str = option("static", "q for the logQ correction: static = train counts; streaming = "
                                 "estimated on the fly (Yi et al. 2019)", choices=ITEM_FREQUENCIES)
    frequency_slots: int = option(1 << 20, "streaming: size of the hashed arrays", metavar="H",
                                  minimum=1)
    frequency_alpha: float = option(0.05, "streaming: moving-average rate of the gap estimate",
                                    metavar="A", above=0, maximum=1)


@dataclass
class LossConfig:
    """The sampled softmax: temperature, logQ correction, item-side gradient."""

    item_side: str = option("auto", "joint = one softmax for both towers (paper); split = item tower learns "
                            "from the gradient-carrying candidates only; auto = joint when both towers are ID tables, "
                            "split otherwise", choices=ITEM_SIDE_CHOICES)
    temperature: float = option(0.1, "softmax temperature", metavar="T", above=0)
    logq_correction: bool = option(True, "subtract log q from every logit")


@dataclass
class ModelConfig:
    """The two towers and the item score terms."""

    dim: int = option(256, "embedding width", metavar="D", minimum=1)
    normalize: bool = option(True, "L2-normalise both towers, i.e. cosine scores")
    item_bias: bool = option(True, "learn one score offset per item, trained with the towers and added to the "
                             "ranking score")
    init_std: float = option(0.1, "std of the embedding init", metavar="S", minimum=0)
    user_tower: str = option("id", "user encoder", choices=USER_TOWERS)
    item_tower: str = option("id", "item encoder", choices=ITEM_TOWERS)
    max_history: int = option(50, "pooled/gru: newest L history items read", metavar="L", minimum=1)
    pool_decay: float = option(1.0, "pooled: weight G^k for the item k steps before the newest, 1 = plain mean",
                               metavar="G", above=0, maximum=1)
    hidden_dim: int = option(128, "width of the towers' MLP and GRU state", metavar="H", minimum=1)
    dropout: float = option(0.0, "dropout in the MLP and GRU towers", metavar="P", minimum=0, below=1)


@dataclass
class TrainingConfig:
    """The optimisation: epochs, learning rate and schedule, seed, early stopping, precision."""

    epochs: int = option(10, "maximum epochs", metavar="E", minimum=1)
    min_steps: int = option(0, "train at least S optimizer steps: epochs grow to fit them when an epoch is short "
                            "(the lr schedule decays over that length); 0 = `epochs` alone",
                            metavar="S", minimum=0)
    lr: float = option(1e-2, "Adam learning rate", metavar="LR", above=0)
    lr_schedule: str = option("cosine", "constant, or decay per step to 0 at the last of `epochs`: cosine or "
                              "linear", choices=LR_SCHEDULES)
    weight_decay: float = option(0.0, "Adam weight decay (L2 on the gradient; with `sparse_updates`, on the "
                                 "rows a step touches)", metavar="WD", minimum=0)
    sparse_updates: bool = option(True, "row-sparse gradients and row-wise Adam (dense Adam's trajectory, computed "
                                  "lazily) for the embedding tables and the item bias, so a step costs the rows it "
                                  "touches; false = dense Adam over every parameter")
    seed: int = option(0, "seed of init, splits, shuffling, sampling", metavar="S", minimum=0,
                       cap=MAX_SEED)
    patience: int = option(3, "stop after P validations without improvement", metavar="P", minimum=0)
    precision: str = option("fp32", "fp32, or bf16: towers and score matrix products in bfloat16 under autocast, "
                            "softmax, log q and the loss in float32", choices=PRECISIONS)
    compile: bool = option(False, "run each step's towers and loss through torch.compile (needs "
                           "`sparse_updates` false)")


@dataclass
class EvaluationConfig:
    """Validation and test ranking: cut-offs, user samples, index, popularity prior."""

    popularity_prior: str = option(
        "auto", "rank by score / T + BETA * log(1 + train count): a popularity prior the cosine score cannot "
        "hold; auto = BETA chosen on validation after training from 0..1", metavar="auto|off|BETA",
        check=_prior, words=("auto", "off"))
    eval_every: int = option(1, "validate every E epochs", metavar="E", minimum=1)
    eval_users: int = option(0, "validate on a seeded sample of N of the users with validation items (each "
                             "epoch, and for the prior); 0 = all", metavar="N", minimum=0, note="0 = all")
    test_users: int = option(0, "test on a seeded sample of N of the users with test items; 0 = all",
                             metavar="N", minimum=0, note="0 = all")
    eval_index: str = option("exact", "validation ranking: exact, or the top-K through a faiss index built over the "
                             "item vectors at each validation (its recall against exact is reported once a run)",
                             choices=EVAL_RANKINGS)
    ks: list[int] = option([20, 50], "metric cut-offs", metavar="K,K", minimum=1, nonempty=True,
                           items="cut-offs")


@dataclass
class RunConfig:
    """How the run executes: threads, device, checkpoints, drift records."""

    threads: int = option(0, "torch threads, 0 = all cores", metavar="N", minimum=0)
    device: str = option("auto", "where to train and evaluate: auto (CUDA when present, else the CPU), cpu, cuda or "
                         "cuda:N", metavar="DEVICE", check=_device)
    checkpoint_every: int = option(500, "also checkpoint mid-epoch once N steps have passed since the last "
                                   "checkpoint, not only after each epoch; 0 = epoch ends only",
                                   metavar="N", minimum=0)
    drift_every: int = option(0, "record item-embedding drift every N steps into drift.json, 0 = off",
                              metavar="N", minimum=0, note="0 = off")
    drift_sample: int = option(1024, "drift: number of fixed random items measured", metavar="S", minimum=1)
    drift_deltas: list[int] = option([1, 5, 10], "drift: step distances dt", metavar="DT,DT", minimum=1,
                                     nonempty=True, items="step distances")


#: The sections of a :class:`TrainConfig`, in the order ``--help`` and ``config.yaml`` show them.
SECTIONS: dict[str, type] = {"data": DataConfig, "sampler": SamplerConfig, "loss": LossConfig,
                             "model": ModelConfig, "training": TrainingConfig, "evaluation": EvaluationConfig,
                             "run": RunConfig}


def _declarations() -> dict[str, tuple[str, str, str, Option]]:
    """``{key: (section, field, kind, Option)}`` of every option in section order; ``key`` is the
    flat name flags, YAML files and messages use (the field name, but ``data`` for the data
    section's ``source`` and ``sampler`` for the sampler section's ``name``)."""
    found = {}
    for section, kind_of in SECTIONS.items():
        for f in fields(kind_of):
            spec = dataclasses.replace(spec_of(f), group=section)
            found[spec.key or f.name] = (section, f.name, f.type, spec)
    return found


_OPTIONS = _declarations()


class TrainConfig:
    """Everything a training run depends on, in typed sections; defaults are the tuned Gowalla recipe.

    ``config.data.source`` (:class:`DataConfig`), ``config.sampler.name`` (:class:`SamplerConfig`),
    ``config.loss``, ``config.model``, ``config.training``, ``config.evaluation`` and
    ``config.run``; each component is built from its own section. Options also have one flat
    name each (``batch_size``, ``data`` for ``config.data.source.source``, ``sampler`` for
    ``config.sampler.name.name``), which flags, YAML files, saved runs and error messages use::

        TrainConfig(sampler="inbatch", epochs=3)               # flat names
        TrainConfig(sampler=SamplerConfig(batch_size=512))     # or whole sections
        config.sampler.name.batch_size, config["batch_size"]        # the same value
    """

    def __init__(self, **options: Any):
        sections = {}
        for section, kind_of in SECTIONS.items():
            given = options.get(section)
            if isinstance(given, kind_of):
                sections[section] = dataclasses.replace(given)
                del options[section]
            else:
                sections[section] = kind_of()
        for section, value in sections.items():
            object.__setattr__(self, section, value)
        for key, value in options.items():
            if key not in _OPTIONS:
                close = difflib.get_close_matches(key, _OPTIONS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise TypeError(f"TrainConfig got an unknown option {key!r}{hint}")
            section, name, _, _ = _OPTIONS[key]
            setattr(sections[section], name, value)

    def __getattr__(self, name: str):
        # Only reached for names that are not sections: say where a flat option lives.
        if name in _OPTIONS:
            section, field, _, _ = _OPTIONS[name]
            raise AttributeError(f"TrainConfig has no attribute {name!r}: it is config.{section}.{field} "
                                 f"(or config[{name!r}])")
        raise AttributeError(f"TrainConfig has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in SECTIONS:
            self.__getattr__(name)  # raises, naming the section of a flat option
        if not isinstance(value, SECTIONS[name]):
            raise TypeError(f"config.{name} must be a {SECTIONS[name].__name__}, got {type(value).__name__}")
        object.__setattr__(self, name, value)

    def __getitem__(self, key: str) -> Any:
        """The value of the option with flat name ``key`` (``config["batch_size"]``)."""
        section, name, _, _ = _OPTIONS[key]
        return getattr(getattr(self, section), name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TrainConfig) and self.to_dict() == other.to_dict()

    __hash__ = None

    def __repr__(self) -> str:
        return f"TrainConfig({', '.join(f'{s}={getattr(self, s)!r}' for s in SECTIONS)})"

    def replace(self, **options: Any) -> TrainConfig:
        """A copy with the options given by flat name changed (not validated)."""
        return TrainConfig(**{**self.to_dict(), **options})

    def validate(self) -> TrainConfig:
        """Raise :class:`CbnsError` naming the option and the value for anything out of range."""
        for key, (section, name, kind, spec) in _OPTIONS.items():
            part = getattr(self, section)
            value = coerce(key, kind, getattr(part, name), None, spec)
            spec.validate(key, kind, value)
            setattr(part, name, value)  # e.g. lr=1 -> 1.0, popularity_prior=False -> "off"
        if self.sampler.item_frequency == "streaming" and self.sampler.name == "popularity":
            raise OptionError("item_frequency", "streaming: the popularity sampler draws from known counts; "
                              "use static, or the inbatch, uniform, mns or cbns sampler")
        if self.training.compile and self.training.sparse_updates:
            raise OptionError("compile", "true: the compiled step runs dense updates; add --sparse-updates false")
        return self

    def to_dict(self) -> dict[str, Any]:
        """``{flat name: value}`` of every option (lists copied), in section order."""
        return {key: copy.deepcopy(self[key]) for key in _OPTIONS}

    @staticmethod
    def options() -> dict[str, tuple[str, Option]]:
        """``{flat name: (kind, Option)}`` of every option, in section order (``Option.group`` is
        the section)."""
        return {key: (kind, spec) for key, (_, _, kind, spec) in _OPTIONS.items()}

    @staticmethod
    def default(key: str) -> Any:
        """The default value of the option with flat name ``key``."""
        section, name, _, _ = _OPTIONS[key]
        return getattr(SECTIONS[section](), name)

    @staticmethod
    def section_of(key: str) -> tuple[str, str]:
        """``(section, field)`` of the option with flat name ``key``."""
        section, name, _, _ = _OPTIONS[key]
        return section, name


#: What an option meant before it existed: the value that reproduces the library's behaviour from
#: before. A saved run configuration without the key (written before the option was added) is read
#: with this value, not today's default; study cells leave these values out of their hash.
LEGACY_VALUES = {"popularity_prior": "off", "lr_schedule": "constant", "item_bias": False, "min_steps": 0,
                 "sparse_updates": False}


def check_option(name: str, value: Any, where: str) -> Any:
    """``value`` type-checked for option ``name`` (ranges are :meth:`TrainConfig.validate`'s);
    :class:`CbnsError` naming ``where`` for an unknown option or a wrong type."""
    known = TrainConfig.options()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise CbnsError(f"{where}: unknown option {name!r}; {hint}known options: {', '.join(sorted(known))}")
    kind, spec = known[name]
    return coerce(name, kind, value, where, spec)


def load_yaml(path: str | Path) -> FileOptions:
    """The options in a YAML file, type-checked (ranges are checked by :func:`build_config`).

    Options are given by flat name (``batch_size: 512``), or grouped under their section with the
    section's field names (``sampler: {name: cbns, batch_size: 512}``); both may be mixed.
    """
    path = Path(path)
    values, lines = read_options(path)
    where = {name: f"{path}:{line}" for name, line in lines.items()}
    values, where = _flat(values, where)
    return FileOptions({name: check_option(name, value, where[name]) for name, value in values.items()}, where)


def _flat(values: dict[str, Any], where: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """``values`` with every section mapping (``sampler: {batch_size: 512}``) spread into flat names;
    a nested option is located at its section's line."""
    keys = {(section, name): key for key, (section, name, _, _) in _OPTIONS.items()}
    flat, located = {}, {}
    for name, value in values.items():
        if name not in SECTIONS or not isinstance(value, dict):
            if name in flat:
                raise CbnsError(f"{where[name]}: option {name} given twice (flat and in its section, {located[name]})")
            flat[name], located[name] = value, where[name]
            continue
        for field, nested in value.items():
            key = keys.get((name, str(field)))
            if key is None:
                known = ", ".join(n for s, n in keys if s == name)
                raise CbnsError(f"{where[name]}: section {name} has no option {field!r}; its options: {known}")
            if key in flat:
                raise CbnsError(f"{where[name]}: option {key} given twice (flat and in section {name})")
            flat[key], located[key] = nested, where[name]
    return flat, located


def build_config(file_options: dict[str, Any], flag_options: dict[str, Any]) -> TrainConfig:
    """Defaults, then the file, then the flags (flags win); validated. A range error in an option
    that came from the file names the file and line."""
    flags = {k: v for k, v in flag_options.items() if v is not None}
    try:
        return TrainConfig(**{**file_options, **flags}).validate()
    except OptionError as exc:
        where = getattr(file_options, "where", {}).get(exc.option)
        if where is None or exc.option in flags:
            raise
        raise CbnsError(f"{where}: option {exc.option} {exc.detail}") from None


def save_yaml(config: TrainConfig, path: Path) -> None:
    _save_options(config.to_dict(), path)
