r"""A structure-preserving learned vector field: a Lagrangian with control input and dissipation.

:class:`LagrangianField` learns a mechanical system's Lagrangian ``L(q, v) = 1/2 v^T M(q) v - V(q)``
(Deep Lagrangian Networks, Lutter et al. 2019) with generalised forces from the control and from a
dissipation (Rayleigh) term, as in dissipative SymODEN (Zhong et al. 2020):

.. math::

    M(q)\,\dot v = B(q)\,u - D(q, v)\,v - \dot M(q)\,v + \tfrac12 \partial_q (v^T M(q) v) - \partial_q V(q),
    \qquad \dot q = v

* ``M(q) = L L^T`` with ``L`` lower triangular, positive diagonal (``softplus + min_mass``): always
  symmetric positive definite, so kinetic energy is positive and the accelerations exist;
* ``V(q)``: a scalar network (the potential energy);
* ``B(q)``: a ``k x m`` network (how the control enters each coordinate);
* ``D(q, v) = L_d L_d^T``: positive semi-definite, so the dissipated power ``v^T D v >= 0``; its last layer
  starts at zero (no dissipation until the data ask for it). ``dissipation=False`` leaves it out.

With ``u = 0`` and no dissipation the model's energy ``E = 1/2 v^T M v + V`` is conserved *by construction*
(up to the integrator's error); with dissipation it can only decrease; a Neural ODE has no such structure
and drifts. The derivatives come from automatic differentiation: ``dM/dt = (dM/dq) v`` from one forward-mode pass
(``torch.func.jvp``) through the mass network, ``d L / d q`` from one reverse-mode pass, so an evaluation
costs a few network passes and training differentiates through them once more.

Coordinates: ``q`` and ``v`` are the system's ``position_index``/``velocity_index`` entries (CartPole:
``q = (x, theta)``, ``v = (x_dot, theta_dot)``). The networks see angles as ``(sin, cos)``; with
``coordinates="angles"`` (default) they see no translational coordinate at all, i.e. the Lagrangian is
assumed invariant under translations (true of a cart on a flat track; cart position is then cyclic and
its momentum changes only by forces), with ``"all"`` translational coordinates enter as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.func import jvp

from ..checks import finite_float
from ..systems import get_system
from ..systems.base import VectorField, check_state_control
from .base import Normalizer
from .fields import make_mlp

__all__ = ["LagrangianField", "COORDINATES", "lower_triangular"]

#: Which coordinates the Lagrangian's networks see: ``"angles"`` (sin/cos of angles only) or ``"all"``.
COORDINATES = ("angles", "all")


def lower_triangular(raw: torch.Tensor, k: int) -> torch.Tensor:
    """Lower-triangular ``[..., k, k]`` from ``raw [..., k(k+1)/2]``: the first ``k`` entries are the
    diagonal, the rest the strictly lower part (row by row)."""
    if raw.shape[-1] != k * (k + 1) // 2:
        raise ValueError(f"raw must have k(k+1)/2 = {k * (k + 1) // 2} entries, got {raw.shape[-1]}")
    out = torch.diag_embed(raw[..., :k])
    if k > 1:
        rows, cols = torch.tril_indices(k, k, offset=-1, device=raw.device)
        lower = raw.new_zeros(*raw.shape[:-1], k, k)
        lower[..., rows, cols] = raw[..., k:]
        out = out + lower
    return out


class LagrangianField(VectorField):
    """A learned Lagrangian vector field with control input and dissipation (see the module docstring).

    Args:
        system: the system whose coordinates are modelled (a :class:`~physwm.systems.System` class,
            instance or name); it must declare ``position_index``/``velocity_index`` covering every state
            entry once. Only its description is used (sizes, which entries are angles), never its equations.
        hidden: hidden widths of each network (mass, potential, input and dissipation).
        activation: one of :data:`~physwm.models.fields.ACTIVATIONS` (smooth ones: the field
            differentiates its networks).
        coordinates: one of :data:`COORDINATES`.
        dissipation: include the dissipation term ``D(q, v)``.
        min_mass: lower bound of the Cholesky factor's diagonal (keeps ``M`` invertible).

    Shapes: ``x [..., n]``, ``u [..., m]`` -> ``dx/dt [..., n]``.
    """

    def __init__(
        self,
        system: Any,
        hidden: Sequence[int] = (64, 64),
        activation: str = "softplus",
        coordinates: str = "angles",
        dissipation: bool = True,
        min_mass: float = 1e-3,
    ):
        super().__init__()
        cls = get_system(system)
        pos, vel = cls.position_index, cls.velocity_index
        if pos is None or vel is None or len(pos) != len(vel) or sorted((*pos, *vel)) != list(range(cls.state_dim)):
            raise ValueError(
                f"a Lagrangian field needs a system whose position_index and velocity_index cover its state; "
                f"{cls.__name__} declares {pos} and {vel}"
            )
        if coordinates not in COORDINATES:
            raise ValueError(f"unknown coordinates {coordinates!r}; valid: {list(COORDINATES)}")
        angles = [cls.states[i].kind == "angle" for i in pos]
        if coordinates == "angles" and not any(angles):
            raise ValueError(f"{cls.__name__} has no angle coordinate; use coordinates='all'")
        if not isinstance(dissipation, bool):
            raise ValueError(f"dissipation must be True or False, got {dissipation!r}")
        self.system_name = cls.name
        self.state_dim, self.control_dim = cls.state_dim, cls.control_dim
        self.position_index, self.velocity_index = tuple(pos), tuple(vel)
        self.coordinates, self.dissipation = coordinates, dissipation
        self.min_mass = finite_float(min_mass, "min_mass", positive=True)
        self.angles = tuple(i for i, a in enumerate(angles) if a)
        self.translations = tuple(i for i, a in enumerate(angles) if not a) if coordinates == "all" else ()
        k, m = len(pos), cls.control_dim
        self.k = k
        qdim = 2 * len(self.angles) + len(self.translations)
        tri = k * (k + 1) // 2
        self.mass_net = make_mlp(qdim, tri, hidden, activation)
        self.potential_net = make_mlp(qdim, 1, hidden, activation)
        self.input_net = make_mlp(qdim, k * m, hidden, activation) if m else None
        self.dissipation_net = make_mlp(qdim + k, tri, hidden, activation, zero_last=True) if dissipation else None
        self.velocity_norm = Normalizer(k)  # scales the dissipation network's velocity input

    # -- the parts ---------------------------------------------------------------------------------------
    def coordinate_features(self, q: torch.Tensor) -> torch.Tensor:
        """What the networks see of the coordinates ``q [..., k]``: sin/cos of angles, translations if
        ``coordinates="all"``: ``[..., 2 a + t]``."""
        parts = [f(q[..., i]) for i in self.angles for f in (torch.sin, torch.cos)]
        parts += [q[..., i] for i in self.translations]
        return torch.stack(parts, dim=-1)

    def mass_factor(self, q: torch.Tensor) -> torch.Tensor:
        """Cholesky factor ``L(q) [..., k, k]`` of the mass matrix ``M = L L^T``."""
        raw = self.mass_net(self.coordinate_features(q))
        diag = nn.functional.softplus(raw[..., : self.k]) + self.min_mass
        return lower_triangular(torch.cat((diag, raw[..., self.k :]), dim=-1), self.k)

    def mass_matrix(self, q: torch.Tensor) -> torch.Tensor:
        """``M(q) [..., k, k]``, symmetric positive definite."""
        L = self.mass_factor(q)
        return L @ L.transpose(-1, -2)

    def potential(self, q: torch.Tensor) -> torch.Tensor:
        """Potential energy ``V(q) [...]`` (the model's units)."""
        return self.potential_net(self.coordinate_features(q)).squeeze(-1)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """The model's own energy ``1/2 v^T M(q) v + V(q)`` ``[...]`` of states ``x [..., n]``: conserved by
        the model's flow without control and dissipation."""
        q, v = x[..., list(self.position_index)], x[..., list(self.velocity_index)]
        kinetic = 0.5 * (v.unsqueeze(-2) @ self.mass_matrix(q) @ v.unsqueeze(-1)).squeeze(-1).squeeze(-1)
        return kinetic + self.potential(q)

    def generalized_forces(self, q: torch.Tensor, v: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``B(q) u - D(q, v) v`` ``[..., k]``: the control's and the dissipation's generalised forces."""
        f = v.new_zeros(v.shape)
        features = self.coordinate_features(q)
        if self.input_net is not None:
            B = self.input_net(features).reshape(*q.shape[:-1], self.k, self.control_dim)
            f = f + (B @ u.to(v.dtype).unsqueeze(-1)).squeeze(-1)
        if self.dissipation_net is not None:
            raw = self.dissipation_net(torch.cat((features, self.velocity_norm.normalize(v)), dim=-1))
            Ld = lower_triangular(raw, self.k)  # any L_d: D = L_d L_d^T is positive semi-definite
            f = f - (Ld @ (Ld.transpose(-1, -2) @ v.unsqueeze(-1))).squeeze(-1)
        return f

    # -- the field ---------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        check_state_control(x, u, self.state_dim, self.control_dim)
        keep_graph = torch.is_grad_enabled()
        pos, vel = list(self.position_index), list(self.velocity_index)
        with torch.enable_grad():
            q, v = x[..., pos], x[..., vel]
            if not q.requires_grad:
                q = q.detach().requires_grad_(True)
            # L(q) and its rate along the motion, dL/dt = (dL/dq) v, in one forward-mode pass
            L, L_dot = jvp(self.mass_factor, (q,), (v,))
            M = L @ L.transpose(-1, -2)
            M_dot = L_dot @ L.transpose(-1, -2) + L @ L_dot.transpose(-1, -2)
            Mv = (M @ v.unsqueeze(-1)).squeeze(-1)
            Mdot_v = (M_dot @ v.unsqueeze(-1)).squeeze(-1)
            lagrangian = 0.5 * (v * Mv).sum(-1) - self.potential(q)
            dL_dq = torch.autograd.grad(lagrangian.sum(), q, create_graph=keep_graph)[0]
            rhs = self.generalized_forces(q, v, u) - Mdot_v + dL_dq
            acc = torch.cholesky_solve(rhs.unsqueeze(-1), L).squeeze(-1)
        dx = torch.cat((v, acc), dim=-1)
        order = torch.argsort(torch.tensor(pos + vel, device=x.device))
        dx = dx.index_select(-1, order)
        return dx if keep_graph else dx.detach()

    @torch.no_grad()
    def fit_normalization(self, states: torch.Tensor, controls: torch.Tensor, dt: float) -> LagrangianField:
        """Set the velocity scale of the dissipation network's input from ``states [N, T+1, n]``."""
        states = torch.as_tensor(states)
        v = states[..., list(self.velocity_index)].reshape(-1, self.k)
        self.velocity_norm.fit(v[torch.isfinite(v).all(-1)])
        self.velocity_norm.mean.zero_()  # dissipation acts on the velocity itself: keep 0 at rest
        return self

    def extra_repr(self) -> str:
        return (f"system={self.system_name!r}, coordinates={self.coordinates!r}, dissipation={self.dissipation}, "
                f"k={self.k}")
