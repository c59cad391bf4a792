"""The reliability diagram: observed against nominal coverage of central intervals, one curve per horizon."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["reliability_diagram"]


def reliability_diagram(
    curves: Mapping[str, Mapping[int, Mapping[float, float]]], title: str = "Reliability of the predictive intervals"
) -> plt.Figure:
    """Observed coverage of the central intervals against their nominal level (a calibrated model lies on the
    diagonal; below it, over-confident).

    Args:
        curves: ``{label: {horizon: {level: observed coverage}}}``, e.g. ``{"as trained": {h:
            rollout_calibration(...)[h]["reliability"]}, "recalibrated": {...}}``; one panel per label, one
            curve per horizon.
        title: the figure's title.

    Returns:
        the figure.
    """
    if not curves:
        raise ValueError("curves must hold at least one labelled set of reliability curves")
    fig, axes = plt.subplots(1, len(curves), figsize=(3.6 * len(curves), 3.5), squeeze=False, sharey=True)
    cmap = plt.get_cmap("viridis")
    for ax, (label, by_h) in zip(axes[0], curves.items()):
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="calibrated")
        hs = sorted(by_h)
        for i, h in enumerate(hs):
            levels = np.array(sorted(by_h[h]), dtype=float)
            cov = np.array([by_h[h][p] for p in sorted(by_h[h])], dtype=float)
            ax.plot(levels, cov, marker="o", ms=3, color=cmap(i / max(len(hs) - 1, 1)), label=f"{h} steps")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("nominal coverage")
        ax.set_title(label)
        ax.set_aspect("equal")
    axes[0, 0].set_ylabel("observed coverage")
    axes[0, -1].legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
