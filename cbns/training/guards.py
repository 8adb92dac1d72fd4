"""Checks that stop a run before it turns bad numbers into a silently wrong model."""
from __future__ import annotations

import math

import torch

from cbns.errors import NonFiniteError, Opt


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
                         f"before the update (try a lower ", Opt("lr"), " or ", Opt("init_std"), ")")


class NonFiniteWatch:
    """The guard of :func:`check_finite` without waiting for the device at any step.

    :meth:`watch` writes, on the device, the sum of each watched tensor into the next row of a
    small table (a NaN or an inf anywhere makes its tensor's sum non-finite): three reductions
    and one write a step, no host tensor, no read. The host keeps only the step and epoch where
    the window of rows began. :meth:`check` reads the window (one wait), raises
    :class:`NonFiniteError` naming the first step whose sums were not finite and which tensors
    they were, and opens the next window. The steps in between are not stopped before their
    update, so the weights may be bad by then: the checkpoint writer checks the weights itself
    (:func:`check_module_finite`) and never saves bad ones.
    """

    def __init__(self, device: torch.device, rows: int = 64):
        self.device = device
        self.sums = torch.zeros(rows, 0, device=device)     # [steps, watched tensors] of the window
        self.used = 0                                         # rows written since the last check
        self.start: tuple[int, int] | None = None             # (step, epoch) the window began at
        self.names: tuple[str, ...] = ()

    @torch.no_grad()
    def watch(self, step: int, epoch: int, **tensors: torch.Tensor) -> None:
        """Record the sums of ``tensors`` at step ``step`` of epoch ``epoch`` (host integers)."""
        if self.start is None:
            self.start, self.used = (step, epoch), 0
        if tuple(tensors) != self.names:  # (a new set of names opens its own window)
            if self.used:
                raise ValueError(f"watch the same tensors within a window: {self.names}, then {tuple(tensors)}")
            self.names = tuple(tensors)
            self.sums = torch.zeros(self.sums.shape[0], len(tensors), device=self.device)
        if self.used == self.sums.shape[0]:  # a longer window than planned: a larger table, on the device
            self.sums = torch.cat([self.sums, torch.zeros_like(self.sums)])
        torch.stack([t.sum(dtype=torch.float32) for t in tensors.values()], out=self.sums[self.used])
        self.used += 1

    def check(self) -> None:
        """Read the window (one wait for the device); raise if a step in it was not finite."""
        if self.start is None:
            return
        rows = self.sums[:self.used].tolist()
        (step, epoch), self.start = self.start, None
        for offset, row in enumerate(rows):
            bad = [name for name, value in zip(self.names, row) if not math.isfinite(value)]
            if bad:
                raise NonFiniteError(f"step {step + offset} (epoch {epoch}): non-finite values in {', '.join(bad)}; "
                                     f"training stopped at the next read of the device (try a lower ", Opt("lr"),
                                     " or ", Opt("init_std"), ")")


def check_module_finite(step: int, epoch: int, what: str, state: dict) -> None:
    """Raise :class:`NonFiniteError` if a floating tensor of ``state`` (a state_dict) is not finite."""
    for name, value in _tensors(state):
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise NonFiniteError(f"step {step} (epoch {epoch}): {what} {name} holds {_example(value)} after "
                                 f"the update; training stopped (try a lower ", Opt("lr"), ")")


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
