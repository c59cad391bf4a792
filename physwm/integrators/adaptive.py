"""Adaptive-step solvers (torchdiffeq) behind the Integrator interface, one control period at a time.

The control is held constant inside each period: each period is solved as its own initial-value problem,
so the solver never steps across a jump of the control.
"""

from __future__ import annotations

import torch
import torchdiffeq

from ..checks import finite_float, positive_int
from ..systems.base import VectorField
from .base import Integrator

__all__ = ["Adaptive", "ADAPTIVE_METHODS", "SolverError"]

#: torchdiffeq's adaptive methods that :class:`Adaptive` accepts.
ADAPTIVE_METHODS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")


class SolverError(RuntimeError):
    """An adaptive solve could not finish a control period: too many steps, or a step size that underflowed."""


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
        max_steps: most solver steps in one control period; beyond it the solve stops with a
            :class:`SolverError` instead of running for ever (a discontinuous field, such as CartPole's exact
            Coulomb ``sign`` with ``coulomb_smoothing=0``, makes an adaptive solver shrink its step without end).

    Raises (from ``step``/``rollout``):
        SolverError: the step budget is exhausted, or the step size underflowed (the solution blew up, or
            ``rtol``/``atol`` are below what the dtype can resolve); the message names the likely cause and fix.
    """

    binds_controls = False  # torchdiffeq needs the field itself (an nn.Module: the adjoint's parameters)

    def __init__(
        self, method: str = "dopri5", rtol: float = 1e-7, atol: float = 1e-9, adjoint: bool = False,
        max_steps: int = 1_000,
    ):  # fmt: skip
        super().__init__(1)
        if method not in ADAPTIVE_METHODS:
            raise ValueError(f"unknown adaptive method {method!r}; valid: {list(ADAPTIVE_METHODS)}")
        rtol, atol = finite_float(rtol, "rtol", positive=True), finite_float(atol, "atol", positive=True)
        self.method, self.rtol, self.atol, self.adjoint = method, rtol, atol, bool(adjoint)
        self.max_steps = positive_int(max_steps, "max_steps")

    def advance(self, field, x, u, dt):
        func = _AugmentedField(field, x.shape[-1])
        y0 = torch.cat((x, u.to(x.dtype)), dim=-1)
        t = torch.tensor([0.0, dt], dtype=x.dtype, device=x.device)
        kw = dict(rtol=self.rtol, atol=self.atol, method=self.method, options={"max_num_steps": self.max_steps})
        try:
            if self.adjoint:
                params = tuple(p for p in field.parameters() if p.requires_grad)
                out = torchdiffeq.odeint_adjoint(func, y0, t, adjoint_params=params, **kw)
            else:
                out = torchdiffeq.odeint(func, y0, t, **kw)
        except AssertionError as err:  # torchdiffeq reports both failures by assertions
            raise self._explain(err, field, dt) from err
        x_next = out[-1][..., : x.shape[-1]]
        constrain = getattr(field, "constrain", None)
        return x_next if constrain is None else constrain(x_next)

    def _explain(self, err: AssertionError, field, dt: float) -> SolverError:
        name = type(field).__name__
        if "max_num_steps" in str(err):
            return SolverError(
                f"{self.method} took more than max_steps={self.max_steps} steps within one control period of {dt} s "
                f"of {name}: the field is discontinuous or very stiff there (for example CartPole's exact Coulomb "
                "friction sign with coulomb_smoothing=0). Smooth the discontinuity (coulomb_smoothing > 0), use a "
                "fixed-step integrator (rk4 with substeps), or raise max_steps."
            )
        if "underflow" in str(err):
            return SolverError(
                f"{self.method}'s step size underflowed within a control period of {dt} s of {name} "
                f"(rtol={self.rtol}, atol={self.atol}): the solution blew up (non-finite or huge states), or the "
                "tolerances are below what the dtype can resolve; check the state and use tolerances >= 1e-12."
            )
        return SolverError(f"{self.method} failed within a control period of {dt} s of {name}: {err}")

    def __repr__(self) -> str:
        return (f"Adaptive(method={self.method!r}, rtol={self.rtol}, atol={self.atol}, adjoint={self.adjoint}, "
                f"max_steps={self.max_steps})")
