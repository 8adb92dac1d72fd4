"""How much disk a run directory will need, checked before training starts."""
from __future__ import annotations

import shutil
from pathlib import Path

import torch
from torch import nn

from cbns.errors import CbnsError, Opt


def estimate_state_bytes(model: nn.Module, objective: nn.Module, optimizer_copies: int = 2) -> int:
    """Bytes of one training checkpoint: weights, ``optimizer_copies`` moment tensors per weight
    (Adam keeps two), the best weights, and the objective's buffers (the CBNS bank)."""
    weights = sum(p.numel() * p.element_size() for p in model.state_dict().values())
    buffers = sum(b.numel() * b.element_size() for b in objective.state_dict().values() if torch.is_tensor(b))
    return weights * (2 + optimizer_copies) + buffers


def check_free_space(directory: Path, needed: int, what: str = "out") -> None:
    """:class:`CbnsError` when the filesystem of ``directory`` has less than ``needed`` bytes free.

    Where the free space cannot be queried (some network filesystems) nothing is checked.
    """
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return
    if free < needed:
        raise CbnsError(Opt(what, directory), f": {_size(free)} free on its filesystem, but checkpoints and "
                        f"outputs need about {_size(needed)}; free some space or choose another ", Opt(what))


def _size(n: float) -> str:
    unit = "B"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            break
        n /= 1024
    return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
