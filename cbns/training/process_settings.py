"""Process-wide settings that make CPU training fast: the thread count and the allocator.

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
