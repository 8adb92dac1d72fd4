"""Process-wide settings the command line applies before a command runs: the thread count
(``--threads``, divided among the ranks of a distributed run) and the allocator. The library sets
neither; a Python caller calls ``torch.set_num_threads`` itself (docs/library.md).

The logits of a step are tens of MB. glibc serves blocks that large with mmap and returns them
on free, so every step pays page faults for fresh zeroed pages: measured here, a CBNS step with
M = 2B spent half its time in the kernel. Raising the mmap and trim thresholds keeps those
blocks in the heap for reuse.
"""
from __future__ import annotations

import ctypes
import os

import torch

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_tuned = False


def tune_allocator() -> bool:
    """Keep large freed blocks in the process (glibc only; a no-op elsewhere). True if applied."""
    global _tuned
    if _tuned:
        return True
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 31) == 1
    except (OSError, AttributeError):
        return False
    _tuned = ok
    return ok


def set_threads(threads: int = 0) -> int:
    """Pin torch's intra-op threads (0 = every core of this process's affinity); returns the count."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n = threads or available
    torch.set_num_threads(n)
    return n


def rank_threads(requested: int, env=os.environ) -> int:
    """Torch threads for this process: ``requested`` if set, else 0 (every core) in a single
    process and this machine's cores split evenly over its ranks when a launcher started it
    (``WORLD_SIZE`` > 1, ``LOCAL_WORLD_SIZE`` ranks on this machine)."""
    if requested or int(env.get("WORLD_SIZE", "1")) <= 1:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // int(env.get("LOCAL_WORLD_SIZE", env.get("WORLD_SIZE", "1"))))


def apply(threads: int) -> int:
    """What ``cbns train`` sets before a run: this rank's threads (:func:`rank_threads`) and the
    allocator; returns the thread count."""
    n = set_threads(rank_threads(threads))
    tune_allocator()
    return n
