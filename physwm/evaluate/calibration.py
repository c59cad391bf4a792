"""Uncertainty along the rollout horizon: trajectory sampling, calibration per horizon, recalibration.

An ensemble's one-step spread says little about how far its open-loop predictions can be trusted 50 steps
ahead. :func:`trajectory_samples` propagates it as PETS does (trajectory sampling, TS-infinity: particle
``k`` follows member ``k mod E`` for the whole horizon, drawing from that member's own Gaussian at every
step), :func:`rollout_calibration` scores the particles' mean and variance at chosen horizons with the
metrics of :mod:`.uncertainty` (NLL, coverage, calibration error, sharpness, CRPS), and :class:`Recalibration`
fixes a miscalibrated spread: one factor per horizon step, fitted on validation rollouts so that the central
intervals cover what they claim (the factor minimising the calibration error over
:data:`~physwm.evaluate.uncertainty.RELIABILITY_LEVELS`), applied at prediction time
(``rollout_calibration(..., recalibration=...)``, or :meth:`Recalibration.inflate` on any particles: each
particle spread about the particles' mean by the factor of its step).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..checks import module_dtype_device, positive_int
from .metrics import state_scale
from .model import eval_windows
from .uncertainty import (
    DEFAULT_LEVELS,
    RELIABILITY_LEVELS,
    calibration_error,
    gaussian_crps,
    gaussian_nll,
    interval_coverage,
    sharpness,
)

__all__ = ["trajectory_samples", "rollout_calibration", "Recalibration", "RECALIBRATION_GRID"]

#: Candidate spread factors of :meth:`Recalibration.fit` (log-spaced, 0.05 to 50).
RECALIBRATION_GRID = np.exp(np.linspace(math.log(0.05), math.log(50.0), 241))


def _members(model: Any) -> list:
    members = getattr(model, "members", None)
    if members is not None and len(members):
        return list(members)
    if hasattr(model, "predict"):
        return [model]
    raise TypeError(f"{type(model).__name__} has neither members nor predict: no predictive distribution")


@torch.no_grad()
def trajectory_samples(
    model: Any, x0: torch.Tensor, u: torch.Tensor, particles: int | None = None, seed: int = 0, sample: bool = True
) -> torch.Tensor:
    """Open-loop particles of a probabilistic model by trajectory sampling (TS-infinity).

    Args:
        model: an ensemble (``.members``, each with ``predict(x, u) -> (mean, std)``) or one probabilistic model.
        x0: ``[B, n]``; u: ``[B, T, m]`` (the model's dtype).
        particles: K particles per start (default: the number of members; at least 1); particle ``k`` is
            propagated by member ``k mod E``.
        seed: seed of the members' Gaussian draws.
        sample: draw from each member's Gaussian at every step (``False``: its mean; deterministic members'
            ``std`` is zero anyway).

    Returns:
        ``[K, B, T+1, n]`` (the first entry is ``x0``).
    """
    members = _members(model)
    E = len(members)
    K = E if particles is None else positive_int(particles, "particles")
    B, T = u.shape[0], u.shape[1]
    gen = torch.Generator(device=x0.device).manual_seed(int(seed))
    out = x0.new_empty((K, B, T + 1, x0.shape[-1]))
    out[:, :, 0] = x0
    was = [m.training for m in members]
    for m in members:
        m.eval()
    try:
        for e, member in enumerate(members):
            ks = torch.arange(e, K, E)
            if ks.numel() == 0:
                continue
            x = x0.repeat(ks.numel(), 1)
            ue = u.repeat(ks.numel(), 1, 1)
            for t in range(T):
                mean, std = member.predict(x, ue[:, t])
                if sample:
                    eps = torch.randn(mean.shape, generator=gen, dtype=mean.dtype, device=mean.device)
                    mean = mean + std * eps
                x = mean
                out[ks, :, t + 1] = x.reshape(ks.numel(), B, -1)
    finally:
        for m, w in zip(members, was):
            m.train(w)
    return out


def _moments(samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return samples.mean(0), samples.var(0, unbiased=False).clamp_min(torch.finfo(samples.dtype).tiny)


@dataclass(frozen=True)
class Recalibration:
    """Per-horizon spread factors: the predictive std ``h`` steps ahead is multiplied by ``factors[h - 1]``
    (beyond the last, by the last).

    Attributes:
        factors: one positive factor per horizon step 1..H.
    """

    factors: tuple[float, ...]

    def __post_init__(self) -> None:
        f = np.asarray(self.factors, dtype=np.float64)
        if f.ndim != 1 or f.size < 1 or not np.isfinite(f).all() or (f <= 0).any():
            raise ValueError(f"factors must be positive finite numbers, one per horizon step, got {self.factors!r}")

    def factor(self, steps: int) -> torch.Tensor:
        """Factors ``[steps + 1]`` for horizons 0..steps (1 at horizon 0: the start is known)."""
        f = np.asarray(self.factors, dtype=np.float64)
        idx = np.minimum(np.arange(steps), f.size - 1)
        return torch.from_numpy(np.concatenate([[1.0], f[idx]]))

    def inflate(self, samples: torch.Tensor, time_dim: int = -2) -> torch.Tensor:
        """Particles ``[K, ..., T+1, ..., n]`` spread about their mean (over dim 0) by each step's factor."""
        steps = samples.shape[time_dim] - 1
        shape = [1] * samples.ndim
        shape[time_dim] = steps + 1
        f = self.factor(steps).to(dtype=samples.dtype, device=samples.device).reshape(shape)
        mean = samples.mean(0, keepdim=True)
        return mean + (samples - mean) * f

    @classmethod
    def fit(
        cls, model: Any, data: Any, horizon: int, *, particles: int | None = None,
        levels: Sequence[float] = RELIABILITY_LEVELS, max_windows: int | None = 256, seed: int = 0,
    ) -> Recalibration:  # fmt: skip
        """Fit one factor per horizon step on validation data (held out from training).

        For each step, the factor (of :data:`RECALIBRATION_GRID`) whose scaled intervals have the smallest
        calibration error over ``levels``, all dimensions pooled.
        """
        H = positive_int(horizon, "horizon")
        samples, target, _ = _rollout(model, data, H, particles, max_windows, seed)
        mean, var = _moments(samples)
        z = ((target - mean).abs() / var.sqrt())[:, 1:].transpose(0, 1).reshape(H, -1)  # [H, B * n]
        normal = torch.distributions.Normal(0.0, 1.0)
        zp = np.array([float(normal.icdf(torch.tensor((1 + p) / 2))) for p in levels])
        lv = np.asarray(levels, dtype=np.float64)
        factors = []
        for h in range(H):
            zh = np.sort(z[h].numpy())
            # coverage of level p with factor f: fraction of |z| <= f * z_p
            cov = np.searchsorted(zh, RECALIBRATION_GRID[:, None] * zp[None, :], side="right") / zh.size
            factors.append(float(RECALIBRATION_GRID[np.argmin(np.abs(cov - lv).mean(1))]))
        return cls(tuple(factors))

    def to_dict(self) -> dict[str, Any]:
        return {"factors": list(self.factors)}

    @classmethod
    def from_dict(cls, d: dict) -> Recalibration:
        return cls(tuple(float(v) for v in d["factors"]))


