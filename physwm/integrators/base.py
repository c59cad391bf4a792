"""The Integrator interface: one control period at a time, with the control held (zero-order hold).

The field says *what* is integrated (a :class:`~physwm.systems.VectorField`), the integrator *how* one
step is taken. Every integrator has

* ``step(field, x, u, dt) -> x_next``: one control period ``dt`` (s) with the control ``u`` held
  constant (zero-order hold); ``x [..., n]``, ``u [..., m]``;
* ``rollout(field, x0, u, dt) -> states [B, T+1, n]`` for ``x0 [B, n]`` and ``u [B, T, m]``, the first
  entry being ``x0``;
* ``advance(field, x, u, dt)``: the step without the input checks (what rollouts and compiled rollouts
  call in their loops).

Fixed-step integrators take ``substeps`` equal sub-steps inside each control period.

Rollouts of fixed-step integrators let the field specialise itself to the whole control sequence first:
a field may define ``bind_controls(u [B, T, m]) -> f(x [B, n], t: int) -> dx/dt [B, n]``, which must give
``field(x, u[:, t])`` up to round-off while precomputing, once per rollout, whatever depends only on the
controls and the parameters (a :class:`~physwm.models.NeuralField` folds its normalisation into its
first and last layers and computes its first layer's control term for all ``T`` periods in one matrix
product). The controls are handed to it in the state's dtype; its input checks are done once, by
``rollout``. Fields without it are called as ``field(x, u[:, t])``.

A field with a ``constrain`` projection (see :class:`~physwm.systems.VectorField`: a speed limit, wrapped
angles) has it applied after every (sub-)step.
"""

from __future__ import annotations

import warnings

import torch

from ..checks import check_dt, positive_int
from ..systems.base import VectorField, check_state_control
from ..systems.learnable import transforms_active

__all__ = ["Integrator", "BoundField", "bind_field", "check_rollout_args", "all_finite", "DivergenceWarning",
           "report_divergence"]


def all_finite(t: torch.Tensor) -> bool:
    """Whether every entry of ``t`` is finite. A NaN or inf entry makes the sum NaN or inf, so a finite sum
    proves every entry finite (one fast reduction); only a non-finite sum (possibly an overflow) needs the
    entry-wise check."""
    if not t.is_floating_point() or transforms_active():
        return True  # inside a torch.func transform (vmap) a value cannot steer control flow: not checked
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


class DivergenceWarning(RuntimeWarning):
    """A rollout's prediction became NaN or inf (the values are kept, so metrics can score the divergence)."""


def report_divergence(states: torch.Tensor, owner: str) -> None:
    """Warn (:class:`DivergenceWarning`) if ``states [B, T+1, n]`` hold NaN/inf, naming the first step where a
    trajectory diverged and how many did."""
    if all_finite(states):
        return
    bad = ~torch.isfinite(states).all(-1)  # [B, T+1]
    rows = bad.any(1)
    first = int(bad[rows].float().argmax(1).min())
    warnings.warn(
        f"{owner}: the rollout of {int(rows.sum())} of {states.shape[0]} trajectories became NaN/inf, the first at "
        f"step {first} of {states.shape[1] - 1}",
        DivergenceWarning,
        stacklevel=3,
    )


def check_rollout_args(field: VectorField, x0: torch.Tensor, u: torch.Tensor) -> None:
    """Raise naming the problem unless ``x0 [B, n]`` and ``u [B, T, m]`` fit ``field`` and are finite."""
    if not isinstance(x0, torch.Tensor) or not isinstance(u, torch.Tensor):
        raise TypeError(f"x0 and u must be torch tensors, got {type(x0).__name__} and {type(u).__name__}")
    if x0.ndim != 2 or x0.shape[-1] != field.state_dim:
        raise ValueError(f"x0 must have shape [B, {field.state_dim}], got {tuple(x0.shape)}")
    if u.ndim != 3 or u.shape[-1] != field.control_dim or u.shape[0] != x0.shape[0]:
        raise ValueError(
            f"u must have shape [B={x0.shape[0]}, T, {field.control_dim}], got {tuple(u.shape)}"
        )
    if not all_finite(x0):
        raise ValueError("x0 contains NaN or inf")
    if not all_finite(u):
        raise ValueError("u contains NaN or inf")


