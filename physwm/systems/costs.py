"""Cost building blocks shared by the systems' control tasks."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["QuadraticCost"]


class QuadraticCost:
    """A quadratic cost ``x^T P x`` of states ``x [..., n] -> [...]`` (e.g. an LQR value function).

    Args:
        P: ``[n, n]`` symmetric positive semi-definite matrix.
        weight: factor in front.
    """

    def __init__(self, P: Any, weight: float = 1.0):
        P = torch.as_tensor(np.asarray(P, dtype=np.float64))
        if P.ndim != 2 or P.shape[0] != P.shape[1] or not torch.isfinite(P).all():
            raise ValueError(f"P must be a finite square matrix, got shape {tuple(P.shape)}")
        self.P = weight * (P + P.T) / 2
        self._cast: dict[tuple, torch.Tensor] = {}  # P in each (dtype, device) it has been used with

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = (x.dtype, x.device)
        P = self._cast.get(key)
        if P is None:
            P = self._cast[key] = self.P.to(dtype=x.dtype, device=x.device)
        if x.shape[-1] != P.shape[0]:
            raise ValueError(f"QuadraticCost expects states [..., {P.shape[0]}], got {tuple(x.shape)}")
        return ((x @ P) * x).sum(-1)

    def __repr__(self) -> str:
        return f"QuadraticCost(n={self.P.shape[0]})"
