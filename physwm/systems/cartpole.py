r"""CartPole: a pole hinged on a cart that moves along a frictional track.

The equations are written once, in :func:`cartpole_dynamics`, as a pure function of ``(x, u, params)``.
The gymnasium environments, the explicit model and the physics half of every hybrid all call it.

State (gymnasium's order and units)

    ====  ===========  ======  ============================================
    idx   name         unit    meaning
    ====  ===========  ======  ============================================
    0     x            m       cart position (positive to the right)
    1     x_dot        m/s     cart velocity
    2     theta        rad     pole angle from upright (positive clockwise)
    3     theta_dot    rad/s   pole angular velocity
    ====  ===========  ======  ============================================

Control: ``u[..., 0]`` is the horizontal force on the cart in newtons.

Equations of motion (pole: uniform rod of half-length ``l``, mass ``m``; cart mass ``m_c``;
``M = m_c + m``; Barto, Sutton & Anderson 1983, written as in gymnasium, with the friction terms of
Barto et al. and Florian 2007 that gymnasium leaves out):

.. math::

    F_\mathrm{fr} &= b_c \dot x + \mu_c \,\mathrm{sgn}_\epsilon(\dot x) \\
    \mathrm{temp} &= \frac{F - F_\mathrm{fr} + m l \dot\theta^2 \sin\theta}{M} \\
    \ddot\theta &= \frac{g \sin\theta - \cos\theta\,\mathrm{temp} - b_p \dot\theta / (m l)}
                        {l \left(\tfrac43 - m\cos^2\theta / M\right)} \\
    \ddot x &= \mathrm{temp} - \frac{m l \ddot\theta \cos\theta}{M}

* ``b_c`` (``cart_viscous``, N s/m): viscous cart friction.
* ``mu_c`` (``cart_coulomb``, N): Coulomb (dry) cart friction, a force of constant magnitude opposing
  the cart's motion. Florian (2007) shows the exact magnitude is ``mu * N_c`` with a normal force
  ``N_c`` that depends on the pole's motion; we take the magnitude as a constant force, which is the
  form Barto et al. used and the usual one in system-identification studies.
* ``sgn_eps(v) = tanh(v / coulomb_smoothing)``: sign() smoothed over ``coulomb_smoothing`` m/s so the
  field is differentiable and adaptive solvers do not chatter at ``x_dot = 0``; set
  ``coulomb_smoothing=0`` for the exact (discontinuous) sign.
* ``b_p`` (``pole_damping``, N m s/rad): viscous damping torque at the pole joint.

With all friction terms zero (the default) this is exactly gymnasium's CartPole-v1, operation for
operation, so Euler at ``tau = 0.02`` s reproduces ``gymnasium.make("CartPole-v1")`` to round-off.

Mechanical energy (zero potential at the hinge height):

.. math::

    E = \tfrac12 M \dot x^2 + m l \dot x \dot\theta\cos\theta + \tfrac23 m l^2 \dot\theta^2 + m g l \cos\theta

Friction only removes energy: ``dE/dt = -F_fr * x_dot - b_p * theta_dot**2 + F * x_dot``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from .base import VectorField, check_state_control

__all__ = ["CartPoleParams", "CartPole", "cartpole_dynamics", "cartpole_energy", "LEARNABLE_CONSTANTS"]

# Constants that may be turned into learnable, positive parameters, with the scale (in their own unit)
# of the learnable parameter ``raw = value / scale`` (see CartPole). A scale near the expected size keeps
# Adam's steps (about lr in raw units) meaningful in physical units.
LEARNABLE_CONSTANTS: dict[str, float] = {
    "gravity": 10.0,
    "masscart": 1.0,
    "masspole": 0.1,
    "length": 0.5,
    "cart_viscous": 0.1,
    "cart_coulomb": 0.1,
    "pole_damping": 0.01,
}


@dataclass(frozen=True)
class CartPoleParams:
    """Physical constants of a CartPole (gymnasium CartPole-v1 values by default).

    Attributes:
        gravity: gravitational acceleration, m/s^2.
        masscart: cart mass, kg.
        masspole: pole mass, kg.
        length: **half** the pole's length (pivot to centre of mass), m.
        force_mag: magnitude of the force of gymnasium's discrete actions and bound of the continuous
            action space, N.
        tau: control period of the environments, s.
        cart_viscous: viscous cart friction coefficient b_c, N s/m.
        cart_coulomb: Coulomb cart friction force mu_c, N.
        pole_damping: viscous damping at the pole joint b_p, N m s/rad.
        coulomb_smoothing: velocity scale of the tanh that smooths sign(x_dot), m/s (0: exact sign).

    Fields may hold 0-dim tensors instead of floats (learnable constants); derived quantities are
    properties, computed from the fields every time, never stored.
    """

    gravity: Any = 9.8
    masscart: Any = 1.0
    masspole: Any = 0.1
    length: Any = 0.5
    force_mag: float = 10.0
    tau: float = 0.02
    cart_viscous: Any = 0.0
    cart_coulomb: Any = 0.0
    pole_damping: Any = 0.0
    coulomb_smoothing: float = 0.01

    def __post_init__(self) -> None:
        positive = ("gravity", "masscart", "masspole", "length", "force_mag", "tau")
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"CartPoleParams.{f.name} must be a number, got {type(v).__name__}")
            if not math.isfinite(v):
                raise ValueError(f"CartPoleParams.{f.name} must be finite, got {v}")
            if f.name in positive and v <= 0:
                raise ValueError(f"CartPoleParams.{f.name} must be > 0, got {v}")
            if f.name not in positive and v < 0:
                raise ValueError(f"CartPoleParams.{f.name} must be >= 0, got {v}")

    @property
    def total_mass(self):
        """Cart plus pole mass M, kg."""
        return self.masspole + self.masscart

    @property
    def polemass_length(self):
        """Pole mass times half-length m*l, kg m."""
        return self.masspole * self.length

    @property
    def has_friction(self) -> bool:
        """True if any friction term is non-zero or a tensor (a learnable term may leave zero)."""
        terms = (self.cart_viscous, self.cart_coulomb, self.pole_damping)
        return any(isinstance(v, torch.Tensor) or v != 0.0 for v in terms)

    def replace(self, **changes: Any) -> CartPoleParams:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, float]:
        """Plain-float dict of all fields (tensors are detached to floats), for metadata and JSON."""
        return {f.name: _as_float(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CartPoleParams:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown CartPoleParams fields {unknown}; valid: {sorted(names)}")
        return cls(**{k: float(v) for k, v in d.items()})


def _as_float(v: Any) -> float:
    return float(v.detach()) if isinstance(v, torch.Tensor) else float(v)


def _smooth_sign(v: torch.Tensor, smoothing: float) -> torch.Tensor:
    return torch.sign(v) if smoothing == 0 else torch.tanh(v / smoothing)


def cartpole_dynamics(x: torch.Tensor, u: torch.Tensor, p: CartPoleParams) -> torch.Tensor:
    """Time derivative of the CartPole state.

    Args:
        x: state ``[..., 4]`` = (x m, x_dot m/s, theta rad, theta_dot rad/s).
        u: force on the cart ``[..., 1]``, N.
        p: physical constants (floats or 0-dim tensors).

    Returns:
        ``dx/dt [..., 4]`` = (x_dot, x_acc, theta_dot, theta_acc), same dtype as ``x``.
    """
    x_dot = x[..., 1]
    theta = x[..., 2]
    theta_dot = x[..., 3]
    force = u[..., 0]
    costheta = torch.cos(theta)
    sintheta = torch.sin(theta)
    if p.has_friction:
        force = force - (p.cart_viscous * x_dot + p.cart_coulomb * _smooth_sign(x_dot, p.coulomb_smoothing))
    # Same operation order as gymnasium's CartPole-v1, so the frictionless field matches it bit for bit.
    temp = (force + p.polemass_length * (theta_dot * theta_dot) * sintheta) / p.total_mass
    numerator = p.gravity * sintheta - costheta * temp
    if p.has_friction:
        numerator = numerator - p.pole_damping * theta_dot / p.polemass_length
    thetaacc = numerator / (p.length * (4.0 / 3.0 - p.masspole * (costheta * costheta) / p.total_mass))
    xacc = temp - p.polemass_length * thetaacc * costheta / p.total_mass
    return torch.stack((x_dot, xacc, theta_dot, thetaacc), dim=-1)


def cartpole_energy(x: torch.Tensor, p: CartPoleParams) -> torch.Tensor:
    """Mechanical energy ``[...]`` in joules of states ``x [..., 4]`` (zero potential at hinge height)."""
    x_dot, theta, theta_dot = x[..., 1], x[..., 2], x[..., 3]
    m, l = p.masspole, p.length
    kinetic = (
        0.5 * p.total_mass * x_dot**2
        + m * l * x_dot * theta_dot * torch.cos(theta)
        + (2.0 / 3.0) * m * l**2 * theta_dot**2
    )
    return kinetic + m * p.gravity * l * torch.cos(theta)


class _StraightThroughClamp(torch.autograd.Function):
    """``max(raw, floor)`` in the forward pass, the identity in the backward pass.

    Together with :func:`_project_gradient` (a hook on the learnable leaf, applied to its accumulated
    gradient) this is projected gradient descent onto ``raw >= floor``: a constant can
    sit exactly on its bound (zero friction: the nominal physics, bit for bit) and still leave it when
    the data ask for it, which a smooth transform (softplus, exp) cannot do: its gradient vanishes at the
    bound. Masking the total gradient, not each use's share, makes backprop and the adjoint method agree.
    """

    @staticmethod
    def forward(ctx, raw: torch.Tensor, floor: float) -> torch.Tensor:
        return raw.clamp_min(floor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


def _project_gradient(floor: float):
    """Post-accumulate-grad hook: at or below ``floor`` keep only gradients whose descent step moves up.

    It acts on ``.grad`` once it is accumulated (``backward``), so on the total gradient; the inner
    ``autograd.grad`` calls of the adjoint method are left alone.
    """

    def hook(raw: torch.Tensor) -> None:
        if raw.grad is not None:
            raw.grad.masked_fill_((raw.detach() <= floor) & (raw.grad > 0), 0.0)

    return hook


# Constants that must stay strictly positive (the equations divide by them) are floored at this
# fraction of their scale; friction terms may reach zero.
_FLOOR = {"gravity": 1e-3, "masscart": 1e-3, "masspole": 1e-3, "length": 1e-3}


class CartPole(VectorField):
    """CartPole vector field ``dx/dt = f(x, u)`` (see the module docstring for the equations).

    Args:
        params: physical constants; gymnasium CartPole-v1 by default.
        learnable: names of constants to turn into learnable, positivity-constrained parameters
            (any of ``LEARNABLE_CONSTANTS``), for system identification by gradient descent. Each is
            stored as ``raw = value / scale`` and used as ``scale * max(raw, floor)`` with the gradient of
            projected gradient descent (see ``_StraightThroughClamp``): friction may sit exactly at zero and
            leave it when the data ask; masses, length and gravity stay above 0.1% of their scale. With
            Adam, every constant moves by about ``lr * scale`` per step. An untrained model with
            learnable constants is the nominal physics (to float32 rounding of the constants).

    Shapes: ``x [..., 4]``, ``u [..., 1]`` -> ``[..., 4]``; works in float32 and float64 and is
    differentiable in ``x``, ``u`` and the learnable constants.
    """

    state_dim = 4
    control_dim = 1
    position_index = (0, 2)
    velocity_index = (1, 3)

    def __init__(self, params: CartPoleParams | None = None, learnable: tuple[str, ...] | list[str] = ()):
        super().__init__()
        self.base_params = params if params is not None else CartPoleParams()
        if not isinstance(self.base_params, CartPoleParams):
            raise TypeError(f"params must be a CartPoleParams, got {type(self.base_params).__name__}")
        unknown = sorted(set(learnable) - set(LEARNABLE_CONSTANTS))
        if unknown:
            raise ValueError(f"unknown learnable constants {unknown}; valid: {sorted(LEARNABLE_CONSTANTS)}")
        self.learnable = tuple(learnable)
        self.raw = nn.ParameterDict()
        for name in self.learnable:
            scale = LEARNABLE_CONSTANTS[name]
            value = float(getattr(self.base_params, name)) / scale
            self.raw[name] = nn.Parameter(torch.tensor(value, dtype=torch.float32))
        self._register_projection()

    def _register_projection(self) -> None:
        for name, raw in self.raw.items():
            raw.register_post_accumulate_grad_hook(_project_gradient(_FLOOR.get(name, 0.0)))

    def __setstate__(self, state) -> None:
        # copies (deepcopy, pickle) get new leaf tensors: give them the projection hook again
        super().__setstate__(state)
        self._register_projection()

    @property
    def params(self) -> CartPoleParams:
        """Current constants: the base params with learnable ones replaced by their tensor values."""
        if not self.learnable:
            return self.base_params
        clamp = _StraightThroughClamp.apply
        values = {n: LEARNABLE_CONSTANTS[n] * clamp(self.raw[n], _FLOOR.get(n, 0.0)) for n in self.learnable}
        return self.base_params.replace(**values)

    def identified(self) -> dict[str, float]:
        """Current values of the learnable constants as floats."""
        p = self.params
        return {n: _as_float(getattr(p, n)) for n in self.learnable}

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        check_state_control(x, u, self.state_dim, self.control_dim)
        return cartpole_dynamics(x, u, self.params)

    def bind_controls(self, u: torch.Tensor):
        """``f(x [B, 4], t) = dx/dt`` under ``u[:, t]``, with the constants computed once per rollout (the
        fast path of fixed-step :meth:`Integrator.rollout <physwm.integrators.Integrator.rollout>`)."""
        p = self.params
        return lambda x, t: cartpole_dynamics(x, u[:, t], p)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Mechanical energy ``[...]`` (J) of states ``x [..., 4]``."""
        if x.ndim == 0 or x.shape[-1] != self.state_dim:
            raise ValueError(f"state must have shape [..., 4], got {tuple(x.shape)}")
        return cartpole_energy(x, self.params)

    def extra_repr(self) -> str:
        return f"params={self.base_params}, learnable={self.learnable}"