class BoundField:
    """A field bound to a rollout's controls, seen by ``_step`` as a field of period ``t``.

    ``f(x, u)`` returns ``fn(x, t)``: the ``u`` passed (the period's control, ``u[:, t]``) is already in
    ``fn``. Carries the field's sizes and position/velocity indices (semi-implicit Euler needs them).
    Set ``.t`` to the period before each step.
    """

    __slots__ = ("fn", "t", "state_dim", "control_dim", "position_index", "velocity_index", "constrain")

    def __init__(self, field: VectorField, fn):
        self.fn, self.t = fn, 0
        self.state_dim, self.control_dim = field.state_dim, field.control_dim
        self.position_index = getattr(field, "position_index", None)
        self.velocity_index = getattr(field, "velocity_index", None)
        self.constrain = getattr(field, "constrain", None)

    def __call__(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self.fn(x, self.t)


def bind_field(field: VectorField, integrator: Integrator, u: torch.Tensor) -> BoundField | None:
    """``field`` bound to the control sequence ``u [B, T, m]`` (in the states' dtype) for a rollout of
    ``integrator``, or ``None`` if the field has no ``bind_controls`` or the integrator evaluates the field
    at other controls than the period's (see the module docstring)."""
    bind = getattr(field, "bind_controls", None) if integrator.binds_controls else None
    return None if bind is None else BoundField(field, bind(u))


class Integrator:
    """Base class: subclasses implement ``_step(field, x, u, h)`` for one step of size ``h``.

    Args:
        substeps: equal sub-steps per control period (fixed-step integrators).
    """

    substeps: int = 1
    order: int

    def __init__(self, substeps: int = 1):
        self.substeps = positive_int(substeps, "substeps")

    def _step(self, field: VectorField, x: torch.Tensor, u: torch.Tensor, h: float) -> torch.Tensor:
        raise NotImplementedError

    def check_field(self, field: VectorField) -> None:
        """Raise a ValueError if this integrator cannot integrate ``field`` (default: any field can)."""

    def step(self, field: VectorField, x: torch.Tensor, u: torch.Tensor, dt: float) -> torch.Tensor:
        """Advance ``x [..., n]`` by one control period ``dt`` (s) under the held control ``u [..., m]``."""
        dt = check_dt(dt)
        self.check_field(field)
        check_state_control(x, u, field.state_dim, field.control_dim)
        if not all_finite(x):
            raise ValueError("x contains NaN or inf")
        if not all_finite(u):
            raise ValueError("u contains NaN or inf")
        return self.advance(field, x, u, dt)

    def advance(self, field: VectorField, x: torch.Tensor, u: torch.Tensor, dt: float) -> torch.Tensor:
        """:meth:`step` without its input checks (``dt`` already checked, shapes known to fit); the field's
        ``constrain`` (if any) is applied after each sub-step."""
        h = dt / self.substeps
        constrain = getattr(field, "constrain", None)
        for _ in range(self.substeps):
            x = self._step(field, x, u, h)
            if constrain is not None:
                x = constrain(x)
        return x

    # Fixed-step integrators only call ``field(x, u)`` with the period's control, so a rollout may hand
    # them the field bound to the whole control sequence (see the module docstring).
    binds_controls = True

    def rollout(
        self, field: VectorField, x0: torch.Tensor, u: torch.Tensor, dt: float, *, warn_divergence: bool = True
    ) -> torch.Tensor:
        """Open-loop rollout: ``x0 [B, n]``, ``u [B, T, m]`` -> ``states [B, T+1, n]`` (first is ``x0``).

        Non-finite inputs are refused (ValueError); states that become non-finite are returned as they are and
        reported by a :class:`DivergenceWarning` naming the step where they began (unless ``warn_divergence``
        is False, for callers that handle divergence themselves).
        """
        dt = check_dt(dt)
        self.check_field(field)
        check_rollout_args(field, x0, u)
        bound = bind_field(field, self, u.to(x0.dtype))
        f = field if bound is None else bound
        states = [x0]
        x = x0
        for t in range(u.shape[1]):
            if bound is not None:
                bound.t = t
            x = self.advance(f, x, u[:, t], dt)
            states.append(x)
        out = torch.stack(states, dim=1)
        if warn_divergence:
            report_divergence(out, type(field).__name__)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(substeps={self.substeps})"
