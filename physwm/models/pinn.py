"""A physics-informed MLP: an implicit network trained on data plus the residual of the known equations.

:class:`PhysicsInformedMLP` is an :class:`~physwm.models.MLPModel` (the same network, inputs and outputs)
whose loss adds, PINN-style (Raissi et al. 2019), the mismatch between the network and the known equations
at *collocation* states and controls that no training data covers. The network is never built on the
physics (unlike a hybrid, whose vector field *is* the physics plus a correction): the equations only
nudge it where the data are silent, the fair middle ground between "implicit" and "hybrid".

**The residual.** The network is a discrete-time map (one control period ``dt``), so the residual is
the discrete-time one of physics-informed flow maps and Raissi et al.'s discrete-time PINNs: the
network's one-step change against the change the known equations give over the same period, integrated
by ``integrator`` (RK4 by default, the task's integrator in studies), measured like the data term in units
of the one-step change's spread: ``r = (G(x_c, u_c) - Phi_dt(x_c, u_c)) / delta_std`` where ``G`` is the
network's next state and ``Phi_dt`` the physics' flow over one period. The loss is
``data_mse + physics_weight * mean(r^2)``.

**The collocation states.** Fresh at every loss call, ``collocation`` pairs ``(x_c, u_c)`` drawn uniformly
(from a seeded generator, reproducible) in a box around the training data: every state and control entry
spans ``collocation_scale`` times the data's range of that entry, about the range's centre; an entry the
system declares an angle spans at least one full turn more than the data (``+- pi`` beyond their range).
Pairs that fall inside the data's own box (every entry within the range the training data take) are
dropped (up to four times as many are drawn, so nearly all ``collocation`` remain), so the physics speaks
only where the data do not. The boxes are buffers set by :meth:`fit_normalization` from the training data
(saved with the model).

The physics' constants are fixed (the nominal equations, e.g. CartPole-v1's frictionless ones on the
friction task): what the data show and the equations lack (friction) is learned where the data are; the
equations shape the network elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..checks import finite_float, positive_int
from ..integrators import Integrator, get_integrator
from ..systems import System
from .base import check_batch
from .implicit import MLPModel

__all__ = ["PhysicsInformedMLP"]


class PhysicsInformedMLP(MLPModel):
    """An MLP dynamics model trained on data and on the known equations' residual at collocation states.

    Prediction is :class:`~physwm.models.MLPModel`'s. The loss is the MLP's (the open-loop rollout MSE
    over the batch's window, errors in units of the one-step change's spread) plus ``physics_weight`` times
    the mean squared physics residual at ``collocation`` fresh collocation pairs (see the module
    docstring). Metrics: ``mse`` (data term), ``physics`` (mean squared residual), ``collocation`` (pairs
    kept this call).

    Args:
        physics: the known equations, a :class:`~physwm.systems.System` instance (its constants are used
            as they are, never learned).
        dt: control period, s (default: the system's).
        hidden: hidden-layer widths.
        activation: one of :data:`~physwm.models.fields.ACTIVATIONS`.
        integrator: integrator of the physics' flow over one period (name or instance; default RK4).
        physics_weight: weight of the physics term (>= 0; 0 is the plain MLP).
        collocation: collocation pairs per loss call.
        collocation_scale: extent of the collocation box in multiples of the data's range (>= 1).
        seed: seed of the collocation draws.

    Shapes: ``step(x [..., n], u [..., m]) -> [..., n]``.
    """

    def __init__(
        self,
        physics: System,
        dt: float | None = None,
        hidden: Sequence[int] = (128, 128, 128),
        activation: str = "silu",
        integrator: Integrator | str = "rk4",
        physics_weight: float = 1.0,
        collocation: int = 256,
        collocation_scale: float = 3.0,
        seed: int = 0,
    ):
        if not isinstance(physics, System):
            raise TypeError(f"physics must be a System instance, got {type(physics).__name__}")
        if dt is None:
            dt = type(physics).control_period(physics.base_params)
        super().__init__(physics.state_dim, physics.control_dim, dt, hidden=hidden, activation=activation)
        self.physics = physics.requires_grad_(False)
        self.integrator = get_integrator(integrator)
        self.physics_weight = finite_float(physics_weight, "physics_weight", nonnegative=True)
        self.collocation = positive_int(collocation, "collocation")
        self.collocation_scale = finite_float(collocation_scale, "collocation_scale", positive=True)
        if self.collocation_scale < 1:
            raise ValueError(f"collocation_scale must be >= 1 (the box covers the data), got {collocation_scale}")
        self.seed = int(seed)
        self._draws = 0
        k = self.state_dim + self.control_dim
        kinds = [q.kind for q in type(physics).states] + ["other"] * self.control_dim
        self.register_buffer("angle_mask", torch.tensor([kind == "angle" for kind in kinds]), persistent=False)
        for name in ("data_low", "data_high", "colloc_low", "colloc_high"):
            self.register_buffer(name, torch.zeros(k))

    @torch.no_grad()
    def fit_normalization(self, states: torch.Tensor, controls: torch.Tensor) -> PhysicsInformedMLP:
        """Normalisation statistics (see :meth:`WorldModel.fit_normalization`) and the data and collocation
        boxes from ``states [N, T+1, n]``, ``controls [N, T, m]`` (NaN padding is ignored)."""
        super().fit_normalization(states, controls)
        states, controls = torch.as_tensor(states), torch.as_tensor(controls)
        pairs = torch.cat((states[:, :-1], controls.to(states.dtype)), dim=-1).reshape(-1, self.data_low.numel())
        pairs = pairs[torch.isfinite(pairs).all(-1)].to(self.data_low.dtype)
        low, high = pairs.min(0).values, pairs.max(0).values
        centre, half = (low + high) / 2, (high - low) / 2
        half = self.collocation_scale * half
        half = torch.where(self.angle_mask, torch.maximum(half, (high - low) / 2 + math.pi), half)
        self.data_low.copy_(low)
        self.data_high.copy_(high)
        self.colloc_low.copy_(centre - half)
        self.colloc_high.copy_(centre + half)
        return self

    def collocation_pairs(self, draw: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``draw``-th set of collocation states ``[K, n]`` and controls ``[K, m]`` (``K <= collocation``):
        uniform in the collocation box, outside the data's box."""
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + draw) % (2**63))
        k = self.data_low.numel()
        low, high = self.colloc_low.to(dtype), self.colloc_high.to(dtype)
        pts = low + (high - low) * torch.rand((4 * self.collocation, k), generator=g, dtype=dtype).to(low.device)
        covered = ((pts >= self.data_low.to(dtype)) & (pts <= self.data_high.to(dtype))).all(-1)
        pts = pts[~covered][: self.collocation]
        return pts[:, : self.state_dim], pts[:, self.state_dim :]

    def physics_residual(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``(G(x, u) - Phi_dt(x, u)) / delta_std`` ``[..., n]``: the network's next state against the
        physics' flow over one period, in units of the one-step change's spread."""
        with torch.no_grad():
            target = self.integrator.step(self.physics, x, u, self.dt)
        return self.scaled_error(self.step(x, u), target)

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        s, _ = check_batch(batch, self.state_dim, self.control_dim)
        data, metrics = super().loss(batch)
        if self.physics_weight == 0:
            return data, metrics
        xc, uc = self.collocation_pairs(self._draws, s.dtype)
        self._draws += 1
        if xc.shape[0] == 0:
            return data, {**metrics, "collocation": 0.0}
        phys = self.physics_residual(xc, uc).pow(2).mean()
        total = data + self.physics_weight * phys
        return total, {**metrics, "physics": float(phys.detach()), "collocation": float(xc.shape[0])}
