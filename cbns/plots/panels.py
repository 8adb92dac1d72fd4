"""Line charts from plain data: one or more panels of labelled series, saved as one PNG.

The study's figures (validation recall against time, test recall against the bank size or the
batch size) are all of this form, so the report describes them as :class:`Panel` values and
this module is the only one that knows matplotlib.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cbns.plots.canvas import COLORS, figure, save
from cbns.plots.drift_plot import draw_drift


@dataclass
class Series:
    """One line: points ``(x, y)``, optional error bars ``yerr`` (one per point, ``None`` = none)."""

    label: str
    xs: list[float]
    ys: list[float]
    yerr: list[float | None] | None = None
    color_key: str | None = None  # series with the same key share a colour (the label's first use)
    show_label: bool = True
    variant: int = 0  # series sharing a colour differ by it: line style and marker (e.g. one per seed)


@dataclass
class Panel:
    """One chart: axis texts with units, its series, and optional labelled horizontal lines."""

    title: str
    xlabel: str
    ylabel: str
    series: list[Series]
    log2_x: bool = False
    hlines: list[tuple[float, str]] = field(default_factory=list)


def save_panels(panels: list[Panel], path: Path, title: str | None = None, cols: int = 2) -> Path:
    """Draw ``panels`` side by side (``cols`` per row) and write the PNG."""
    cols = min(cols, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = figure(rows, cols)
    colors: dict[str, tuple] = {}
    for ax, panel in zip(axes, panels):
        _draw(ax, panel, colors)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return save(fig, path)


#: Line style and marker of a series' ``variant``: series of one colour never look alike.
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "x")


def _draw(ax, panel: Panel, colors: dict) -> None:
    for s in panel.series:
        key = s.color_key or s.label
        color = colors.setdefault(key, COLORS[len(colors) % len(COLORS)])
        errors = [e or 0.0 for e in s.yerr] if s.yerr and any(e for e in s.yerr) else None
        ax.errorbar(s.xs, s.ys, yerr=errors, color=color, marker=MARKERS[s.variant % len(MARKERS)],
                    linestyle=LINESTYLES[s.variant % len(LINESTYLES)], markersize=3.5, linewidth=1.3,
                    capsize=3, label=s.label if s.show_label else None)
    for i, (y, label) in enumerate(panel.hlines):
        ax.axhline(y, color="grey", linestyle=("--", ":", "-.")[i % 3], linewidth=1, label=label)
    if panel.log2_x:
        ax.set_xscale("log", base=2)
        ticks = sorted({x for s in panel.series for x in s.xs})
        if len(ticks) <= 12:  # label the measured values themselves: 256, 512, ... not 2^8
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.minorticks_off()
    ax.set_title(panel.title, fontsize=10)
    ax.set_xlabel(panel.xlabel)
    ax.set_ylabel(panel.ylabel)
    if any(s.show_label for s in panel.series) or panel.hlines:
        ax.legend(fontsize=8)


def save_drift_grid(payloads: list[tuple[str, dict]], path: Path, title: str, cols: int = 3) -> Path:
    """One drift panel (see :func:`cbns.plots.drift_plot.draw_drift`) per ``(title, payload)``."""
    cols = min(cols, len(payloads))
    rows = -(-len(payloads) // cols)
    fig, axes = figure(rows, cols, width=5.6, height=4.0)
    for ax, (name, payload) in zip(axes, payloads):
        draw_drift(ax, payload, name)
    for ax in axes[len(payloads):]:
        ax.set_visible(False)
    fig.suptitle(title)
    return save(fig, path)