def _rollout(model, data, H, particles, max_windows, seed):
    w = eval_windows(data, H, max_windows=max_windows, seed=seed)
    dtype, device = module_dtype_device(model)
    x0 = w["states"][:, 0].to(dtype=dtype, device=device)
    u = w["controls"].to(dtype=dtype, device=device)
    samples = trajectory_samples(model, x0, u, particles=particles, seed=seed).cpu().double()
    return samples, w["states"].double(), w


@torch.no_grad()
def rollout_calibration(
    model: Any,
    data: Any,
    horizons: Sequence[int] = (1, 10, 50),
    *,
    levels: Sequence[float] = DEFAULT_LEVELS,
    particles: int | None = None,
    recalibration: Recalibration | None = None,
    scale: Any = None,
    max_windows: int | None = 256,
    seed: int = 0,
) -> dict[int, dict[str, Any]]:
    """Calibration of a probabilistic model's open-loop predictions at several horizons.

    Args:
        model: an ensemble or probabilistic model (see :func:`trajectory_samples`).
        data: Trajectories or a batch dict: windows of ``max(horizons)`` steps are cut from it, the model
            rolled out from each window's first state with its controls and scored against its states.
        horizons: steps ahead to score.
        levels: central-interval probabilities of the coverage and calibration error.
        particles: particles per window (default: the number of members).
        recalibration: spread factors applied to the particles before scoring (``None``: as predicted).
        scale: ``[n]`` units of the NLL, sharpness and CRPS (default: the evaluated states' spread).
        max_windows, seed: at most this many windows (drawn with ``seed``, which also seeds the draws).

    Returns:
        ``{h: {"nll", "crps", "sharpness", "coverage@p"..., "calibration_error", "reliability": {level:
        coverage over RELIABILITY_LEVELS}}}``.
    """
    hs = [positive_int(h, "horizon") for h in horizons]
    samples, target, w = _rollout(model, data, max(hs), particles, max_windows, seed)
    if recalibration is not None:
        samples = recalibration.inflate(samples)
    mean, var = _moments(samples)
    if scale is None:
        scale = state_scale(w["states"])
    out: dict[int, dict[str, Any]] = {}
    for h in hs:
        m, v, y = mean[:, h], var[:, h], target[:, h]
        cov = interval_coverage(m, v, y, levels)
        row: dict[str, Any] = {"nll": float(gaussian_nll(m, v, y, scale)), "crps": gaussian_crps(m, v, y, scale),
                               "sharpness": sharpness(v, scale)}  # fmt: skip
        row.update({f"coverage@{p:g}": c for p, c in cov.items()})
        row["calibration_error"] = calibration_error(cov)
        row["reliability"] = interval_coverage(m, v, y, RELIABILITY_LEVELS)
        out[h] = row
    return out
