"""Linearisation of a system about an operating point and the discrete-time LQR design on it.

The linearisation comes from the field itself by autograd (one source of truth for the equations); the
controller is designed for a zero-order-hold control over ``dt`` (exact discretisation by the matrix
exponential) with ``scipy.linalg.solve_discrete_are``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch

from .base import VectorField

__all__ = ["linearize", "discretize", "LQRDesign", "lqr"]


def linearize(field: VectorField, x0=None, u0=None) -> tuple[np.ndarray, np.ndarray]:
    """``A = df/dx [n, n]`` and ``B = df/du [n, m]`` at ``(x0, u0)`` (default: zeros), float64 numpy.

    The field is evaluated in float64 on a copy of its constants; its own parameters are not touched.
    """
    n, m = field.state_dim, field.control_dim
    x = torch.zeros(n, dtype=torch.float64) if x0 is None else torch.as_tensor(x0, dtype=torch.float64)
    u = torch.zeros(m, dtype=torch.float64) if u0 is None else torch.as_tensor(u0, dtype=torch.float64)
    if x.shape != (n,) or u.shape != (m,):
        raise ValueError(f"operating point must be x0 [{n}] and u0 [{m}], got {tuple(x.shape)}, {tuple(u.shape)}")
    with torch.enable_grad():
        A, B = torch.autograd.functional.jacobian(lambda a, b: field(a, b).to(torch.float64), (x, u))
    return A.detach().numpy(), B.detach().numpy()


def discretize(A: np.ndarray, B: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact zero-order-hold discretisation ``(Ad, Bd)`` of ``dx/dt = A x + B u`` over ``dt`` seconds."""
    n, m = B.shape
    M = np.zeros((n + m, n + m))
    M[:n, :n], M[:n, n:] = A, B
    E = scipy.linalg.expm(M * dt)
    return E[:n, :n], E[:n, n:]


@dataclass(frozen=True)
class LQRDesign:
    """A discrete LQR controller ``u = -K x`` and its ingredients (float64 numpy).

    Attributes:
        A, B: continuous-time linearisation; Ad, Bd: its zero-order-hold discretisation;
        P: solution of the discrete algebraic Riccati equation (cost-to-go ``x^T P x``); K: the gain ``[m, n]``.
    """

    A: np.ndarray
    B: np.ndarray
    Ad: np.ndarray
    Bd: np.ndarray
    P: np.ndarray
    K: np.ndarray


def lqr(field: VectorField, dt: float, Q: np.ndarray, R: np.ndarray, x0=None, u0=None) -> LQRDesign:
    """Design the discrete LQR of ``field`` linearised at ``(x0, u0)`` for a control held over ``dt`` s.

    Args:
        field: the system (a controlled field: ``control_dim >= 1``).
        dt: control period, s.
        Q: state cost ``[n, n]`` (symmetric positive semi-definite); R: control cost ``[m, m]`` (positive definite).
        x0, u0: operating point (default zeros: e.g. a pendulum upright at rest).
    """
    if field.control_dim < 1:
        raise ValueError(f"LQR needs a controlled system; {type(field).__name__} has no control input")
    A, B = linearize(field, x0, u0)
    Ad, Bd = discretize(A, B, dt)
    P = scipy.linalg.solve_discrete_are(Ad, Bd, Q, R)
    K = np.linalg.solve(R + Bd.T @ P @ Bd, Bd.T @ P @ Ad)
    return LQRDesign(A, B, Ad, Bd, P, K)
