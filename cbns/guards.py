"""Checks that stop a run before it turns bad numbers or a full disk into a silently wrong model."""
from __future__ import annotations

import shutil
from pathlib import Path

import torch
from torch import nn

from cbns.errors import CbnsError


class NonFiniteError(CbnsError):
    """A NaN or infinity appeared in the loss, the embeddings or the weights."""


def check_finite(step: int, epoch: int, **tensors: torch.Tensor) -> None:
    """Raise :class:`NonFiniteError` naming the step if any of ``tensors`` holds a NaN or an inf.

    One device sync for all of them: the flags are reduced on the device and read once.
    """
    flags = torch.stack([torch.isfinite(t).all() for t in tensors.values()])
    if bool(flags.all()):
        return
    bad = [name for name, ok in zip(tensors, flags.tolist()) if not ok]
    detail = ", ".join(f"{name} ({_example(tensors[name])})" for name in bad)
    raise NonFiniteError(f"step {step} (epoch {epoch}): non-finite values in {detail}; training stopped "
                         f"before the update (try a lower --lr or --init-std)")


def check_module_finite(step: int, epoch: int, what: str, state: dict) -> None:
    """Raise :class:`NonFiniteError` if a floating tensor of ``state`` (a state_dict) is not finite."""
    for name, value in _tensors(state):
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise NonFiniteError(f"step {step} (epoch {epoch}): {what} {name} holds {_example(value)} after "
                                 f"the update; training stopped (try a lower --lr)")


def estimate_state_bytes(model: nn.Module, sampler: nn.Module, optimizer_copies: int = 2) -> int:
    """Bytes of one training checkpoint: weights, ``optimizer_copies`` moment tensors per weight
    (Adam keeps two), the best weights, and the sampler's buffers (the CBNS bank)."""
    weights = sum(p.numel() * p.element_size() for p in model.state_dict().values())
    buffers = sum(b.numel() * b.element_size() for b in sampler.state_dict().values() if torch.is_tensor(b))
    return weights * (2 + optimizer_copies) + buffers


def check_free_space(directory: Path, needed: int, what: str = "--out") -> None:
    """:class:`CbnsError` when the filesystem of ``directory`` has less than ``needed`` bytes free.

    Where the free space cannot be queried (some network filesystems) nothing is checked.
    """
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return
    if free < needed:
        raise CbnsError(f"{what} {directory}: {_size(free)} free on its filesystem, but checkpoints and "
                        f"outputs need about {_size(needed)}; free some space or choose another {what}")


def _tensors(state, prefix=""):
    if torch.is_tensor(state):
        yield prefix, state
    elif isinstance(state, dict):
        for key, value in state.items():
            yield from _tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(state, (list, tuple)):
        for i, value in enumerate(state):
            yield from _tensors(value, f"{prefix}[{i}]")


def _example(t: torch.Tensor) -> str:
    n_nan = int(torch.isnan(t).sum())
    n_inf = int(torch.isinf(t).sum())
    return ", ".join(part for part in (f"{n_nan} nan" if n_nan else "", f"{n_inf} inf" if n_inf else "") if part)


def _size(n: float) -> str:
    unit = "B"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            break
        n /= 1024
    return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
