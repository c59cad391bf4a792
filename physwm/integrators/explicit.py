"""Fixed-step explicit integrators: Euler, semi-implicit Euler, and Runge-Kutta methods from their tableaux.

A Runge-Kutta method is a :class:`ButcherTableau` plus its declared order; the tableau checks itself on
construction. Each stage is one multiply-add per non-zero coefficient, read from the tableau.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..systems.base import VectorField
from .base import Integrator

__all__ = ["Euler", "SemiImplicitEuler", "ButcherTableau", "RK4_TABLEAU", "ExplicitRK", "RK4", "ClassicRK4"]


class Euler(Integrator):
    """Forward (explicit) Euler, order 1: ``x + h f(x, u)``. Matches gymnasium's ``"euler"``."""

    order = 1

    def _step(self, field, x, u, h):
        return x + h * field(x, u)


class SemiImplicitEuler(Integrator):
    """Semi-implicit (symplectic) Euler, order 1, exactly gymnasium's ``"semi-implicit euler"`` variant.

    Velocities are updated first with the accelerations at ``x``; positions are then updated with the
    *new* velocities. The field must declare ``position_index`` and ``velocity_index``
    (:meth:`check_field` says so before a rollout starts). A field's ``constrain`` projection is applied to
    the state with the new velocities before they move the positions (a speed limit acts on the step it
    limits, as in gymnasium's Pendulum-v1), and after the step like every integrator.
    """

    order = 1

    def check_field(self, field: VectorField) -> None:
        """ValueError unless ``field`` declares matching ``position_index`` and ``velocity_index``."""
        pos, vel = getattr(field, "position_index", None), getattr(field, "velocity_index", None)
        if pos is None or vel is None or len(pos) != len(vel):
            raise ValueError(
                f"SemiImplicitEuler needs a field that declares position_index and velocity_index; "
                f"{type(field).__name__} does not (use Euler, RK4 or Adaptive instead)"
            )

    def _step(self, field, x, u, h):
        pos, vel = field.position_index, field.velocity_index
        dxdt = field(x, u)
        new = x.clone()
        pos_t = torch.as_tensor(pos, device=x.device)
        vel_t = torch.as_tensor(vel, device=x.device)
        new_vel = x.index_select(-1, vel_t) + h * dxdt.index_select(-1, vel_t)
        new = new.index_copy(-1, vel_t, new_vel)
        constrain = getattr(field, "constrain", None)
        if constrain is not None:
            new = constrain(new)
            new_vel = new.index_select(-1, vel_t)
        new = new.index_copy(-1, pos_t, x.index_select(-1, pos_t) + h * new_vel)
        other = sorted(set(range(x.shape[-1])) - set(pos) - set(vel))
        if other:  # entries that are neither: plain Euler
            o = torch.as_tensor(other, device=x.device)
            new = new.index_copy(-1, o, x.index_select(-1, o) + h * dxdt.index_select(-1, o))
        return new


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge-Kutta method: nodes ``c``, matrix ``a`` (strictly lower triangular), weights ``b``.

    Checks itself on construction: ``sum(b) = 1`` and ``c_i = sum_j a_ij`` (row-sum condition).
    """

    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    order: int

    def __post_init__(self) -> None:
        s = len(self.b)
        if len(self.c) != s or len(self.a) != s:
            raise ValueError("Butcher tableau: c, a and b must have the same number of stages")
        for i, row in enumerate(self.a):
            if len(row) != i:
                raise ValueError(f"Butcher tableau: row {i} of a must have {i} entries (explicit method)")
            if abs(sum(row) - self.c[i]) > 1e-12:
                raise ValueError(f"Butcher tableau: c[{i}] != sum(a[{i}])")
        if abs(sum(self.b) - 1.0) > 1e-12:
            raise ValueError("Butcher tableau: weights b must sum to 1")
        if self.order < 1:
            raise ValueError("Butcher tableau: order must be >= 1")


RK4_TABLEAU = ButcherTableau(
    c=(0.0, 0.5, 0.5, 1.0),
    a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
    b=(1 / 6, 1 / 3, 1 / 3, 1 / 6),
    order=4,
)


class ExplicitRK(Integrator):
    """Any explicit Runge-Kutta method given by its :class:`ButcherTableau`."""

    def __init__(self, tableau: ButcherTableau, substeps: int = 1):
        super().__init__(substeps)
        self.tableau = tableau
        self.order = tableau.order

    def _step(self, field, x, u, h):
        tab = self.tableau
        ks: list[torch.Tensor] = []
        for row in tab.a:
            xi = x
            for aij, kj in zip(row, ks):
                if aij != 0.0:  # one multiply-add per non-zero entry, no temporary for (h a_ij) k_j
                    xi = torch.add(xi, kj, alpha=h * aij)
            ks.append(field(xi, u))
        out = x
        for bi, ki in zip(tab.b, ks):
            if bi != 0.0:
                out = torch.add(out, ki, alpha=h * bi)
        return out


class RK4(ExplicitRK):
    """The classical fourth-order Runge-Kutta method (order 4)."""

    def __init__(self, substeps: int = 1):
        super().__init__(RK4_TABLEAU, substeps)

    def __repr__(self) -> str:
        return f"RK4(substeps={self.substeps})"


class ClassicRK4(Integrator):
    """The classical RK4 method in its textbook form, ``x + h/6 (k1 + 2 k2 + 2 k3 + k4)`` (order 4).

    The same method as :class:`RK4`, rounded as textbook implementations (gymnasium's ``rk4`` among them)
    round it: each stage is ``x + (h/2) k`` and the weights are applied to the sum of the stages. An environment
    written that way (Acrobot-v1) is reproduced bit for bit, which matters on chaotic trajectories where
    last-bit differences grow by orders of magnitude within a few hundred steps. :class:`RK4` is faster.
    """

    order = 4

    def _step(self, field, x, u, h):
        h2 = h / 2.0
        k1 = field(x, u)
        k2 = field(x + h2 * k1, u)
        k3 = field(x + h2 * k2, u)
        k4 = field(x + h * k3, u)
        return x + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)

    def __repr__(self) -> str:
        return f"ClassicRK4(substeps={self.substeps})"
