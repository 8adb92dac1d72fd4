"""Checks that stop a run before it turns bad numbers into a silently wrong model."""
from __future__ import annotations

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
    """The guard of :func:`check_finite` without waiting for the device at every step.

    :meth:`watch` records, on the device, the first step whose tensors held a NaN or an inf (and
    which tensors they were); :meth:`check` reads it (one wait) and raises
    :class:`NonFiniteError` naming that step. The steps in between are not stopped before their
    update, so the weights may be bad by then: the checkpoint writer checks the weights itself
    (:func:`check_module_finite`) and never saves bad ones.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.first = torch.full((3,), -1, dtype=torch.long, device=device)  # step, epoch, bad-tensor bits
        self.names: tuple[str, ...] = ()

    def watch(self, step: int, epoch: int, **tensors: torch.Tensor) -> None:
        self.names = tuple(tensors)
        ok = torch.stack([torch.isfinite(t).all() for t in tensors.values()])
        bits = (~ok).long() * (2 ** torch.arange(len(ok), device=self.device))
        record = torch.stack([torch.tensor(step, device=self.device), torch.tensor(epoch, device=self.device),
                              bits.sum()])
        fresh = (self.first[0] < 0) & ~ok.all()
        self.first = torch.where(fresh, record, self.first)

    def check(self) -> None:
        step, epoch, bits = self.first.tolist()
        if step < 0:
            return
        bad = [name for k, name in enumerate(self.names) if bits >> k & 1]
        raise NonFiniteError(f"step {step} (epoch {epoch}): non-finite values in {', '.join(bad)}; training "
                             f"stopped at the next read of the device (try a lower ", Opt("lr"), " or ",
                             Opt("init_std"), ")")


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
