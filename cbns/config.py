"""The training configuration: a typed dataclass, filled from YAML and CLI flags, validated."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from cbns.errors import CbnsError
from cbns.loss import ITEM_SIDES
from cbns.negatives import BANK_MODES, SAMPLERS


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
    dim: int = 64
    normalize: bool = True
    temperature: float = 0.1
    logq_correction: bool = True
    init_std: float = 0.1
    epochs: int = 20
    lr: float = 5e-3
    weight_decay: float = 0.0
    seed: int = 0
    valid_fraction: float = 0.1
    eval_every: int = 1
    patience: int = 3
    ks: list[int] = field(default_factory=lambda: [20, 50])
    threads: int = 0
    drift_every: int = 0
    drift_sample: int = 1024
    drift_deltas: list[int] = field(default_factory=lambda: [1, 5, 10])

    def validate(self) -> "TrainConfig":
        """Raise :class:`CbnsError` naming the option and the value for anything out of range."""
        choice = {"sampler": SAMPLERS, "bank_mode": BANK_MODES, "item_side": ITEM_SIDES}
        for name, options in choice.items():
            if getattr(self, name) not in options:
                raise CbnsError(f"{_flag(name)}: must be one of {', '.join(options)}, got {getattr(self, name)!r}")
        positive = ("batch_size", "dim", "epochs", "eval_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise CbnsError(f"{_flag(name)}: must be >= 1, got {getattr(self, name)}")
        non_negative = ("memory_size", "warmup_steps", "weight_decay", "patience", "threads", "init_std")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise CbnsError(f"{_flag(name)}: must be >= 0, got {getattr(self, name)}")
        if self.sampler in ("uniform", "popularity", "mns") and self.num_negatives < 1:
            raise CbnsError(f"--num-negatives: must be >= 1 for the {self.sampler} sampler, got {self.num_negatives}")
        for name in ("temperature", "lr"):
            if not getattr(self, name) > 0:
                raise CbnsError(f"{_flag(name)}: must be > 0, got {getattr(self, name)}")
        if not 0 <= self.valid_fraction < 1:
            raise CbnsError(f"--valid-fraction: must be in [0, 1), got {self.valid_fraction}")
        if not self.ks or any(k < 1 for k in self.ks):
            raise CbnsError(f"--ks: must be a non-empty list of cut-offs >= 1, got {self.ks}")
        if self.drift_every < 0:
            raise CbnsError(f"--drift-every: must be >= 0 (0 = off), got {self.drift_every}")
        if self.drift_sample < 1:
            raise CbnsError(f"--drift-sample: must be >= 1, got {self.drift_sample}")
        if not self.drift_deltas or any(d < 1 for d in self.drift_deltas):
            raise CbnsError(f"--drift-deltas: must be a non-empty list of step distances >= 1, got {self.drift_deltas}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def coerce(name: str, value: Any, where: str) -> Any:
    """``value`` converted to the type of field ``name``; :class:`CbnsError` naming ``where``."""
    kinds = {f.name: f.type for f in fields(TrainConfig)}
    if name not in kinds:
        known = ", ".join(sorted(kinds))
        raise CbnsError(f"{where}: unknown option {name!r}; known options: {known}")
    kind = kinds[name]
    ok = {
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "list[int]": lambda v: isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v),
    }[kind]
    if not ok(value):
        raise CbnsError(f"{where}: option {name} must be {kind}, got {value!r}")
    return float(value) if kind == "float" else value


def load_yaml(path: str | Path) -> dict[str, Any]:
    """The options in a YAML file, type-checked (not yet range-checked)."""
    path = Path(path)
    if not path.is_file():
        raise CbnsError(f"--config {path}: no such file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise CbnsError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    except UnicodeDecodeError:
        raise CbnsError(f"{path}: not a text file") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise CbnsError(f"{path}: expected a mapping of option: value, got {type(raw).__name__}")
    return {str(k): coerce(str(k), v, str(path)) for k, v in raw.items()}


def build_config(file_options: dict[str, Any], flag_options: dict[str, Any]) -> TrainConfig:
    """Defaults, then the file, then the flags (flags win); validated."""
    merged = {**file_options, **{k: v for k, v in flag_options.items() if v is not None}}
    return TrainConfig(**merged).validate()


def save_yaml(config: TrainConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
