"""A headless matplotlib canvas: the Agg backend, one shared look, and saving to PNG."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed; must precede the pyplot import
import matplotlib.pyplot as plt

#: one colour per series, in order (matplotlib's colour-blind-friendly tab10)
COLORS = plt.get_cmap("tab10").colors


def figure(rows: int = 1, cols: int = 1, width: float = 6.4, height: float = 4.2):
    """A figure of ``rows x cols`` axes, each ``width x height`` inches; returns (fig, flat axes)."""
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat:
        ax.grid(True, alpha=0.3)
    return fig, list(axes.flat)


def save(fig, path: Path, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG to ``path`` and free it."""
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
