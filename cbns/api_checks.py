"""What :func:`cbns.train`, :func:`cbns.resume` and :func:`cbns.evaluate_run` check of their
arguments before they load data or touch a run directory: one TypeError or ValueError that names
the argument and says what it got.

Types: a config where a :class:`cbns.TrainConfig` belongs, ``nn.Module`` towers and loss, a path
for a run directory. Widths: the towers you pass must return vectors as wide as each other, as the
loss you pass (its ``dim``) and as the tower the config builds for the other side. When both
towers are yours, the run takes their width as its ``dim`` (the config's tower width is then not
used by any tower; the run's saved config records the width it really trained). A tower's width
is its ``out_dim`` attribute, else what one id returns (the tower called once on id 0, in eval
mode, without gradient); a tower that cannot be called without a context is not probed.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from cbns.config import TrainConfig
from cbns.runs.run_dir import load_run_config


def check_train_arguments(config, out, callbacks, user_tower, item_tower, loss) -> TrainConfig | None:
    """``config`` as :func:`cbns.train` runs it (with both towers given: at their width), after
    checking every argument (see the module docstring)."""
    if config is not None and not isinstance(config, TrainConfig):
        hint = "; build one with cbns.TrainConfig(**options)" if isinstance(config, Mapping) else ""
        raise TypeError(f"config must be a cbns.TrainConfig (or None for the defaults), got {_kind(config)}{hint}")
    if out is not None:
        _check_path("out", out)
    _check_parts(callbacks, user_tower, item_tower, loss)
    if user_tower is None and item_tower is None and loss is None:
        return config
    config = config if config is not None else TrainConfig()
    width = _check_widths(config.model.dim, user_tower, item_tower, loss)
    if width is not None and user_tower is not None and item_tower is not None and width != config.model.dim:
        config = config.replace(dim=width)
    return config


def check_resume_arguments(run, callbacks, user_tower, item_tower, loss) -> None:
    """TypeError or ValueError unless :func:`cbns.resume`'s arguments have the right types and the
    towers and loss given return the width the run was trained at (its saved ``dim``)."""
    _check_path("run", run)
    _check_parts(callbacks, user_tower, item_tower, loss)
    if user_tower is None and item_tower is None and loss is None:
        return
    dim = load_run_config(Path(run)).model.dim
    width = _check_widths(dim, user_tower, item_tower, loss)
    if width is not None and width != dim:
        raise ValueError(f"the run in {run} was trained at dim={dim}, but the towers given return vectors of width "
                         f"{width}; pass towers built as the run's")


def check_evaluate_arguments(run, device) -> None:
    """TypeError or ValueError unless ``run`` is a path and ``device`` a string."""
    _check_path("run", run)
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'auto', 'cpu' or 'cuda', got {_kind(device)}")


def _check_path(name: str, value) -> None:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a directory path (str or pathlib.Path), got {_kind(value)}")
    if os.fspath(value).strip() == "":  # Path("") would be the current directory
        raise ValueError(f"{name} must name a directory, got {value!r}")


def _check_parts(callbacks, user_tower, item_tower, loss) -> None:
    if isinstance(callbacks, (str, bytes, Mapping)) or not isinstance(callbacks, Iterable):
        raise TypeError(f"callbacks must be a sequence of cbns callbacks, got {_kind(callbacks)}")
    for name, part, what in (("user_tower", user_tower, "a tower: forward(ids [B], context=None) -> [B, D]"),
                             ("item_tower", item_tower, "a tower: forward(ids [B], context=None) -> [B, D]"),
                             ("loss", loss, "a loss: loss(user_emb, item_emb, item_ids, item_bias=..., "
                                            "encode_items=...), e.g. cbns.CrossBatchSoftmaxLoss")):
        if part is not None and not isinstance(part, nn.Module):
            raise TypeError(f"{name} must be an nn.Module ({what}), got {_kind(part)}")


def _check_widths(dim: int, user_tower, item_tower, loss) -> int | None:
    """The width both given towers return (None: not known); ValueError naming the parts that
    disagree."""
    widths = {name: _width(tower) for name, tower in (("user_tower", user_tower), ("item_tower", item_tower))
              if tower is not None}
    loss_dim = getattr(loss, "dim", None) if loss is not None else None
    if isinstance(loss_dim, int):
        for name, width in widths.items():
            if width is not None and width != loss_dim:
                side = name.split("_")[0]
                raise ValueError(f"the loss was built with dim={loss_dim}, got {side}_emb of width {width} from "
                                 f"{name} ({type(user_tower if side == 'user' else item_tower).__name__}); "
                                 f"build the loss and the towers with one width")
    known = {name: width for name, width in widths.items() if width is not None}
    if len(set(known.values())) > 1:
        raise ValueError(f"user_tower returns vectors of width {known['user_tower']} and item_tower of width "
                         f"{known['item_tower']}; the two towers must return one width")
    if not widths and isinstance(loss_dim, int) and loss_dim != dim:
        raise ValueError(f"the loss was built with dim={loss_dim}, but the config's dim is {dim} (the width of the "
                         f"towers it builds); build the loss with dim={dim} or set dim={loss_dim} in the config")
    if len(widths) == 1:  # the config builds the other tower, at its dim
        (name, width), = widths.items()
        other = "item" if name == "user_tower" else "user"
        if width is not None and width != dim:
            raise ValueError(f"{name} returns vectors of width {width}, but the config's dim is {dim} (the width of "
                             f"the {other} tower it builds); set dim={width} in the config")
        return width
    return next(iter(known.values()), None)


def _width(tower: nn.Module) -> int | None:
    """The tower's output width: ``out_dim`` when it says, else what id 0 returns (None when that
    call fails, e.g. a tower that needs a context)."""
    declared = getattr(tower, "out_dim", None)
    if isinstance(declared, int) and not isinstance(declared, bool):
        return declared
    device = next((p.device for p in tower.parameters()), torch.device("cpu"))
    modes = [(module, module.training) for module in tower.modules()]
    try:
        tower.eval()
        with torch.no_grad():
            out = tower(torch.zeros(1, dtype=torch.long, device=device))
    except Exception:  # a probe only: the first training step reports a tower that fails
        return None
    finally:
        for module, training in modes:
            module.training = training
    return int(out.shape[-1]) if isinstance(out, torch.Tensor) and out.dim() == 2 else None


def _kind(value) -> str:
    if isinstance(value, (str, bytes)):
        return f"{type(value).__name__} {value[:40]!r}"
    return type(value).__name__
