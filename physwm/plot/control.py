"""Figures of closed-loop control: episode time series and the closed-loop phase portrait.

Each function takes :class:`~physwm.control.Episode` s (what :func:`~physwm.control.run_episode` and
:func:`~physwm.control.planning_study` return) and returns a matplotlib ``Figure``. Colours follow
:data:`physwm.plot.PALETTE` (one per model family); labels come from the episode's system. Angles are
drawn wrapped to ``[-pi, pi)`` with the line broken where they wrap, so a swing-up reads as a path into
the upright point ``(0, 0)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from ..control import Episode
from ..systems import DEFAULT_SYSTEM, System, get_system, wrap_angle
from .palette import color, figure

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


def _system(episodes: Mapping[str, list[Episode]]) -> type[System]:
    names = {e.system for eps in episodes.values() for e in eps}
    return get_system(names.pop()) if len(names) == 1 and "" not in names else DEFAULT_SYSTEM


def _wrapped(cls: type[System], d: int, values: np.ndarray, other: np.ndarray | None = None) -> tuple:
    """Entry ``d`` of states wrapped (with breaks) if it is an angle, else as is."""
    if cls.states[d].kind == "angle":
        return wrapped_angle_with_breaks(values, other)
    return (values,) if other is None else (values, other)


def _wrapped_label(cls: type[System], d: int) -> str:
    q = cls.states[d]
    return q.label.replace(" (", ", wrapped (", 1) if q.kind == "angle" else q.label


def closed_loop_phase_portrait(
    episodes: Episode | Sequence[Episode] | Mapping[str, Episode | Sequence[Episode]],
    *,
    title: str | None = None,
    ax=None,
):
    """Closed-loop phase portrait of the true system in its ``phase_dims`` (CartPole: pole angle, wrapped,
    vs angular velocity).

    Args:
        episodes: one :class:`~physwm.control.Episode`, a list (grouped by ``episode.model``) or a dict
            model name -> episode(s) (e.g. ``study.episodes``).
        title: axes title.
        ax: draw into these axes (default: a new figure).

    Returns:
        The Figure: one colour per model (one legend entry each, with its success count), starts as
        dots, failed episodes' ends as crosses, the goal (zero) as a star, and the system's goal band.
    """
    groups = _episode_groups(episodes)
    cls = _system(groups)
    i, j = cls.phase_dims
    fig, ax = figure(ax)
    if cls.goal_band is not None:
        band = cls.goal_band
        unit = cls.states[i].unit
        what = f"{math.degrees(band):.0f}°" if unit == "rad" else f"{band:g} {unit}"
        ax.axvspan(-band, band, color="0.92", zorder=0, label=f"|{cls.states[i].name}| < {what}")
    for name, eps in groups.items():
        c = color(name)
        wins = sum(e.success for e in eps)
        for k, e in enumerate(eps):
            xs, ys = _wrapped(cls, i, e.states[:, i], e.states[:, j])
            ax.plot(xs, ys, "-", color=c, lw=1.1, alpha=0.85,
                    label=f"{name} ({wins}/{len(eps)} success)" if k == 0 else None, zorder=2)
            s = e.states[0]
            ax.plot(_wrapped(cls, i, s[i : i + 1])[0][0], s[j], "o", color=c, ms=4, zorder=3)
            if not e.success:
                f = e.states[-1]
                ax.plot(_wrapped(cls, i, f[i : i + 1])[0][0], f[j], "x", color=c, ms=7, mew=2, zorder=4)
    ax.plot(0.0, 0.0, "*", color="k", ms=12, label="goal", zorder=5)
    ax.set_xlabel(_wrapped_label(cls, i))
    ax.set_ylabel(cls.states[j].label)
    ax.legend(loc="best", fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def episode_figure(episode: Episode, *, title: str | None = None):
    """One episode: every state entry and control vs time (left column) and its phase portrait (right).

    Args:
        episode: a closed-loop :class:`~physwm.control.Episode`.
        title: figure title (default: :meth:`Episode.summary`).

    Returns:
        The Figure (one time-series axes per state entry, angles wrapped, and per control; one phase portrait).
    """
    if not isinstance(episode, Episode):
        raise TypeError(f"episode must be an Episode, got {type(episode).__name__}")
    cls = _system({"": [episode]})
    n, m = cls.state_dim, cls.control_dim
    fig = plt.figure(figsize=(11.0, 7.0), layout="constrained")
    grid = fig.add_gridspec(n + m, 2, width_ratios=(1.3, 1.0))
    t = episode.time
    c = color(episode.model or "explicit")
    axes: list = []
    for d in range(n):
        ax = fig.add_subplot(grid[d, 0], sharex=axes[0] if axes else None)
        ys, tt = _wrapped(cls, d, episode.states[:, d], t)
        ax.plot(tt, ys, color=c, lw=1.2)
        if d == cls.phase_dims[0] and cls.goal_band is not None:
            ax.axhspan(-cls.goal_band, cls.goal_band, color="0.92", zorder=0)
        ax.set_ylabel(_wrapped_label(cls, d).replace(" (", "\n("), fontsize=8)
        ax.tick_params(labelbottom=False)
        axes.append(ax)
    for k in range(m):
        ax = fig.add_subplot(grid[n + k, 0], sharex=axes[0])
        if episode.steps:
            ax.step(t[:-1], episode.controls[:, k], where="post", color=c, lw=1.0)
        ax.set_ylabel(cls.controls[k].label.replace(" (", "\n("), fontsize=8)
        ax.tick_params(labelbottom=k == m - 1)
    axes[-1].set_xlabel("time (s)") if m == 0 else ax.set_xlabel("time (s)")
    ax_phase = fig.add_subplot(grid[:, 1])
    closed_loop_phase_portrait({episode.model or "closed loop": [episode]}, ax=ax_phase, title="phase portrait")
    fig.suptitle(title if title is not None else episode.summary(), fontsize=10)
    return fig
