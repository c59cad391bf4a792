"""Sparse regression of a target on candidate terms: STLSQ, a threshold chosen by held-out error, bootstrap.

Sequential thresholded least squares (STLSQ; Brunton, Proctor & Kutz 2016, "Discovering governing
equations from data by sparse identification of nonlinear dynamical systems") in torch, float64: solve the
least-squares problem, drop the terms whose contribution is below a threshold, solve again on the rest,
until the set of terms stops changing. The threshold is *relative*: a term is kept when its coefficient
times its root-mean-square value over the data is at least ``threshold`` times the target's root mean
square (its share of the target's size), so one threshold serves terms and rows of any units.

:func:`threshold_path` solves along a grid of thresholds and scores each on held-out samples;
:func:`select_threshold` takes the sparsest solution whose held-out error is within a tolerance of the
best; :func:`bootstrap` repeats the regression on resamples (ensemble-SINDy's "bragging", Fasel et al.
2022) for inclusion probabilities and coefficient intervals.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..checks import positive_int

__all__ = ["stlsq", "PathPoint", "threshold_path", "select_threshold", "bootstrap", "DEFAULT_THRESHOLDS"]

#: The grid of relative thresholds :func:`physwm.discover` searches by default (1e-4 ... 0.5).
DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(float(v) for v in torch.logspace(-4, -0.3, 22, dtype=torch.float64))


def _rms(v: torch.Tensor, dim: int = 0) -> torch.Tensor:
    return v.pow(2).mean(dim).sqrt()


def stlsq(
    theta: torch.Tensor, y: torch.Tensor, threshold: float, *, ridge: float = 1e-9, max_iter: int = 25
) -> torch.Tensor:
    """Sequential thresholded least squares of ``y [N]`` on the terms ``theta [N, K]``.

    Args:
        theta: candidate terms at ``N`` samples (float64 recommended).
        y: the target at the same samples.
        threshold: relative threshold (>= 0): a term is kept while ``|xi_k| rms(theta_k) >= threshold * rms(y)``.
        ridge: Tikhonov weight on the column-normalised problem (keeps nearly collinear terms solvable).
        max_iter: at most this many drop-and-refit rounds.

    Returns:
        Coefficients ``xi [K]`` (0 for dropped terms), in the units of ``y`` per unit of each term.
    """
    if theta.ndim != 2 or y.shape != theta.shape[:1]:
        raise ValueError(f"theta must be [N, K] and y [N], got {tuple(theta.shape)} and {tuple(y.shape)}")
    scale = _rms(theta).clamp_min(1e-300)
    a = theta / scale
    y_rms = float(_rms(y))
    k = theta.shape[1]
    xi = torch.zeros(k, dtype=theta.dtype, device=theta.device)
    if y_rms == 0.0:
        return xi
    active = torch.ones(k, dtype=torch.bool, device=theta.device)
    # the normal equations once ([K, K]); every round solves a sub-block of them
    gram = a.t() @ a + ridge * a.shape[0] * torch.eye(k, dtype=a.dtype, device=a.device)
    rhs = a.t() @ y
    for _ in range(max_iter):
        idx = torch.nonzero(active).flatten()
        if idx.numel() == 0:
            break
        sol = torch.linalg.solve(gram[idx][:, idx], rhs[idx])
        xi = torch.zeros_like(xi)
        xi[idx] = sol
        keep = active & (xi.abs() >= threshold * y_rms)
        if bool((keep == active).all()):
            break
        active = keep
        xi = xi * keep
    return xi * active / scale


@dataclass(frozen=True)
class PathPoint:
    """One threshold of a regularisation path: its solution and held-out error.

    Attributes:
        threshold: the relative threshold.
        coefficients: ``xi [K]`` fitted on the training samples.
        active: number of nonzero coefficients.
        heldout: held-out mean squared error relative to the target's mean square (0: exact, 1: no better
            than predicting 0).
    """

    threshold: float
    coefficients: torch.Tensor
    active: int
    heldout: float


def threshold_path(
    theta_train: torch.Tensor, y_train: torch.Tensor, theta_val: torch.Tensor, y_val: torch.Tensor,
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS,
) -> list[PathPoint]:  # fmt: skip
    """STLSQ at every threshold on the training samples, scored on the held-out ones (see :class:`PathPoint`)."""
    denom = float(y_val.pow(2).mean())
    out = []
    for t in thresholds:
        xi = stlsq(theta_train, y_train, float(t))
        err = float((y_val - theta_val @ xi).pow(2).mean())
        out.append(PathPoint(float(t), xi, int((xi != 0).sum()), err / denom if denom > 0 else 0.0))
    return out


def select_threshold(path: list[PathPoint], tolerance: float = 1e-4, relative: float = 0.1) -> PathPoint:
    """The sparsest point of ``path`` whose held-out error is at most ``(1 + relative) * best + tolerance``.

    Ties in the number of terms go to the lower held-out error. ``tolerance`` is in the units of
    :attr:`PathPoint.heldout` (1e-4: terms that together explain less than 1% of the target's RMS are not
    worth their place); ``relative`` allows for the noise of the held-out estimate.
    """
    if not path:
        raise ValueError("path is empty")
    best = min(p.heldout for p in path)
    allowed = [p for p in path if p.heldout <= (1.0 + relative) * best + tolerance]
    return min(allowed, key=lambda p: (p.active, p.heldout))


def bootstrap(
    theta: torch.Tensor, y: torch.Tensor, threshold: float, *, samples: int = 20, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """STLSQ at ``threshold`` on ``samples`` resamples (with replacement) of the ``N`` rows.

    Returns:
        ``(inclusion [K], coefficients [samples, K])``: the fraction of resamples that kept each term, and
        every resample's coefficients (0 where dropped), from which intervals are read.
    """
    samples = positive_int(samples, "samples")
    gen = torch.Generator().manual_seed(int(seed))
    n = theta.shape[0]
    coefs = []
    for _ in range(samples):
        idx = torch.randint(n, (n,), generator=gen).to(theta.device)
        coefs.append(stlsq(theta[idx], y[idx], threshold))
    c = torch.stack(coefs)
    return (c != 0).to(theta.dtype).mean(0), c
