"""The training configuration: a typed dataclass, every option declared once with its metadata.

Each field is an :func:`cbns.config.option.option`: its default, its help sentence, its group
and its bounds or choices. :meth:`TrainConfig.validate` checks every field from that metadata, the
``cbns train`` flags are generated from it (:mod:`cbns.cli.options`), and YAML files are read
against it (:func:`load_yaml`). Defaults are the tuned Gowalla CBNS recipe (README).
"""
from __future__ import annotations

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
class TrainConfig:
    """Everything a training run depends on. Defaults are the tuned Gowalla CBNS recipe."""

    # data
    data: str = option("gowalla", "bundled name (gowalla), LightGCN directory, MovieLens-100k directory, .txt "
                       "sequence file, or CSV/TSV/Parquet table", "data", metavar="DATA", nonempty=True)
    min_rating: str = option("off", "tables with a rating column, MovieLens-100k: keep only the rows rated R or "
                             "more as positives (off = every row, whatever its rating)", "data", metavar="off|R",
                             check=_min_rating, words=("off",))
    user_column: str = option("user", "tables: the column of user ids", "data", metavar="NAME", nonempty=True)
    item_column: str = option("item", "tables: the column of item ids", "data", metavar="NAME", nonempty=True)
    rating_column: str = option("rating", "tables: the column of ratings (optional; see `min_rating`)", "data",
                                metavar="NAME", nonempty=True)
    time_column: str = option("timestamp", "tables: the column of event times (optional; needed by `split` loo "
                              "and temporal)", "data", metavar="NAME", nonempty=True)
    # the sampler
    sampler: str = option("cbns", "negative sampler", "sampler", choices=SAMPLERS)
    batch_size: int = option(2048, "training batch size", "sampler", metavar="B", minimum=1)
    memory_size: int = option(4096, "cbns: bank size in items", "sampler", metavar="M", minimum=0)
    warmup_steps: int = option(0, "cbns: steps with in-batch negatives only before the bank is used", "sampler",
                               metavar="W", minimum=0)
    bank_mode: str = option("stale", "cbns: stale = stored vectors (paper), refresh = re-encode stored ids",
                            "sampler", choices=BANK_MODES)
    item_side: str = option("auto", "joint = one softmax for both towers (paper); split = item tower learns "
                            "from the gradient-carrying candidates only; auto = joint when both towers are ID tables, "
                            "split otherwise", "loss", choices=ITEM_SIDE_CHOICES)
    num_negatives: int = option(2048, "uniform/popularity/mns: sampled negatives per step", "sampler",
                                metavar="N", minimum=1)
    popularity_alpha: float = option(0.75, "popularity: q proportional to count^A", "sampler", metavar="A")
    # the model
    dim: int = option(256, "embedding width", "model", metavar="D", minimum=1)
    normalize: bool = option(True, "L2-normalise both towers, i.e. cosine scores", "model")
    temperature: float = option(0.1, "softmax temperature", "loss", metavar="T", above=0)
    logq_correction: bool = option(True, "subtract log q from every logit", "loss")
    popularity_prior: str = option(
        "auto", "rank by score / T + BETA * log(1 + train count): a popularity prior the cosine score cannot "
        "hold; auto = BETA chosen on validation after training from 0..1", "evaluation", metavar="auto|off|BETA",
        check=_prior, words=("auto", "off"))
    item_bias: bool = option(True, "learn one score offset per item, trained with the towers and added to the "
                             "ranking score", "model")
    init_std: float = option(0.1, "std of the embedding init", "model", metavar="S", minimum=0)
    # training
    epochs: int = option(10, "maximum epochs", "training", metavar="E", minimum=1)
    min_steps: int = option(0, "train at least S optimizer steps: epochs grow to fit them when an epoch is short "
                            "(the lr schedule decays over that length); 0 = `epochs` alone", "training",
                            metavar="S", minimum=0)
    lr: float = option(1e-2, "Adam learning rate", "training", metavar="LR", above=0)
    lr_schedule: str = option("cosine", "constant, or decay per step to 0 at the last of `epochs`: cosine or "
                              "linear", "training", choices=LR_SCHEDULES)
    weight_decay: float = option(0.0, "Adam weight decay (L2 on the gradient; with `sparse_updates`, on the "
                                 "rows a step touches)", "training", metavar="WD", minimum=0)
    sparse_updates: bool = option(True, "row-sparse gradients and row-wise Adam (dense Adam's trajectory, computed "
                                  "lazily) for the embedding tables and the item bias, so a step costs the rows it "
                                  "touches; false = dense Adam over every parameter", "training")
    seed: int = option(0, "seed of init, splits, shuffling, sampling", "training", metavar="S", minimum=0,
                       cap=MAX_SEED)
    valid_fraction: float = option(0.05, "share of each user's train items held out for validation", "data",
                                   metavar="F", minimum=0, below=1)
    eval_every: int = option(1, "validate every E epochs", "evaluation", metavar="E", minimum=1)
    patience: int = option(3, "stop after P validations without improvement", "training", metavar="P", minimum=0)
    eval_users: int = option(0, "validate on a seeded sample of N of the users with validation items (each "
                             "epoch, and for the prior); 0 = all", "evaluation", metavar="N", minimum=0, note="0 = all")
    test_users: int = option(0, "test on a seeded sample of N of the users with test items; 0 = all", "evaluation",
                             metavar="N", minimum=0, note="0 = all")
    eval_index: str = option("exact", "validation ranking: exact, or the top-K through a faiss index built over the "
                             "item vectors at each validation (its recall against exact is reported once a run)",
                             "evaluation", choices=EVAL_RANKINGS)
    ks: list[int] = option([20, 50], "metric cut-offs", "evaluation", metavar="K,K", minimum=1, nonempty=True,
                           items="cut-offs")
    threads: int = option(0, "torch threads, 0 = all cores", "run", metavar="N", minimum=0)
    device: str = option("auto", "where to train and evaluate: auto (CUDA when present, else the CPU), cpu, cuda or "
                         "cuda:N", "run", metavar="DEVICE", check=_device)
    precision: str = option("fp32", "fp32, or bf16: towers and score matrix products in bfloat16 under autocast, "
                            "softmax, log q and the loss in float32", "training", choices=PRECISIONS)
    checkpoint_every: int = option(500, "also checkpoint mid-epoch once N steps have passed since the last "
                                   "checkpoint, not only after each epoch; 0 = epoch ends only", "run",
                                   metavar="N", minimum=0)
    drift_every: int = option(0, "record item-embedding drift every N steps into drift.json, 0 = off", "run",
                              metavar="N", minimum=0, note="0 = off")
    drift_sample: int = option(1024, "drift: number of fixed random items measured", "run", metavar="S", minimum=1)
    drift_deltas: list[int] = option([1, 5, 10], "drift: step distances dt", "run", metavar="DT,DT", minimum=1,
                                     nonempty=True, items="step distances")
    split: str = option("random", "random = seeded 20% of each user's items; loo = each user's last item test, "
                        "the one before valid; temporal = global time cut", "data", choices=SPLITS)
    # towers
    user_tower: str = option("id", "user encoder", "model", choices=USER_TOWERS)
    item_tower: str = option("id", "item encoder", "model", choices=ITEM_TOWERS)
    max_history: int = option(50, "pooled/gru: newest L history items read", "model", metavar="L", minimum=1)
    pool_decay: float = option(1.0, "pooled: weight G^k for the item k steps before the newest, 1 = plain mean",
                               "model", metavar="G", above=0, maximum=1)
    hidden_dim: int = option(128, "width of the towers' MLP and GRU state", "model", metavar="H", minimum=1)
    dropout: float = option(0.0, "dropout in the MLP and GRU towers", "model", metavar="P", minimum=0, below=1)
    item_frequency: str = option("static", "q for the logQ correction: static = train counts; streaming = "
                                 "estimated on the fly (Yi et al. 2019)", "sampler", choices=ITEM_FREQUENCIES)
    frequency_slots: int = option(1 << 20, "streaming: size of the hashed arrays", "sampler", metavar="H",
                                  minimum=1)
    frequency_alpha: float = option(0.05, "streaming: moving-average rate of the gap estimate", "sampler",
                                    metavar="A", above=0, maximum=1)
    user_features: str = option("", "CSV/TSV/Parquet of user attributes, key column 'user'", "data", metavar="FILE")
    user_feature_columns: list[str] = option([], "columns of `user_features` to use (default: all)", "data",
                                             metavar="A,B")
    item_features: str = option("", "CSV/TSV/Parquet of item attributes, key column 'item'", "data", metavar="FILE")
    item_feature_columns: list[str] = option([], "columns of `item_features` to use (default: all)", "data",
                                             metavar="A,B")

    def validate(self) -> TrainConfig:
        """Raise :class:`CbnsError` naming the option and the value for anything out of range."""
        for f in fields(self):
            value = coerce(f.name, f.type, getattr(self, f.name), None, spec_of(f))
            spec_of(f).validate(f.name, f.type, value)
            setattr(self, f.name, value)  # e.g. lr=1 -> 1.0, popularity_prior=False -> "off"
        if self.item_frequency == "streaming" and self.sampler == "popularity":
            raise OptionError("item_frequency", "streaming: the popularity sampler draws from known counts; "
                              "use static, or the inbatch, uniform, mns or cbns sampler")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def options() -> dict[str, tuple[str, Option]]:
        """``{name: (kind, Option)}`` of every field, in declaration order."""
        return {f.name: (f.type, spec_of(f)) for f in fields(TrainConfig)}


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
    """The options in a YAML file, type-checked (ranges are checked by :func:`build_config`)."""
    path = Path(path)
    values, lines = read_options(path)
    where = {name: f"{path}:{line}" for name, line in lines.items()}
    return FileOptions({name: check_option(name, value, where[name]) for name, value in values.items()}, where)


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
