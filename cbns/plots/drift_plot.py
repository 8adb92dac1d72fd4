"""Drift curves: D(t, dt) against the training step, one line per dt, the warm-up marked."""
from __future__ import annotations

from pathlib import Path

from matplotlib.ticker import FuncFormatter, LogLocator

from cbns.plots.canvas import COLORS, figure, save

_PLAIN = FuncFormatter(lambda y, _: f"{y:g}")  # 30, not 3 x 10^1, on the log axis


def draw_drift(ax, payload: dict, title: str) -> None:
    """Draw one ``drift.json`` payload (see :meth:`cbns.training.callbacks.drift.EmbeddingDrift.to_dict`) on ``ax``."""
    steps = payload["steps"]
    plotted = False
    for color, dt in zip(COLORS, payload["deltas"]):
        pairs = [(s, v) for s, v in zip(steps, payload["drift"][str(dt)]) if v is not None and v > 0]
        if pairs:
            ax.plot(*zip(*pairs), color=color, linewidth=1.2, label=f"dt = {dt} step{'s' if dt > 1 else ''}")
            plotted = True
    warmup = payload.get("warmup_steps")
    if warmup:
        ax.axvline(warmup, color="black", linestyle="--", linewidth=1, label=f"end of warm-up (step {warmup})")
    per_epoch = payload.get("steps_per_epoch")
    if per_epoch:
        top = ax.secondary_xaxis("top", functions=(lambda s: s / per_epoch, lambda e: e * per_epoch))
        top.set_xlabel("epoch")
    if plotted:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(_PLAIN)
        ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))  # 2, 5, 20, 50: enough to read, no crowding
        ax.yaxis.set_minor_formatter(_PLAIN)
        ax.tick_params(axis="y", which="both", labelsize=8)
        ax.legend(fontsize=8)
    ax.set_xlabel("training step t (optimizer steps)")
    ax.set_ylabel(f"D(t, dt) = sum over {payload['sample']} items of L2 shift (log)")
    ax.set_title(title, fontsize=10, pad=8)


def save_drift_figure(payload: dict, path: Path, title: str) -> Path:
    """One run's drift curves as a PNG."""
    fig, (ax,) = figure()
    draw_drift(ax, payload, title)
    return save(fig, path)
