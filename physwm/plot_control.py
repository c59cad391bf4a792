"""Figures of closed-loop control: episode time series and the closed-loop phase portrait.

Each function takes :class:`~physwm.control.Episode` s (what :func:`~physwm.control.run_episode` and
:func:`~physwm.control.planning_study` return) and returns a matplotlib ``Figure``. Colours follow
:data:`physwm.plot.PALETTE` (one per model family). The pole angle is drawn wrapped to ``[-pi, pi)``
with the line broken where it wraps, so a swing-up reads as a path into the upright point ``(0, 0)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .control import THETA_THRESHOLD, Episode, wrap_angle
from .plot import STATE_LABELS, color

__all__ = ["closed_loop_phase_portrait", "episode_figure", "wrapped_angle_with_breaks"]


def wrapped_angle_with_breaks(theta: np.ndarray, other: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Wrap ``theta [T]`` to ``[-pi, pi)`` and insert NaN where it jumps by a turn (so lines break there).

    Returns ``(theta_wrapped, other)`` with NaN rows inserted at the same places (``other`` may be
    ``None``; then only the angle is returned in the tuple).
    """
    th = np.asarray(wrap_angle(np.asarray(theta, dtype=np.float64)))
    jumps = np.flatnonzero(np.abs(np.diff(th)) > math.pi) + 1
    th = np.insert(th, jumps, np.nan)
    if other is None:
        return (th,)
    return th, np.insert(np.asarray(other, dtype=np.float64), jumps, np.nan)


def _episode_groups(episodes: Any) -> dict[str, list[Episode]]:
    if isinstance(episodes, Episode):
        return {episodes.model or "closed loop": [episodes]}
    if isinstance(episodes, Mapping):
        out = {}
        for k, v in episodes.items():
            v = [v] if isinstance(v, Episode) else list(v)
            if not all(isinstance(e, Episode) for e in v):
                raise TypeError(f"episodes[{k!r}] must be Episodes")
            out[str(k)] = v
        return out
    if isinstance(episodes, Sequence) and episodes and all(isinstance(e, Episode) for e in episodes):
        groups: dict[str, list[Episode]] = {}
        for e in episodes:
            groups.setdefault(e.model or "closed loop", []).append(e)
        return groups
    raise TypeError("episodes must be an Episode, a list of Episodes or a dict name -> Episode(s)")


def closed_loop_phase_portrait(
    episodes: Episode | Sequence[Episode] | Mapping[str, Episode | Sequence[Episode]],
    *,
    title: str | None = None,
    ax=None,
):
    """Closed-loop phase portrait: pole angle (wrapped) vs angular velocity of the true system.

    Args:
        episodes: one :class:`~physwm.control.Episode`, a list (grouped by ``episode.model``) or a dict
            model name -> episode(s) (e.g. ``study.episodes``).
        title: axes title.
        ax: draw into these axes (default: a new figure).

    Returns:
        The Figure: one colour per model (one legend entry each, with its success count), starts as
        dots, failed episodes' ends as crosses, the upright target as a star, and the +-12 degree band.
    """
    import matplotlib.pyplot as plt

    groups = _episode_groups(episodes)
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.0, 4.5), layout="constrained")
    else:
        fig = ax.figure
    ax.axvspan(-THETA_THRESHOLD, THETA_THRESHOLD, color="0.92", zorder=0, label="|θ| < 12°")
    for name, eps in groups.items():
        c = color(name)
        wins = sum(e.success for e in eps)
        for k, e in enumerate(eps):
            th, om = wrapped_angle_with_breaks(e.states[:, 2], e.states[:, 3])
            ax.plot(th, om, "-", color=c, lw=1.1, alpha=0.85,
                    label=f"{name} ({wins}/{len(eps)} success)" if k == 0 else None, zorder=2)
            s = e.states[0]
            ax.plot(float(wrap_angle(np.float64(s[2]))), s[3], "o", color=c, ms=4, zorder=3)
            if not e.success:
                f = e.states[-1]
                ax.plot(float(wrap_angle(np.float64(f[2]))), f[3], "x", color=c, ms=7, mew=2, zorder=4)
    ax.plot(0.0, 0.0, "*", color="k", ms=12, label="upright", zorder=5)
    ax.set_xlabel("pole angle θ, wrapped (rad)")
    ax.set_ylabel(STATE_LABELS[3])
    ax.legend(loc="best", fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def episode_figure(episode: Episode, *, title: str | None = None):
    """One episode: states and force vs time (left column) and its phase portrait (right).

    Args:
        episode: a closed-loop :class:`~physwm.control.Episode`.
        title: figure title (default: :meth:`Episode.summary`).

    Returns:
        The Figure (5 time-series axes: x, x_dot, theta (wrapped), theta_dot, force; one phase portrait).
    """
    import matplotlib.pyplot as plt

    if not isinstance(episode, Episode):
        raise TypeError(f"episode must be an Episode, got {type(episode).__name__}")
    fig = plt.figure(figsize=(11.0, 7.0), layout="constrained")
    grid = fig.add_gridspec(5, 2, width_ratios=(1.3, 1.0))
    t = episode.time
    c = color(episode.model or "explicit")
    axes = []
    labels = (*STATE_LABELS[:2], "pole angle θ, wrapped (rad)", STATE_LABELS[3])
    for d in range(4):
        ax = fig.add_subplot(grid[d, 0], sharex=axes[0] if axes else None)
        if d == 2:
            th, tt = wrapped_angle_with_breaks(episode.states[:, 2], t)
            ax.plot(tt, th, color=c, lw=1.2)
            ax.axhspan(-THETA_THRESHOLD, THETA_THRESHOLD, color="0.92", zorder=0)
        else:
            ax.plot(t, episode.states[:, d], color=c, lw=1.2)
        ax.set_ylabel(labels[d].replace(" (", "\n("), fontsize=8)
        ax.tick_params(labelbottom=False)
        axes.append(ax)
    ax = fig.add_subplot(grid[4, 0], sharex=axes[0])
    if episode.steps:
        ax.step(t[:-1], episode.controls[:, 0], where="post", color=c, lw=1.0)
    ax.set_ylabel("force u\n(N)", fontsize=8)
    ax.set_xlabel("time (s)")
    ax_phase = fig.add_subplot(grid[:, 1])
    closed_loop_phase_portrait({episode.model or "closed loop": [episode]}, ax=ax_phase, title="phase portrait")
    fig.suptitle(title if title is not None else episode.summary(), fontsize=10)
    return fig
