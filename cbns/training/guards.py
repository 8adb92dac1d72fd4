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
    """The guard of :func:`check_finite` without waiting for the device at any step.

    :meth:`watch` records, on the device, the first step since the last :meth:`check` whose
    tensors held a NaN or an inf (and which tensors they were), with no host tensor and no read:
    each tensor is summed (a NaN or an inf anywhere makes its sum non-finite), the steps are
    counted by a device counter, and the host keeps only the step and epoch where the window
    began. :meth:`check` reads the record (one wait), raises :class:`NonFiniteError` naming that
    step, and opens the next window. The steps in between are not stopped before their update,
    so the weights may be bad by then: the checkpoint writer checks the weights itself
    (:func:`check_module_finite`) and never saves bad ones.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.first = torch.zeros(2, dtype=torch.long, device=device)  # [steps into the window, bad-tensor bits]
        self.count = torch.zeros((), dtype=torch.long, device=device)   # steps watched in this window
        self.start: tuple[int, int] | None = None                        # (step, epoch) the window began at
        self.names: tuple[str, ...] = ()
        self._bit_values = torch.zeros(0, dtype=torch.long, device=device)

    @torch.no_grad()
    def watch(self, step: int, epoch: int, **tensors: torch.Tensor) -> None:
        """Record step ``step`` of epoch ``epoch`` (host integers) if one of ``tensors`` is not finite."""
        if self.start is None:
            self.start = (step, epoch)
        if tuple(tensors) != self.names:
            self.names = tuple(tensors)
            self._bit_values = 2 ** torch.arange(len(tensors), device=self.device)
        sums = torch.stack([t.detach().sum(dtype=torch.float32) for t in tensors.values()])
        bits = (~torch.isfinite(sums) * self._bit_values).sum()
        fresh = (self.first[1] == 0) & (bits != 0)
        self.first = torch.where(fresh, torch.stack([self.count, bits]), self.first)
        self.count += 1

    def check(self) -> None:
        """Read the window's record (one wait for the device); raise if a step in it was not finite."""
        if self.start is None:
            return
        offset, bits = self.first.tolist()
        (step, epoch), self.start = self.start, None
        self.first.zero_()
        self.count.zero_()
        if not bits:
            return
        bad = [name for k, name in enumerate(self.names) if bits >> k & 1]
        raise NonFiniteError(f"step {step + offset} (epoch {epoch}): non-finite values in {', '.join(bad)}; "
                             f"training stopped at the next read of the device (try a lower ", Opt("lr"), " or ",
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
