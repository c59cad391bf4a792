"""ODEModel: a WorldModel for any VectorField, integrated by any Integrator."""

from __future__ import annotations

import torch

from ..integrators import Integrator, get_integrator
from ..systems.base import VectorField
from .base import WorldModel

__all__ = ["ODEModel"]


class ODEModel(WorldModel):
    """Continuous-time world model: ``x_{t+1} = integrator.step(field, x_t, u_t, dt)``.

    The field may be known physics (explicit model, optionally with learnable constants), a
    ``NeuralField`` (Neural ODE) or a ``HybridField`` (physics plus learned residual).

    Args:
        field: the vector field ``dx/dt = f(x, u)``.
        integrator: an :class:`~physwm.integrators.Integrator` or its name (default RK4).
        dt: control period, s.
    """

    def __init__(self, field: VectorField, integrator: Integrator | str = "rk4", dt: float = 0.02):
        super().__init__(field.state_dim, field.control_dim, dt)
        self.field = field
        self.integrator = get_integrator(integrator)
        self.integrator.check_field(field)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, integrator={self.integrator!r}"

    def step(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        self._check(x, u)
        return self.integrator.advance(self.field, x, u, self.dt)

    def rollout(self, x0: torch.Tensor, u: torch.Tensor, *, warn_divergence: bool = True) -> torch.Tensor:
        """Open-loop rollout ``x0 [B, n]``, ``u [B, T, m]`` -> ``[B, T+1, n]`` (see :meth:`WorldModel.rollout`)."""
        self._check_rollout(x0, u)
        return self.integrator.rollout(self.field, x0, u, self.dt, warn_divergence=warn_divergence)

    @torch.no_grad()
    def fit_normalization(self, states: torch.Tensor, controls: torch.Tensor) -> ODEModel:
        """Set the model's statistics and pass the data on to a field that keeps its own (NeuralField)."""
        super().fit_normalization(states, controls)
        if hasattr(self.field, "fit_normalization"):
            self.field.fit_normalization(torch.as_tensor(states), torch.as_tensor(controls), self.dt)
        return self

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """Rollout MSE (see :meth:`WorldModel.loss`) plus the field's regularisation if it has one.

        A :class:`~physwm.models.HybridField` with ``penalty > 0`` adds its residual penalty over the batch's
        states and controls (APHYNITY), given the batch's trajectory MSE in the data's units (``mse_data``,
        which drives its adaptive multiplier if it has one).
        """
        total, metrics = super().loss(batch)
        reg = getattr(self.field, "regularization", None)
        if reg is not None:
            s, c = batch["states"], batch["controls"]
            extra, extra_metrics = reg(s[:, :-1], c.to(s.dtype), data_mse=metrics["mse_data"])
            total = total + extra
            metrics.update(extra_metrics)
        return total, metrics
