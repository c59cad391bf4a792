"""Figures of world models: phase portraits, vector fields, residuals, error curves, energy.

Every function takes plain arrays (numpy or torch), draws them, and returns a matplotlib ``Figure``; none
needs a model, so results saved to disk can be redrawn (``physwm plot DIR``). Axes carry the system's
labels and units (``system=``, default the default system, CartPole). Non-finite values (a divergent
model's NaN/inf) are not drawn; error curves mark such a model "diverged" in the legend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from .palette import PALETTE, as_array, color, family_map, figure, phase_dims, state_labels

__all__ = ["phase_portrait", "vector_field", "residual", "error_vs_horizon", "data_efficiency", "energy"]


def phase_portrait(
    true: Any,
    predictions: Mapping[str, Any] | None = None,
    dims: tuple[int, int] | None = None,
    *,
    train: Any = None,
    families: Mapping[str, str] | None = None,
    title: str | None = None,
    ax=None,
    system: Any = None,
):
    """Phase portrait of trajectories: true and predicted, overlaid (default: the system's ``phase_dims``,
    for CartPole pole angle vs angular velocity).

    Args:
        true: ``[T+1, n]`` or ``[B, T+1, n]`` true states (physical units).
        predictions: model name -> states of the same shape (e.g. open-loop rollouts from the same starts).
        dims: the two state dimensions on the x and y axes (default: the system's ``phase_dims``).
        train: optional ``[..., n]`` training states drawn as grey dots (the region the models saw).
        families: model name -> family (for colours).
        title: axes title.
        ax: draw into these axes (default: a new figure).
        system: the system (name, class or instance) whose labels the axes carry (default CartPole).

    Returns:
        the Figure. The true trajectory is a black line labelled "truth", each model a coloured dashed line
        labelled with its name (one legend entry per model), the start a black dot.
    """
    true = as_array(true, "true")
    if true.ndim == 2:
        true = true[None]
    if true.ndim != 3:
        raise ValueError(f"true must be [T+1, n] or [B, T+1, n], got shape {true.shape}")
    i, j = dims if dims is not None else phase_dims(system)
    labels = state_labels(system)
    n = true.shape[-1]
    if not (0 <= i < n and 0 <= j < n):
        raise ValueError(f"dims {dims} out of range for states of dimension {n}")
    fig, ax = figure(ax)
    fams = family_map(families)
    if train is not None:
        tr = as_array(train, "train").reshape(-1, n)
        tr = tr[np.isfinite(tr).all(1)]
        ax.plot(tr[:, i], tr[:, j], ".", color="0.8", ms=2, label="training data", zorder=0)
    for b in range(true.shape[0]):
        ax.plot(
            true[b, :, i],
            true[b, :, j],
            "-",
            color=PALETTE["truth"],
            lw=1.6,
            label="truth" if b == 0 else None,
            zorder=3,
        )
        ax.plot(true[b, 0, i], true[b, 0, j], "o", color=PALETTE["truth"], ms=5, zorder=4)
    for name, pred in (predictions or {}).items():
        p = as_array(pred, f"predictions[{name!r}]")
        if p.ndim == 2:
            p = p[None]
        if p.shape != true.shape:
            raise ValueError(f"predictions[{name!r}] has shape {p.shape}, the truth {true.shape}")
        p = np.where(np.isfinite(p), p, np.nan)
        for b in range(p.shape[0]):
            ax.plot(
                p[b, :, i],
                p[b, :, j],
                "--",
                color=color(name, fams.get(name)),
                lw=1.3,
                label=name if b == 0 else None,
                zorder=2,
            )
    ax.set_xlabel(_label(labels, i))
    ax.set_ylabel(_label(labels, j))
    _limit_to(ax, true[..., i], true[..., j], train=None if train is None else tr[:, [i, j]])
    ax.legend(loc="best", fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def _label(labels: Sequence[str], d: int) -> str:
    return labels[d] if 0 <= d < len(labels) else f"state[{d}]"


def _limit_to(ax, xs: np.ndarray, ys: np.ndarray, train: np.ndarray | None = None, margin: float = 0.35) -> None:
    """Keep the view on the truth (and training data): a divergent prediction must not squash the plot."""
    x = xs[np.isfinite(xs)]
    y = ys[np.isfinite(ys)]
    if train is not None and len(train):
        x = np.concatenate([x, train[:, 0]])
        y = np.concatenate([y, train[:, 1]])
    if x.size == 0 or y.size == 0:
        return
    for lo, hi, setter in ((x.min(), x.max(), ax.set_xlim), (y.min(), y.max(), ax.set_ylim)):
        pad = margin * (hi - lo) if hi > lo else 1.0
        setter(lo - pad, hi + pad)


def vector_field(
    grid_x: Any,
    grid_y: Any,
    true: Any,
    learned: Mapping[str, Any],
    *,
    dims: tuple[int, int] | None = None,
    train: Any = None,
    families: Mapping[str, str] | None = None,
    title: str | None = None,
    system: Any = None,
):
    """Stream plots of the true vector field and of each learned one on a 2-D slice of the state space.

    Args:
        grid_x: ``[Gx]`` coordinates of the horizontal axis (state dimension ``dims[0]``).
        grid_y: ``[Gy]`` coordinates of the vertical axis (state dimension ``dims[1]``).
        true: ``[Gy, Gx, 2]`` true time derivatives of ``(dims[0], dims[1])`` on the grid.
        learned: model name -> ``[Gy, Gx, 2]`` learned derivatives (for a discrete-time model,
            ``(step(x, u) - x) / dt``).
        dims: which state dimensions the grid spans (for labels; default the system's ``phase_dims``).
        train: optional ``[..., 2]`` training points (in the slice's coordinates) drawn as grey dots.
        families: model name -> family (for colours).
        title: figure title.
        system: the system whose labels the axes carry (default CartPole).

    Returns:
        the Figure: one panel per field, the truth first (black streamlines), each model in its colour,
        with the RMS difference to the truth over the grid in the panel title.
    """
    dims = dims if dims is not None else phase_dims(system)
    labels = state_labels(system)
    gx, gy = as_array(grid_x, "grid_x"), as_array(grid_y, "grid_y")
    t = as_array(true, "true")
    if t.shape != (gy.size, gx.size, 2):
        raise ValueError(f"true must have shape [Gy={gy.size}, Gx={gx.size}, 2], got {t.shape}")
    panels = [("truth", t)]
    for name, f in learned.items():
        f = as_array(f, f"learned[{name!r}]")
        if f.shape != t.shape:
            raise ValueError(f"learned[{name!r}] has shape {f.shape}, expected {t.shape}")
        panels.append((name, f))
    k = len(panels)
    cols = min(k, 3)
    rows = -(-k // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False, layout="constrained")
    fams = family_map(families)
    tr = None if train is None else as_array(train, "train").reshape(-1, 2)
    for a, (name, f) in zip(axes.flat, panels):
        c = PALETTE["truth"] if name == "truth" else color(name, fams.get(name))
        u, v = f[..., 0], f[..., 1]
        ok = np.isfinite(u) & np.isfinite(v)
        u, v = np.where(ok, u, 0.0), np.where(ok, v, 0.0)
        if tr is not None:
            a.plot(tr[:, 0], tr[:, 1], ".", color="0.85", ms=1.5, zorder=0)
        a.streamplot(gx, gy, u, v, color=c, density=1.0, linewidth=0.8, arrowsize=0.8)
        if name == "truth":
            a.set_title("truth")
        else:
            diff = np.sqrt(np.nanmean(np.where(ok[..., None], (f - t) ** 2, np.nan))) if ok.any() else np.inf
            a.set_title(f"{name} (RMS diff. {diff:.3g})", color=c)
        a.set_xlim(gx.min(), gx.max())
        a.set_ylim(gy.min(), gy.max())
        a.set_xlabel(_label(labels, dims[0]))
        a.set_ylabel(_label(labels, dims[1]))
    for a in list(axes.flat)[k:]:
        a.set_visible(False)
    if title:
        fig.suptitle(title)
    return fig


def residual(
    sweeps: Sequence[Mapping[str, Any]], *, families: Mapping[str, str] | None = None, title: str | None = None
):
    """A hybrid's learned residual against the true missing term, along 1-D sweeps of the state.

    Args:
        sweeps: one panel each, a mapping with ``x`` ``[K]`` (swept values), ``true`` ``[K]`` (the term the
            nominal physics misses, e.g. the friction acceleration), ``learned``: model name -> ``[K]``,
            ``xlabel``, ``ylabel`` (with units), and optionally ``train_range`` ``(lo, hi)`` of ``x`` in the
            training data (shaded) and ``what``, the legend's name of the learned curves (default
            ``"residual"``; e.g. ``"correction"`` for identified constants plus residual).
        families: model name -> family (for colours).
        title: figure title.

    Returns:
        the Figure, one panel per sweep: the truth black, each model dashed in its colour.
    """
    if not sweeps:
        raise ValueError("residual needs at least one sweep")
    fams = family_map(families)
    fig, axes = plt.subplots(1, len(sweeps), figsize=(5.0 * len(sweeps), 3.8), squeeze=False, layout="constrained")
    for a, sw in zip(axes.flat, sweeps):
        missing = sorted({"x", "true", "learned"} - set(sw))
        if missing:
            raise ValueError(f"each sweep needs x, true and learned; missing {missing}")
        x, t = as_array(sw["x"], "x"), as_array(sw["true"], "true")
        if x.shape != t.shape or x.ndim != 1:
            raise ValueError(f"sweep x and true must be 1-D of equal length, got {x.shape} and {t.shape}")
        if sw.get("train_range") is not None:
            lo, hi = sw["train_range"]
            a.axvspan(lo, hi, color="0.92", label="training range", zorder=0)
        a.plot(x, t, "-", color=PALETTE["truth"], lw=2, label="true missing term")
        for name, y in sw["learned"].items():
            y = as_array(y, f"learned[{name!r}]")
            if y.shape != x.shape:
                raise ValueError(f"learned[{name!r}] has shape {y.shape}, expected {x.shape}")
            a.plot(
                x,
                np.where(np.isfinite(y), y, np.nan),
                "--",
                color=color(name, fams.get(name)),
                lw=1.6,
                label=f"{name} {sw.get('what', 'residual')}",
            )
        a.set_xlabel(sw.get("xlabel", "x"))
        a.set_ylabel(sw.get("ylabel", "residual"))
        a.axhline(0.0, color="0.6", lw=0.6)
        a.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def _curve_label(name: str, y: np.ndarray) -> str:
    return f"{name} (diverged)" if (~np.isfinite(y)).any() else name


_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">")


def _curves(ax, curves: Mapping[str, Any], families: Mapping[str, str]) -> None:
    """One line per curve; markers differ between curves (and later ones are drawn smaller) so that
    curves lying on top of each other stay visible."""
    for k, (name, c) in enumerate(curves.items()):
        if len(c) not in (2, 3):
            raise ValueError(f"curve {name!r} must be (x, mean) or (x, mean, std)")
        x, y = as_array(c[0], "x"), as_array(c[1], "mean")
        if x.shape != y.shape or x.ndim != 1:
            raise ValueError(f"curve {name!r}: x and mean must be 1-D of equal length, got {x.shape}, {y.shape}")
        col = color(name, families.get(name))
        y_plot = np.where(np.isfinite(y) & (y > 0), y, np.nan)
        ms = max(3.0, 7.0 - 0.8 * k)
        ax.plot(x, y_plot, _MARKERS[k % len(_MARKERS)] + "-", color=col, label=_curve_label(name, y), lw=1.6, ms=ms)
        if len(c) == 3 and c[2] is not None:
            s = as_array(c[2], "std")
            if s.shape != y.shape:
                raise ValueError(f"curve {name!r}: std must have the shape of mean {y.shape}, got {s.shape}")
            lo = np.where(np.isfinite(y - s) & (y - s > 0), y - s, y_plot * 0.5)
            hi = np.where(np.isfinite(y + s), y + s, np.nan)
            ax.fill_between(x, lo, hi, color=col, alpha=0.15, lw=0)


def error_vs_horizon(
    errors: Mapping[str, Any],
    *,
    ylabel: str = "rollout RMSE (normalised)",
    families: Mapping[str, str] | None = None,
    title: str | None = None,
    ax=None,
):
    """Open-loop rollout error against horizon, one line per model, log-scale error axis.

    Args:
        errors: model name -> ``(horizons [H] in steps, mean [H])`` or ``(horizons, mean, std)`` (the std is a
            shaded band, e.g. over seeds).
        ylabel: label of the error axis (with units).
        families: model name -> family (for colours).
        title: axes title.
        ax: draw into these axes (default: a new figure).

    Returns:
        the Figure.
    """
    return _log_curves(ax, errors, families, "horizon (steps)", ylabel, title, logx=False)


def data_efficiency(
    curves: Mapping[str, Any],
    *,
    ylabel: str = "100-step rollout RMSE (normalised)",
    families: Mapping[str, str] | None = None,
    title: str | None = None,
    ax=None,
):
    """Error against the number of training transitions, one line per model, log-log axes.

    Args:
        curves: model name -> ``(sizes [K], mean [K])`` or ``(sizes, mean, std)``.
        ylabel: label of the error axis.
        families: model name -> family (for colours).
        title: axes title.
        ax: draw into these axes (default: a new figure).

    Returns:
        the Figure.
    """
    return _log_curves(ax, curves, families, "training transitions", ylabel, title, logx=True)


def _log_curves(ax, curves, families, xlabel: str, ylabel: str, title: str | None, logx: bool):
    """Draw ``curves`` (see :func:`_curves`) on a log error axis with labels, grid and legend."""
    fig, ax = figure(ax)
    _curves(ax, curves, family_map(families))
    if logx:
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def energy(
    t: Any,
    true: Any,
    predictions: Mapping[str, Any],
    *,
    families: Mapping[str, str] | None = None,
    title: str | None = None,
    ax=None,
):
    """Mechanical energy over time of the true trajectory and of each model's prediction.

    Args:
        t: ``[T+1]`` times (s).
        true: ``[T+1]`` energy of the true states (J).
        predictions: model name -> ``[T+1]`` energy of its predicted states (J), e.g.
            ``CartPole(params).energy(rollout)``.
        families: model name -> family (for colours).
        title: axes title.
        ax: draw into these axes (default: a new figure).

    Returns:
        the Figure (the view is kept on the truth's range, widened moderately).
    """
    t, e = as_array(t, "t"), as_array(true, "true")
    if t.shape != e.shape or t.ndim != 1:
        raise ValueError(f"t and true must be 1-D of equal length, got {t.shape} and {e.shape}")
    fig, ax = figure(ax)
    ax.plot(t, e, "-", color=PALETTE["truth"], lw=2, label="truth")
    fams = family_map(families)
    for name, p in predictions.items():
        p = as_array(p, f"predictions[{name!r}]")
        if p.shape != t.shape:
            raise ValueError(f"predictions[{name!r}] has shape {p.shape}, expected {t.shape}")
        ax.plot(
            t,
            np.where(np.isfinite(p), p, np.nan),
            "--",
            color=color(name, fams.get(name)),
            lw=1.4,
            label=_curve_label(name, p),
        )
    lo, hi = float(np.min(e)), float(np.max(e))
    pad = max(hi - lo, 0.05 * max(abs(lo), abs(hi), 1e-3))
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mechanical energy (J)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return fig
