"""Adaptive-step solvers (torchdiffeq) behind the Integrator interface, one control period at a time.

The control is held constant inside each period: each period is solved as its own initial-value problem,
so the solver never steps across a jump of the control.
"""

from __future__ import annotations

import torch
import torchdiffeq

from ..systems.base import VectorField
from .base import Integrator

__all__ = ["Adaptive", "ADAPTIVE_METHODS"]

#: torchdiffeq's adaptive methods that :class:`Adaptive` accepts.
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

    binds_controls = False  # torchdiffeq needs the field itself (an nn.Module: the adjoint's parameters)

    def __init__(self, method: str = "dopri5", rtol: float = 1e-7, atol: float = 1e-9, adjoint: bool = False):
        super().__init__(1)
        if method not in ADAPTIVE_METHODS:
            raise ValueError(f"unknown adaptive method {method!r}; valid: {list(ADAPTIVE_METHODS)}")
        if not (rtol > 0 and atol > 0):
            raise ValueError(f"rtol and atol must be > 0, got rtol={rtol}, atol={atol}")
        self.method, self.rtol, self.atol, self.adjoint = method, float(rtol), float(atol), bool(adjoint)

    def advance(self, field, x, u, dt):
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
        x_next = out[-1][..., : x.shape[-1]]
        constrain = getattr(field, "constrain", None)
        return x_next if constrain is None else constrain(x_next)

    def __repr__(self) -> str:
        return f"Adaptive(method={self.method!r}, rtol={self.rtol}, atol={self.atol}, adjoint={self.adjoint})"
