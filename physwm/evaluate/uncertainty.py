"""Uncertainty metrics of probabilistic predictions: Gaussian negative log-likelihood, interval coverage, the
calibration error, sharpness and the continuous ranked probability score (CRPS), as pure functions of
predicted means, variances (or samples) and observed values."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .metrics import as_tensor, check_pair, check_scale

__all__ = [
    "DEFAULT_LEVELS",
    "RELIABILITY_LEVELS",
    "gaussian_nll",
    "interval_coverage",
    "calibration_error",
    "sharpness",
    "gaussian_crps",
    "ensemble_crps",
]

#: Central-interval probabilities at which ensembles' calibration is measured.
DEFAULT_LEVELS: tuple[float, ...] = (0.5, 0.9, 0.95)
#: The levels of a reliability diagram: 0.1, 0.2, ..., 0.9 and 0.95.
RELIABILITY_LEVELS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def gaussian_nll(mean: torch.Tensor, var: torch.Tensor, target: torch.Tensor, scale: Any = None) -> torch.Tensor:
    r"""Mean Gaussian negative log-likelihood per element (nats), optionally in normalised units.

    ``NLL = mean(0.5 * (log(2 pi var) + (target - mean)^2 / var))`` with ``mean``, ``var`` and
    ``target`` divided by ``scale`` (``var`` by ``scale^2``) first when a scale is given, so that
    dimensions of different units weigh alike.

    Args:
        mean, var, target: ``[..., n]`` predictive mean, predictive variance (> 0) and observed values.
        scale: ``None`` or ``[n]``.

    Returns:
        float64 scalar (``inf`` if any mean/var is non-finite).
    """
    mean, target = check_pair(mean, target)
    var = as_tensor(var, "var").to(torch.float64)
    if var.shape != mean.shape:
        raise ValueError(f"var must have the shape of mean {tuple(mean.shape)}, got {tuple(var.shape)}")
    if (var[torch.isfinite(var)] <= 0).any():
        raise ValueError("var must be positive")
    if scale is not None:
        s = check_scale(scale, mean.shape[-1])
        mean, target, var = mean / s, target / s, var / s**2
    nll = 0.5 * (torch.log(2 * math.pi * var) + (target - mean).pow(2) / var)
    nll = torch.where(torch.isfinite(nll), nll, torch.full_like(nll, math.inf))
    return nll.mean()


def interval_coverage(
    mean: torch.Tensor, var: torch.Tensor, target: torch.Tensor, levels: Sequence[float] = DEFAULT_LEVELS
) -> dict[float, float]:
    r"""Fraction of observed values inside the predicted central Gaussian intervals.

    For each level ``p``, the interval is ``mean +- z_p sqrt(var)`` with ``z_p = Phi^{-1}((1 + p) / 2)``;
    a calibrated model has coverage ``p``. Computed over every element (all windows and dimensions).

    Args:
        mean, var, target: ``[..., n]``.
        levels: probabilities in (0, 1).

    Returns:
        level -> observed coverage in [0, 1].
    """
    mean, target = check_pair(mean, target)
    var = as_tensor(var, "var").to(torch.float64)
    if var.shape != mean.shape:
        raise ValueError(f"var must have the shape of mean {tuple(mean.shape)}, got {tuple(var.shape)}")
    z = ((target - mean).abs() / var.sqrt()).reshape(-1)
    out = {}
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    for p in levels:
        if not 0 < float(p) < 1:
            raise ValueError(f"levels must be in (0, 1), got {p}")
        zp = normal.icdf(torch.tensor((1 + float(p)) / 2, dtype=torch.float64))
        inside = z <= zp  # NaN -> outside
        out[float(p)] = float(inside.double().mean())
    return out


def calibration_error(coverage: Mapping[float, float]) -> float:
    """Mean absolute difference between observed coverage and nominal level (0 = perfectly calibrated)."""
    if not coverage:
        raise ValueError("coverage must not be empty")
    return float(sum(abs(c - p) for p, c in coverage.items()) / len(coverage))


def sharpness(var: torch.Tensor, scale: Any = None) -> float:
    """Sharpness: the root mean predictive variance ``sqrt(mean(var))``, in units of ``scale [n]`` if given
    (smaller is sharper; only meaningful next to a calibration measure).

    Args:
        var: ``[..., n]`` predictive variances (>= 0).
    """
    var = as_tensor(var, "var").to(torch.float64)
    if (var[torch.isfinite(var)] < 0).any():
        raise ValueError("var must be non-negative")
    if scale is not None:
        var = var / check_scale(scale, var.shape[-1]) ** 2
    return float(var.mean().sqrt())


def gaussian_crps(mean: torch.Tensor, var: torch.Tensor, target: torch.Tensor, scale: Any = None) -> float:
    r"""Mean continuous ranked probability score of Gaussian predictions (closed form, Gneiting et al. 2005).

    ``CRPS(N(mu, s^2), y) = s * (z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi))`` with ``z = (y - mu) / s``:
    the integral of ``(F(x) - 1[x >= y])^2`` over ``x``, in the target's units (divided by ``scale`` first
    if given); it rewards calibration and sharpness at once, and is the absolute error for ``s = 0``.

    Args:
        mean, var, target: ``[..., n]``.
        scale: ``None`` or ``[n]``.
    """
    mean, target = check_pair(mean, target)
    var = as_tensor(var, "var").to(torch.float64)
    if var.shape != mean.shape:
        raise ValueError(f"var must have the shape of mean {tuple(mean.shape)}, got {tuple(var.shape)}")
    if (var[torch.isfinite(var)] < 0).any():
        raise ValueError("var must be non-negative")
    if scale is not None:
        s = check_scale(scale, mean.shape[-1])
        mean, target, var = mean / s, target / s, var / s**2
    sd = var.sqrt()
    err = target - mean
    z = err / sd.clamp_min(torch.finfo(torch.float64).tiny)
    cdf = 0.5 * (1 + torch.erf(z / math.sqrt(2)))
    pdf = torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    crps = torch.where(sd > 0, sd * (z * (2 * cdf - 1) + 2 * pdf - 1 / math.sqrt(math.pi)), err.abs())
    crps = torch.where(torch.isfinite(crps), crps, torch.full_like(crps, math.inf))
    return float(crps.mean())


def ensemble_crps(samples: torch.Tensor, target: torch.Tensor, scale: Any = None) -> float:
    r"""Mean CRPS of the empirical distribution of samples: ``E|X - y| - E|X - X'| / 2`` (the energy form).

    Args:
        samples: ``[S, ..., n]`` samples (ensemble members, particles); target: ``[..., n]``.
        scale: ``None`` or ``[n]``.
    """
    samples = as_tensor(samples, "samples").to(torch.float64)
    target = as_tensor(target, "target").to(torch.float64)
    if samples.shape[1:] != target.shape:
        raise ValueError(f"samples [S, ...] must match target {tuple(target.shape)}, got {tuple(samples.shape)}")
    if scale is not None:
        s = check_scale(scale, target.shape[-1])
        samples, target = samples / s, target / s
    first = (samples - target).abs().mean(0)
    second = (samples[:, None] - samples[None, :]).abs().mean((0, 1))
    crps = first - 0.5 * second
    crps = torch.where(torch.isfinite(crps), crps, torch.full_like(crps, math.inf))
    return float(crps.mean())
