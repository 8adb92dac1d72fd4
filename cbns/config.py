"""The training configuration: a typed dataclass, filled from YAML and CLI flags, validated."""
from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from cbns.atomic import atomic_write_text
from cbns.data.time_split import SPLITS
from cbns.errors import CbnsError
from cbns.loss import ITEM_SIDES
from cbns.lr_schedule import LR_SCHEDULES
from cbns.popularity_prior import parse_prior
from cbns.negatives import BANK_MODES, ITEM_FREQUENCIES, SAMPLERS
from cbns.towers.choice import ITEM_TOWERS, USER_TOWERS
from cbns.yaml_options import read_options


@dataclass
class TrainConfig:
    """Everything a training run depends on. Defaults are the tuned Gowalla CBNS recipe."""

    data: str = "gowalla"
    sampler: str = "cbns"
    batch_size: int = 2048
    memory_size: int = 4096
    warmup_steps: int = 0
    bank_mode: str = "stale"
    item_side: str = "split"
    num_negatives: int = 2048
    popularity_alpha: float = 0.75
    dim: int = 256
    normalize: bool = True
    temperature: float = 0.1
    logq_correction: bool = True
    popularity_prior: str = "auto"
    item_bias: bool = True
    init_std: float = 0.1
    epochs: int = 10
    lr: float = 1e-2
    lr_schedule: str = "cosine"
    weight_decay: float = 0.0
    seed: int = 0
    valid_fraction: float = 0.1
    eval_every: int = 1
    patience: int = 3
    ks: list[int] = field(default_factory=lambda: [20, 50])
    threads: int = 0
    checkpoint_every: int = 500
    drift_every: int = 0
    drift_sample: int = 1024
    drift_deltas: list[int] = field(default_factory=lambda: [1, 5, 10])
    split: str = "random"
    user_tower: str = "id"
    item_tower: str = "id"
    max_history: int = 50
    pool_decay: float = 1.0
    hidden_dim: int = 128
    dropout: float = 0.0
    item_frequency: str = "static"
    frequency_slots: int = 1 << 20
    frequency_alpha: float = 0.05
    user_features: str = ""
    user_feature_columns: list[str] = field(default_factory=list)
    item_features: str = ""
    item_feature_columns: list[str] = field(default_factory=list)

    def validate(self) -> "TrainConfig":
        """Raise :class:`CbnsError` naming the option and the value for anything out of range."""
        for f in fields(self):
            coerce(f.name, getattr(self, f.name), _flag(f.name))
            _check_bounds(f.name, f.type, getattr(self, f.name))
        if not self.data:
            raise OptionError("data", "must name a dataset, got an empty string")
        choice = {"sampler": SAMPLERS, "bank_mode": BANK_MODES, "item_side": ITEM_SIDES, "split": SPLITS,
                  "user_tower": USER_TOWERS, "item_tower": ITEM_TOWERS, "item_frequency": ITEM_FREQUENCIES,
                  "lr_schedule": LR_SCHEDULES}
        for name, options in choice.items():
            if getattr(self, name) not in options:
                raise OptionError(name, f"must be one of {', '.join(options)}, got {getattr(self, name)!r}")
        positive = ("batch_size", "dim", "epochs", "eval_every", "max_history", "hidden_dim", "frequency_slots")
        for name in positive:
            if getattr(self, name) < 1:
                raise OptionError(name, f"must be >= 1, got {getattr(self, name)}")
        non_negative = ("memory_size", "warmup_steps", "weight_decay", "patience", "threads", "init_std",
                        "checkpoint_every", "seed")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise OptionError(name, f"must be >= 0, got {getattr(self, name)}")
        if self.num_negatives < 1:
            raise OptionError("num_negatives", f"must be >= 1, got {self.num_negatives}")
        for name in ("temperature", "lr"):
            if not getattr(self, name) > 0:
                raise OptionError(name, f"must be > 0, got {getattr(self, name)}")
        if not 0 <= self.valid_fraction < 1:
            raise OptionError("valid_fraction", f"must be in [0, 1), got {self.valid_fraction}")
        if not self.ks or any(k < 1 for k in self.ks):
            raise OptionError("ks", f"must be a non-empty list of cut-offs >= 1, got {self.ks}")
        if self.drift_every < 0:
            raise OptionError("drift_every", f"must be >= 0 (0 = off), got {self.drift_every}")
        if self.drift_sample < 1:
            raise OptionError("drift_sample", f"must be >= 1, got {self.drift_sample}")
        if not self.drift_deltas or any(d < 1 for d in self.drift_deltas):
            raise OptionError("drift_deltas", f"must be a non-empty list of step distances >= 1, got {self.drift_deltas}")
        for name in ("pool_decay", "frequency_alpha"):
            if not 0 < getattr(self, name) <= 1:
                raise OptionError(name, f"must be in (0, 1], got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise OptionError("dropout", f"must be in [0, 1), got {self.dropout}")
        try:
            parse_prior(self.popularity_prior)
        except ValueError:
            raise OptionError("popularity_prior", f"must be auto, off or a number >= 0, got {self.popularity_prior!r}") from None
        if self.item_frequency == "streaming" and self.sampler == "popularity":
            raise OptionError("item_frequency", "streaming: the popularity sampler draws from known counts; "
                              "use static, or the inbatch, uniform, mns or cbns sampler")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


class OptionError(CbnsError):
    """An option's value is out of range; ``option`` and ``detail`` let a caller name its source
    (the flag, or the file and line it came from)."""

    def __init__(self, option: str, detail: str):
        super().__init__(f"{_flag(option)}: {detail}")
        self.option, self.detail = option, detail


class FileOptions(dict):
    """Options read from a file; ``where[name]`` is ``"path:line"`` of each, for error messages."""

    def __init__(self, values: dict[str, Any], where: dict[str, str]):
        super().__init__(values)
        self.where = where


#: What an option meant before it existed: the value that reproduces the library's behaviour from
#: before. A saved run configuration without the key (written before the option was added) is read
#: with this value, not today's default; study cells leave these values out of their hash.
LEGACY_VALUES = {"popularity_prior": "off", "lr_schedule": "constant", "item_bias": False}

#: Text options that also take a number (``auto``, ``off`` or a value).
NUMBER_OR_WORD = ("popularity_prior",)

#: Largest integer option: tensor sizes and thread counts beyond it fail deep inside torch.
MAX_INT = 2**31 - 1
#: Largest seed: seed + 2 must fit torch's and numpy's seed types.
MAX_SEED = 2**62


def _check_bounds(name: str, kind: str, value: Any) -> None:
    """No NaN or infinity in a float option, no integer too large for the tensors it sizes."""
    if kind == "float" and not math.isfinite(value):
        raise OptionError(name, f"must be a finite number, got {value}")
    limit = MAX_SEED if name == "seed" else MAX_INT
    values = value if kind == "list[int]" else [value] if kind == "int" else []
    for v in values:
        if v > limit:
            raise OptionError(name, f"must be <= {limit}, got {v}")


def coerce(name: str, value: Any, where: str) -> Any:
    """``value`` converted to the type of field ``name``; :class:`CbnsError` naming ``where``."""
    kinds = {f.name: f.type for f in fields(TrainConfig)}
    if name not in kinds:
        close = difflib.get_close_matches(name, kinds, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise CbnsError(f"{where}: unknown option {name!r}; {hint}known options: {', '.join(sorted(kinds))}")
    kind = kinds[name]
    ok = {
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "list[int]": lambda v: isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v),
        "list[str]": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    }[kind]
    if name in NUMBER_OR_WORD and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)  # popularity_prior: 0.3 in a YAML file
    if not ok(value):
        raise CbnsError(f"{where}: option {name} must be {kind}, got {_short(value)}")
    if kind == "float":
        try:
            return float(value)
        except OverflowError:  # an integer too large for a float
            raise CbnsError(f"{where}: option {name} must be a finite number, got {_short(value)}") from None
    return value


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def load_yaml(path: str | Path) -> FileOptions:
    """The options in a YAML file, type-checked (ranges are checked by :func:`build_config`)."""
    path = Path(path)
    values, lines = read_options(path)
    where = {name: f"{path}:{line}" for name, line in lines.items()}
    return FileOptions({name: coerce(name, value, where[name]) for name, value in values.items()}, where)


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
    atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
