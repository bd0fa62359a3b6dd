"""Figures shared by claims: log-log rate plots with their fitted slopes."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from proofs_check.registry import Context, fit_loglog_slope


def save_figure(ctx: Context, fig: Any, filename: str, outcomes: Sequence = ()) -> str:
    """Save a matplotlib figure under the report's figures folder, close it, attach it to ``outcomes``;
    return its path relative to the report folder."""
    import matplotlib.pyplot as plt

    path = ctx.figure_path(filename)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    relative = str(path.relative_to(ctx.out_dir))
    for outcome in outcomes:
        outcome.figures.append(relative)
    return relative


def loglog_rate_figure(ctx: Context, filename: str, series: Mapping[str, tuple[Sequence[float], Sequence[float]]], *,
                       xlabel: str, ylabel: str, title: str, reference_slope: float | None = None
                       ) -> tuple[str, dict[str, float]]:
    """Plot each (x, y) series on log-log axes with its least-squares line; return the figure's path
    (relative to the report folder) and the fitted slope of each series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    slopes = {}
    fig, ax = plt.subplots(figsize=(5, 4))
    for label, (x, y) in series.items():
        slope, intercept = fit_loglog_slope(x, y)
        slopes[label] = slope
        (points,) = ax.loglog(x, y, "o", label=f"{label} (slope {slope:.2f})")
        ax.loglog(x, np.exp(intercept) * np.asarray(x, float) ** slope, "-", color=points.get_color())
    if reference_slope is not None:
        ax.plot([], [], " ", label=f"predicted slope {reference_slope:g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return save_figure(ctx, fig, filename), slopes
