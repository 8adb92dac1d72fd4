"""Checks that stop a run before it turns bad numbers into a silently wrong model."""
from __future__ import annotations

import torch

from cbns.errors import NonFiniteError


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
