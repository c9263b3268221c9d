"""The learning curve of a run: training return against frames, from ``metrics.csv``."""

from __future__ import annotations

import os
from pathlib import Path

from rlkernel_algos.loggers.csv_logger import read_metrics

__all__ = ["plot_learning_curve"]


def plot_learning_curve(
    metrics_csv: str | os.PathLike[str], png: str | os.PathLike[str], *, title: str = "", metric: str = "return"
) -> Path:
    """Draw ``metric`` (default: the recent training return) against frames into ``png``.

    Draws on a bare ``matplotlib.figure.Figure`` (no pyplot, no backend switch). A run that logged no ``metric`` gets an
    empty plot saying so (the file always exists afterwards).
    """
    from matplotlib.figure import Figure

    series = read_metrics(metrics_csv).get(metric, [])
    figure = Figure(figsize=(6, 4), dpi=100)
    axes = figure.add_subplot()
    if series:
        steps, values = zip(*series)
        few = len(steps) <= 50  # dots make a short run's few points visible
        axes.plot(steps, values, color="tab:blue", linewidth=1.5, marker="o" if few else None, markersize=3)
    else:
        axes.text(0.5, 0.5, f"no '{metric}' logged yet", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel("frames")
    axes.set_ylabel(f"training {metric} (recent episodes)")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    target = Path(png)
    figure.savefig(target)
    return target
