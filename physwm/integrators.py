"""One integrator interface for every time stepper.

The field says *what* is integrated (a :class:`~physwm.systems.VectorField`), the integrator *how* one
step is taken. Every integrator has

* ``step(field, x, u, dt) -> x_next``: one control period ``dt`` (s) with the control ``u`` held
  constant (zero-order hold); ``x [..., n]``, ``u [..., m]``;
* ``rollout(field, x0, u, dt) -> states [B, T+1, n]`` for ``x0 [B, n]`` and ``u [B, T, m]``, the first
  entry being ``x0``.

Fixed-step integrators take ``substeps`` equal sub-steps inside each control period. ``Adaptive`` wraps
torchdiffeq's solvers (dopri5 and friends), optionally with the adjoint method; the control is held
constant inside each period there too: each period is solved as its own initial-value problem, so the
solver never steps across a jump of the control.

Rollouts of fixed-step integrators let the field specialise itself to the whole control sequence first:
a field may define ``bind_controls(u [B, T, m]) -> f(x [B, n], t: int) -> dx/dt [B, n]``, which must give
``field(x, u[:, t])`` up to round-off while precomputing, once per rollout, whatever depends only on the
controls and the parameters (a :class:`~physwm.models.NeuralField` folds its normalisation into its
first and last layers and computes its first layer's control term for all ``T`` periods in one matrix
product). The controls are handed to it in the state's dtype; its input checks are done once, by
``rollout``. Fields without it are called as ``field(x, u[:, t])``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .systems.base import VectorField, check_state_control

__all__ = [
    "Integrator",
    "ButcherTableau",
    "Euler",
    "SemiImplicitEuler",
    "RK4",
    "ExplicitRK",
    "Adaptive",
    "get_integrator",
    "INTEGRATORS",
    "ADAPTIVE_METHODS",
]


def _check_dt(dt: float) -> float:
    if isinstance(dt, torch.Tensor):
        dt = float(dt)
    if not isinstance(dt, (int, float)) or isinstance(dt, bool):
        raise TypeError(f"dt must be a number of seconds, got {type(dt).__name__}")
    if not math.isfinite(dt) or dt <= 0:
        raise ValueError(f"dt must be a positive, finite number of seconds, got {dt}")
    return float(dt)


def _check_rollout_args(field: VectorField, x0: torch.Tensor, u: torch.Tensor) -> None:
    if x0.ndim != 2 or x0.shape[-1] != field.state_dim:
        raise ValueError(f"x0 must have shape [B, {field.state_dim}], got {tuple(x0.shape)}")
    if u.ndim != 3 or u.shape[-1] != field.control_dim or u.shape[0] != x0.shape[0]:
        raise ValueError(
            f"u must have shape [B={x0.shape[0]}, T, {field.control_dim}], got {tuple(u.shape)}"
        )
    if not torch.isfinite(x0).all():
        raise ValueError("x0 contains NaN or inf")
    if not torch.isfinite(u).all():
        raise ValueError("u contains NaN or inf")


class _BoundField:
    """A field bound to a rollout's controls, seen by ``_step`` as a field of period ``t``.

    ``f(x, u)`` returns ``fn(x, t)``: the ``u`` passed (the period's control, ``u[:, t]``) is already in
    ``fn``. Carries the field's sizes and position/velocity indices (semi-implicit Euler needs them).
    """

    __slots__ = ("fn", "t", "state_dim", "control_dim", "position_index", "velocity_index")

    def __init__(self, field: VectorField, fn):
        self.fn, self.t = fn, 0
        self.state_dim, self.control_dim = field.state_dim, field.control_dim
        self.position_index = getattr(field, "position_index", None)
        self.velocity_index = getattr(field, "velocity_index", None)

    def __call__(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self.fn(x, self.t)


class Integrator:
    """Base class: subclasses implement ``_step(field, x, u, h)`` for one step of size ``h``."""

    substeps: int = 1

    def __init__(self, substeps: int = 1):
        if not isinstance(substeps, int) or isinstance(substeps, bool) or substeps < 1:
            raise ValueError(f"substeps must be a positive integer, got {substeps!r}")
        self.substeps = substeps

    def _step(self, field: VectorField, x: torch.Tensor, u: torch.Tensor, h: float) -> torch.Tensor:
        raise NotImplementedError

    def step(self, field: VectorField, x: torch.Tensor, u: torch.Tensor, dt: float) -> torch.Tensor:
        """Advance ``x [..., n]`` by one control period ``dt`` (s) under the held control ``u [..., m]``."""
        dt = _check_dt(dt)
        check_state_control(x, u, field.state_dim, field.control_dim)
        return self._advance(field, x, u, dt)

    def _advance(self, field: VectorField, x: torch.Tensor, u: torch.Tensor, dt: float) -> torch.Tensor:
        h = dt / self.substeps
        for _ in range(self.substeps):
            x = self._step(field, x, u, h)
        return x

    # Fixed-step integrators only call ``field(x, u)`` with the period's control, so a rollout may hand
    # them the field bound to the whole control sequence (see the module docstring).
    _binds_controls = True

    def rollout(self, field: VectorField, x0: torch.Tensor, u: torch.Tensor, dt: float) -> torch.Tensor:
        """Open-loop rollout: ``x0 [B, n]``, ``u [B, T, m]`` -> ``states [B, T+1, n]`` (first is ``x0``)."""
        dt = _check_dt(dt)
        _check_rollout_args(field, x0, u)
        bind = getattr(field, "bind_controls", None) if self._binds_controls else None
        f = field if bind is None else _BoundField(field, bind(u.to(x0.dtype)))
        states = [x0]
        x = x0
        for t in range(u.shape[1]):
            if bind is not None:
                f.t = t
            x = self._advance(f, x, u[:, t], dt)
            states.append(x)
        return torch.stack(states, dim=1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(substeps={self.substeps})"


class Euler(Integrator):
    """Forward (explicit) Euler, order 1: ``x + h f(x, u)``. Matches gymnasium's ``"euler"``."""

    order = 1

    def _step(self, field, x, u, h):
        return x + h * field(x, u)


class SemiImplicitEuler(Integrator):
    """Semi-implicit (symplectic) Euler, order 1, exactly gymnasium's ``"semi-implicit euler"`` variant.

    Velocities are updated first with the accelerations at ``x``; positions are then updated with the
    *new* velocities. The field must declare ``position_index`` and ``velocity_index``.
    """

    order = 1

    def _step(self, field, x, u, h):
        pos, vel = getattr(field, "position_index", None), getattr(field, "velocity_index", None)
        if pos is None or vel is None or len(pos) != len(vel):
            raise ValueError(
                f"SemiImplicitEuler needs a field that declares position_index and velocity_index; "
                f"{type(field).__name__} does not (use Euler, RK4 or Adaptive instead)"
            )
        dxdt = field(x, u)
        new = x.clone()
        pos_t = torch.as_tensor(pos, device=x.device)
        vel_t = torch.as_tensor(vel, device=x.device)
        new_vel = x.index_select(-1, vel_t) + h * dxdt.index_select(-1, vel_t)
        new = new.index_copy(-1, vel_t, new_vel)
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


ADAPTIVE_METHODS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")


class _AugmentedField(torch.nn.Module):
    """torchdiffeq's ``func(t, y)`` view of a field over ``y = [x, u]`` with ``du/dt = 0``.

    Carrying the held control in the state lets the adjoint method return its gradient like any other
    part of the initial condition, with no special cases.
    """

    def __init__(self, field: VectorField, n: int):
        super().__init__()
        self.field = field
        self.n = n

    def forward(self, t, y):
        x, u = y[..., : self.n], y[..., self.n :]
        return torch.cat((self.field(x, u), torch.zeros_like(u)), dim=-1)


class Adaptive(Integrator):
    """Adaptive-step solvers of torchdiffeq (``dopri5`` by default) over each control period.

    Args:
        method: one of ``ADAPTIVE_METHODS``.
        rtol, atol: the solver's relative and absolute tolerances.
        adjoint: back-propagate with the adjoint method (``torchdiffeq.odeint_adjoint``): memory
            constant in the number of solver steps, at the price of a backward solve. The control and
            the field's parameters get gradients either way.
    """

    _binds_controls = False  # torchdiffeq needs the field itself (an nn.Module: the adjoint's parameters)

    def __init__(self, method: str = "dopri5", rtol: float = 1e-7, atol: float = 1e-9, adjoint: bool = False):
        super().__init__(1)
        if method not in ADAPTIVE_METHODS:
            raise ValueError(f"unknown adaptive method {method!r}; valid: {list(ADAPTIVE_METHODS)}")
        if not (rtol > 0 and atol > 0):
            raise ValueError(f"rtol and atol must be > 0, got rtol={rtol}, atol={atol}")
        self.method, self.rtol, self.atol, self.adjoint = method, float(rtol), float(atol), bool(adjoint)

    def _advance(self, field, x, u, dt):
        import torchdiffeq

        func = _AugmentedField(field, x.shape[-1])
        y0 = torch.cat((x, u.to(x.dtype)), dim=-1)
        t = torch.tensor([0.0, dt], dtype=x.dtype, device=x.device)
        if self.adjoint:
            params = tuple(p for p in field.parameters() if p.requires_grad)
            out = torchdiffeq.odeint_adjoint(
                func, y0, t, rtol=self.rtol, atol=self.atol, method=self.method, adjoint_params=params
            )
        else:
            out = torchdiffeq.odeint(func, y0, t, rtol=self.rtol, atol=self.atol, method=self.method)
        return out[-1][..., : x.shape[-1]]

    def __repr__(self) -> str:
        return f"Adaptive(method={self.method!r}, rtol={self.rtol}, atol={self.atol}, adjoint={self.adjoint})"


INTEGRATORS = {
    "euler": Euler,
    "semi_implicit_euler": SemiImplicitEuler,
    "rk4": RK4,
    "dopri5": Adaptive,
}


def get_integrator(name: str, substeps: int = 1, **options) -> Integrator:
    """Build an integrator by name (``euler``, ``semi_implicit_euler``, ``rk4`` or an adaptive method).

    An unknown name is a ValueError listing the valid ones.
    """
    if isinstance(name, Integrator):
        return name
    key = str(name).lower().replace("-", "_").replace(" ", "_")
    if key in ("euler", "semi_implicit_euler", "rk4"):
        return INTEGRATORS[key](substeps=substeps)
    if key in ADAPTIVE_METHODS:
        if substeps != 1:
            raise ValueError("adaptive integrators choose their own steps; substeps must be 1")
        return Adaptive(method=key, **options)
    valid = ["euler", "semi_implicit_euler", "rk4", *ADAPTIVE_METHODS]
    raise ValueError(f"unknown integrator {name!r}; valid: {valid}")

