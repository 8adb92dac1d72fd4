"""The machine a run uses: its device, the memory it can still give, and the peak a run reached.

``device auto|cpu|cuda|cuda:N`` is resolved here (:func:`resolve_device`); block sizes of the
chunked computations (evaluation, the fused softmax) come from :func:`block_rows`, which asks the
device for its free memory (``MemAvailable`` on the CPU, the CUDA driver on a GPU); and every run
records :func:`peak_memory` in its metrics, so the trade CBNS makes (negatives for memory) can be
read off any run.
"""
from __future__ import annotations

import re
import resource
import sys
from typing import TYPE_CHECKING

from cbns.errors import CbnsError, Opt

if TYPE_CHECKING:  # torch is imported where a device is used, so serving a bundle runs without it
    import torch

_CUDA = re.compile(r"^cuda(:\d+)?$")
_free_cache: dict[str, int] = {}


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` (CUDA when available, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``; one-line
    :class:`CbnsError` naming the ``device`` option when the device cannot be used."""
    import torch

    text = str(spec).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if not _CUDA.match(text):
        raise CbnsError(Opt("device"), f": must be auto, cpu, cuda or cuda:N, got {spec!r}")
    if not torch.cuda.is_available():
        raise CbnsError(Opt("device", spec), f": CUDA is not available here (torch {torch.__version__}, "
                        f"{'built without CUDA' if torch.version.cuda is None else 'no GPU found'}); use ",
                        Opt("device", "cpu"))
    device = torch.device(text)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise CbnsError(Opt("device", spec), f": this machine has {torch.cuda.device_count()} GPU(s), "
                        f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return device


def available_memory(device: torch.device | None = None) -> int | None:
    """Bytes the device can still give: ``MemAvailable`` on the CPU, the driver's free memory on
    a GPU (read once per process: asking the driver every step would cost a call each time);
    None where unknown."""
    if device is not None and device.type == "cuda":
        key = str(device)
        if key not in _free_cache:
            import torch

            _free_cache[key] = torch.cuda.mem_get_info(device)[0]
        return _free_cache[key]
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def format_bytes(n: float) -> str:
    """``512 B``, ``3.4 MB``, ``2.0 TB``: binary units, one decimal."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1024 or unit == "PB":
            break
        n /= 1024
    return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"


def block_rows(row_bytes: int, cap_bytes: int, min_rows: int = 1, device: torch.device | None = None) -> int:
    """Rows per block for work of ``row_bytes`` a row: ``cap_bytes`` worth, or an eighth of the
    device's available memory if that is less, but never under ``min_rows``."""
    budget = cap_bytes
    free = available_memory(device)
    if free is not None:
        budget = min(budget, free // 8)
    return max(min_rows, budget // max(row_bytes, 1))


def reset_peak_memory(device: torch.device) -> None:
    """Start counting a CUDA device's peak allocation from now (the CPU's peak RSS cannot be reset)."""
    if device.type == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> dict:
    """The peak memory of this process so far: on a GPU the most bytes torch held allocated on it
    (``max_memory_allocated``, since the last :func:`reset_peak_memory`) and reserved; on the CPU
    the peak resident set size of the process (its whole life: data, model and training)."""
    if device.type == "cuda":
        import torch

        return {"device": str(device), "cuda_max_allocated_bytes": int(torch.cuda.max_memory_allocated(device)),
                "cuda_max_reserved_bytes": int(torch.cuda.max_memory_reserved(device))}
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return {"device": "cpu", "peak_rss_bytes": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale}
