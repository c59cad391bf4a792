"""Uncertainty metrics of probabilistic predictions: Gaussian negative log-likelihood, interval coverage and
the calibration error, as pure functions of predicted means, variances and observed values."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .metrics import as_tensor, check_pair, check_scale

__all__ = ["DEFAULT_LEVELS", "gaussian_nll", "interval_coverage", "calibration_error"]

#: Central-interval probabilities at which ensembles' calibration is measured.
DEFAULT_LEVELS: tuple[float, ...] = (0.5, 0.9, 0.95)


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
