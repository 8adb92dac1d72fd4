"""``cbns train`` flags generated from the config's declarations (:mod:`cbns.config.option`).

Every :class:`cbns.config.TrainConfig` field becomes ``--name-with-dashes``, in its ``--help``
group, with its help sentence, its choices (with each registered implementation's summary) and
its default. Flags default to None ("not given"), so a YAML file's value survives an unset flag.
"""
from __future__ import annotations

import argparse
import re

from cbns.config import TrainConfig
from cbns.config.option import Option
from cbns.registry import Registry

GROUP_TITLES = {"data": "data", "model": "model and towers", "sampler": "negative sampler",
                "loss": "loss", "training": "training", "evaluation": "evaluation", "run": "run"}


def flag_name(option: str) -> str:
    """The command-line flag of a config option: ``memory_size`` -> ``--memory-size``."""
    return "--" + option.replace("_", "-")


def parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_ints(text: str) -> list[int]:
    try:
        return [int(k) for k in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 20,50, got {text!r}") from None


def parse_names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


_TYPES = {"int": int, "float": float, "bool": parse_bool, "str": str, "list[int]": parse_ints,
          "list[str]": parse_names}


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per config option, grouped as the options declare."""
    defaults = TrainConfig()
    groups: dict[str, argparse._ArgumentGroup] = {}
    for name, (kind, spec) in TrainConfig.options().items():
        group = groups.get(spec.group)
        if group is None:
            group = groups[spec.group] = parser.add_argument_group(GROUP_TITLES.get(spec.group, spec.group))
        allowed = spec.allowed()
        metavar = spec.metavar or ("BOOL" if kind == "bool" else None)
        group.add_argument(flag_name(name), dest=name, type=_TYPES[kind], default=None,
                           choices=allowed, metavar=metavar if allowed is None else None,
                           help=_help(spec, defaults[name]))


def add_device_option(p: argparse.ArgumentParser, default: str = "auto") -> None:
    """``--device``, for the commands that score on a device (evaluate, recommend, study)."""
    p.add_argument("--device", default=default, metavar="DEVICE",
                   help=f"auto (CUDA when present, else the CPU), cpu, cuda or cuda:N (default: {default})")


def config_flags(args: argparse.Namespace) -> dict:
    """The config options among parsed ``args`` (None = not given)."""
    return {name: getattr(args, name) for name in TrainConfig.options() if hasattr(args, name)}


def _help(spec: Option, default) -> str:
    text = re.sub(r"`(\w+)`", lambda m: flag_name(m[1]), spec.help)
    if isinstance(spec.choices, Registry):
        described = [f"{name} = {spec.choices.summary(name)}" for name in spec.choices.names()
                     if spec.choices.summary(name)]
        if "auto" in spec.choices.aliases:
            described.insert(0, "auto = cbns (kept for configs that name it)")
        if described:
            text += ": " + "; ".join(described)
    shown = ",".join(map(str, default)) if isinstance(default, list) else default
    if shown not in ("", None):
        text += f" (default: {shown})"
    return text.replace("%", "%%")
