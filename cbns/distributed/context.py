"""Who this process is in a distributed run: rank, world size, device, and the scalar collectives.

A run under ``torchrun`` (or the command line's launcher, :mod:`cbns.cli.launch`) finds ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in its environment; :func:`init_distributed`
joins the process group with NCCL when CUDA is available (each rank on ``cuda:LOCAL_RANK``) and
gloo on CPU otherwise. Without those variables it returns the single-process context, on which
every collective here is a no-op and nothing touches ``torch.distributed``.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run.

    Attributes:
        rank, world_size: global rank in ``[0, world_size)``; ``world_size == 1`` is the plain
            single-process run.
        local_rank, local_world_size: the same on this machine (picks the GPU, splits the cores).
        device: where this rank trains (``cuda:LOCAL_RANK`` under NCCL, else ``cpu``).
        group: the process group of the row gathers (see :mod:`cbns.distributed.gather`), kept
            apart from DDP's default group so that the gathers' all-reduce inside backward and
            DDP's bucketed gradient all-reduces never have to be issued in the same order.
        owns_group: True when :func:`init_distributed` created the default process group, so
            :meth:`close` destroys it; a default group the caller made is left alone (only the
            gathers' group is released).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    group: Any = None
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files, prints and shows progress bars."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum over ranks of ``values``, in float64."""
        if not self.distributed:
            return [float(v) for v in values]
        t = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        dist.all_reduce(t, group=self.group)
        return t.tolist()

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier(group=self.group)

    def close(self) -> None:
        """Release the gathers' group, and the default group too if this context created it."""
        if not dist.is_initialized():
            return
        if self.owns_group:
            dist.destroy_process_group()
        elif self.group is not None:
            dist.destroy_process_group(self.group)


def launched_rank(env: Mapping[str, str] = os.environ) -> int:
    """The ``RANK`` a launcher gave this process (0 when there is none)."""
    return int(env.get("RANK", "0"))


def init_distributed(env: Mapping[str, str] = os.environ) -> DistContext:
    """Join the run this process was launched into, or return the single-process context.

    A process group the caller already initialised is reused (and not destroyed by
    :meth:`DistContext.close`); otherwise one is made from the launcher's environment (``env://``),
    NCCL if CUDA is available, gloo if not.
    """
    owns = False
    if not dist.is_initialized():
        if int(env.get("WORLD_SIZE", "1")) <= 1:
            return DistContext()
        local_rank = int(env.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
            dist.init_process_group("nccl", device_id=torch.device("cuda", local_rank))
        else:
            dist.init_process_group("gloo")
        owns = True
    world = dist.get_world_size()
    if world == 1:
        return DistContext(owns_group=owns)
    backend = dist.get_backend()
    local_rank = int(env.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
    return DistContext(rank=dist.get_rank(), world_size=world, local_rank=local_rank,
                       local_world_size=int(env.get("LOCAL_WORLD_SIZE", str(world))),
                       device=device, group=dist.new_group(backend=backend), owns_group=owns)
