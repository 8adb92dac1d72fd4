"""How much memory this machine can still give, and how work is cut into blocks that fit it."""
from __future__ import annotations


def available_memory() -> int | None:
    """Bytes of memory the system can still give (``MemAvailable``), or None where unknown."""
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


def block_rows(row_bytes: int, cap_bytes: int, min_rows: int = 1) -> int:
    """Rows per block for work of ``row_bytes`` a row: ``cap_bytes`` worth, or an eighth of the
    available memory if that is less, but never under ``min_rows``."""
    budget = cap_bytes
    free = available_memory()
    if free is not None:
        budget = min(budget, free // 8)
    return max(min_rows, budget // max(row_bytes, 1))
