r"""Pendulums: gymnasium's torque-driven ``Pendulum`` and APHYNITY's autonomous ``DampedPendulum``.

**Pendulum** (gymnasium ``Pendulum-v1``): a uniform rod of mass ``m`` and length ``l`` on a frictionless
(optionally damped) joint, driven by a torque ``u`` (N m, ``|u| <= max_torque``). The angle is measured
from **upright** (``theta = 0`` up, positive counter-clockwise), as in gymnasium:

.. math::

    \ddot\theta = \frac{3 g}{2 l} \sin\theta + \frac{3}{m l^2} u - \frac{3 b}{m l^2} \dot\theta

with viscous joint damping ``b`` (``damping``, N m s/rad; 0 in gymnasium). Gymnasium steps it with
semi-implicit Euler at ``dt = 0.05`` s and clips the new angular velocity to ``+-max_speed`` (8 rad/s)
before it moves the angle; the system declares that speed limit as its ``constraint`` (applied by every
integrator after each step, and by :class:`~physwm.integrators.SemiImplicitEuler` between its velocity
and position updates), so ``SemiImplicitEuler`` at ``dt`` (the default integrator of
``physwm/Pendulum-v0``) reproduces ``Pendulum-v1`` operation for operation (tested to 1e-9 over 200
random-torque steps). Gymnasium keeps the angle unwrapped in its state
(``env.unwrapped.state = [theta, theta_dot]``, what physwm records) and observes ``[cos, sin, theta_dot]``.
With float32 actions, NumPy computes gymnasium's ``3 / (m l^2) * u`` in float32 (a relative difference
of about 1e-7 in the torque term); physwm's own environment computes in float64.

Energy (zero potential at the pivot's height): ``E = m l^2 / 6 * theta_dot^2 + m g l / 2 * cos(theta)``;
``dE/dt = u theta_dot - b theta_dot^2``.

**DampedPendulum** (APHYNITY, Yin et al., ICLR 2021): the autonomous damped pendulum of their benchmark,
angle from **hanging** (``theta = 0`` down),

.. math::

    \ddot\theta = -\omega_0^2 \sin\theta - \alpha \dot\theta

with ``omega0 = 2 pi / T0`` (T0 = 6 s) and ``alpha = 0.2`` 1/s by default, both learnable. No control
(``control_dim = 0``). Its environment ``physwm/DampedPendulum-v0`` samples the state every ``dt = 0.5`` s
(RK4 with 50 sub-steps of 10 ms in between).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from .base import Constant, Parameters, Quantity, System, Task, wrap_angle

__all__ = [
    "PendulumParams",
    "Pendulum",
    "pendulum_dynamics",
    "pendulum_energy",
    "pendulum_cost",
    "upright_success",
    "DampedPendulumParams",
    "DampedPendulum",
    "damped_pendulum_dynamics",
]


@dataclass(frozen=True)
class PendulumParams(Parameters):
    """Constants of gymnasium's Pendulum-v1 (its defaults) and a joint damping it leaves out.

    Attributes:
        gravity: gravitational acceleration ``g``, m/s^2 (gymnasium's 10).
        mass: rod mass ``m``, kg.
        length: rod length ``l`` (pivot to tip), m.
        dt: control period, s.
        max_speed: bound of the angular velocity, rad/s (gymnasium clips at 8).
        max_torque: bound of the torque, N m.
        damping: viscous joint damping ``b``, N m s/rad.
    """

    gravity: Any = 10.0
    mass: Any = 1.0
    length: Any = 1.0
    dt: float = 0.05
    max_speed: float = 8.0
    max_torque: float = 2.0
    damping: Any = 0.0

    positive_fields = ("gravity", "mass", "length", "dt", "max_speed", "max_torque")
    nonnegative_fields = ("damping",)

    @property
    def has_damping(self) -> bool:
        """True if the damping is non-zero or a tensor (a learnable damping may leave zero)."""
        return isinstance(self.damping, torch.Tensor) or self.damping != 0.0


def pendulum_dynamics(x: torch.Tensor, u: torch.Tensor, p: PendulumParams) -> torch.Tensor:
    """``dx/dt [..., 2] = (theta_dot, theta_acc)`` of states ``x [..., 2]`` (rad, rad/s; 0 upright) under torques
    ``u [..., 1]`` (N m); gymnasium's operation order, so the undamped field matches it bit for bit."""
    theta, theta_dot = x[..., 0], x[..., 1]
    acc = 3 * p.gravity / (2 * p.length) * torch.sin(theta) + 3.0 / (p.mass * p.length**2) * u[..., 0]
    if p.has_damping:
        acc = acc - 3.0 * p.damping / (p.mass * p.length**2) * theta_dot
    return torch.stack((theta_dot, acc), dim=-1)


def pendulum_energy(x: torch.Tensor, p: PendulumParams) -> torch.Tensor:
    """Mechanical energy ``[...]`` (J) of states ``x [..., 2]``: ``m l^2 / 6 theta_dot^2 + m g l / 2 cos theta``."""
    return p.mass * p.length**2 / 6.0 * x[..., 1].square() + p.mass * p.gravity * p.length / 2.0 * torch.cos(x[..., 0])


def pendulum_speed_limit(x: torch.Tensor, p: PendulumParams) -> torch.Tensor:
    """States ``x [..., 2]`` with the angular velocity clipped to ``+-max_speed`` (gymnasium's ``np.clip``)."""
    return torch.cat((x[..., :1], x[..., 1:].clamp(-p.max_speed, p.max_speed)), dim=-1)


def pendulum_cost(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Pendulum-v1's cost ``wrap(theta)^2 + 0.1 theta_dot^2 + 0.001 u^2`` (its reward's negative), batched:
    states ``x [..., 2]``, torques ``u [..., 1]`` -> ``[...]``."""
    c = wrap_angle(x[..., 0]).square() + 0.1 * x[..., 1].square()
    return c + 0.001 * u[..., 0].to(x.dtype).square()


def upright_success(
    states: np.ndarray, dt: float, *, within: float, hold: float, angle_tol: float = 0.2, angle_index: int = 0,
    upright: float = 0.0,
) -> bool:
    """Up and held: ``|wrap(theta - upright)| <= angle_tol`` from some time ``t* <= within`` s to the end, which
    is at least ``hold`` s later.

    Args:
        states: ``[T+1, n]`` closed-loop states.
        dt: control period, s.
        within: latest time to reach upright (and stay), s.
        hold: minimum time upright until the end, s.
        angle_tol: tolerance, rad.
        angle_index: which state entry is the angle.
        upright: the upright angle, rad.
    """
    s = np.asarray(states, dtype=np.float64)
    up = np.abs(wrap_angle(s[:, angle_index] - upright)) <= angle_tol
    if not up[-1]:
        return False
    down = np.flatnonzero(~up)
    t_star = 0 if down.size == 0 else int(down[-1]) + 1
    return t_star * dt <= within + 1e-9 and (len(s) - 1 - t_star) * dt >= hold - 1e-9


class Pendulum(System):
    """Gymnasium's Pendulum-v1 as a vector field (see the module docstring).

    Shapes: ``x [..., 2]`` (theta rad from upright, theta_dot rad/s), ``u [..., 1]`` (torque, N m) -> ``[..., 2]``.
    """

    name = "pendulum"
    Params = PendulumParams
    states = (
        Quantity("theta", "rad", "angle", "pendulum angle θ from upright (rad)"),
        Quantity("theta_dot", "rad/s", "angular_velocity", "angular velocity dθ/dt (rad/s)"),
    )
    controls = (Quantity("torque", "N m", "other", "joint torque u (N m)"),)
    position_index = (0,)
    velocity_index = (1,)
    constants = {
        "gravity": Constant(10.0, floor=1e-3),
        "mass": Constant(1.0, floor=1e-3),
        "length": Constant(1.0, floor=1e-3),
        "damping": Constant(0.05),
    }
    # the torque fixes the scale, so mass and length are identifiable; the damping is what gymnasium lacks
    identify = ("mass", "length", "damping")
    env_id = "physwm/Pendulum-v0"
    reference_env_id = "Pendulum-v1"
    reference_integrator = "semi_implicit_euler"
    reset_low = (-math.pi, -1.0)
    reset_high = (math.pi, 1.0)
    variants = {"nominal": PendulumParams(), "friction": PendulumParams(damping=0.05)}
    true_variant = "friction"
    lqr_q = (1.0, 0.1)
    phase_dims = (0, 1)
    goal_band = 0.2

    dynamics = staticmethod(pendulum_dynamics)
    mechanical_energy = staticmethod(pendulum_energy)
    constraint = staticmethod(pendulum_speed_limit)
    env_integrator = "semi_implicit_euler"

    @classmethod
    def reference_params(cls, env: Any) -> PendulumParams:
        """Constants of a gymnasium ``PendulumEnv`` (its ``g, m, l, dt, max_speed, max_torque``)."""
        names = {"gravity": "g", "mass": "m", "length": "l", "dt": "dt", "max_speed": "max_speed",
                 "max_torque": "max_torque"}  # fmt: skip
        return PendulumParams(**{k: float(getattr(env, a)) for k, a in names.items() if hasattr(env, a)})

    @classmethod
    def reward(cls, state: np.ndarray, control: np.ndarray, next_state: np.ndarray, terminated: bool) -> float:
        """Pendulum-v1's reward ``-(wrap(theta)^2 + 0.1 theta_dot^2 + 0.001 u^2)`` of the state before the step."""
        th, thdot, u = float(state[0]), float(state[1]), float(control[0])
        return -((((th + np.pi) % (2 * np.pi)) - np.pi) ** 2 + 0.1 * thdot**2 + 0.001 * (u**2))

    @classmethod
    def control_bounds(cls, params: PendulumParams) -> tuple[np.ndarray, np.ndarray]:
        """The torque bound ``+-max_torque`` (N m)."""
        t = float(params.max_torque)
        return np.array([-t]), np.array([t])

    @classmethod
    def tasks(cls, params: PendulumParams | None = None) -> dict[str, Task]:
        """``swingup`` (Pendulum-v1's task from its own start distribution, any angle: upright within 6 s and
        held to the end of its 10 s) and ``balance`` (from within 0.1 rad of upright: held for 10 s); the cost
        is Pendulum-v1's."""
        p = PendulumParams() if params is None else params
        dt = float(p.dt)
        return {
            "swingup": Task("swingup", pendulum_cost, 200, partial(upright_success, dt=dt, within=6.0, hold=2.0),
                            horizon=30),
            "balance": Task("balance", pendulum_cost, 200, partial(upright_success, dt=dt, within=0.0, hold=10.0),
                            start_low=(-0.1, -0.1), start_high=(0.1, 0.1), horizon=15),
        }


# --- APHYNITY's damped pendulum ----------------------------------------------------------------------


@dataclass(frozen=True)
class DampedPendulumParams(Parameters):
    """Constants of APHYNITY's damped pendulum (their defaults: T0 = 6 s, alpha = 0.2).

    Attributes:
        omega0: natural angular frequency ``2 pi / T0``, rad/s.
        alpha: damping rate, 1/s.
        dt: sampling period of its environment, s.
    """

    omega0: Any = 2 * math.pi / 6
    alpha: Any = 0.2
    dt: float = 0.5

    positive_fields = ("omega0", "dt")
    nonnegative_fields = ("alpha",)


def damped_pendulum_dynamics(x: torch.Tensor, u: torch.Tensor, p: DampedPendulumParams) -> torch.Tensor:
    """``dx/dt [..., 2] = (theta_dot, -omega0^2 sin theta - alpha theta_dot)`` of ``x [..., 2]`` (rad from hanging,
    rad/s); ``u [..., 0]`` (no control)."""
    theta, theta_dot = x[..., 0], x[..., 1]
    return torch.stack((theta_dot, -(p.omega0 * p.omega0) * torch.sin(theta) - p.alpha * theta_dot), dim=-1)


def damped_pendulum_energy(x: torch.Tensor, p: DampedPendulumParams) -> torch.Tensor:
    """Energy per unit moment of inertia ``[...]`` (J / (kg m^2), i.e. 1/s^2): ``theta_dot^2 / 2 - omega0^2 cos
    theta``; ``dE/dt = -alpha theta_dot^2``."""
    return 0.5 * x[..., 1].square() - (p.omega0 * p.omega0) * torch.cos(x[..., 0])


class DampedPendulum(System):
    """APHYNITY's autonomous damped pendulum (see the module docstring).

    Shapes: ``x [..., 2]`` (theta rad from hanging, theta_dot rad/s), ``u [..., 0]`` -> ``[..., 2]``.
    """

    name = "damped_pendulum"
    Params = DampedPendulumParams
    states = (
        Quantity("theta", "rad", "angle", "pendulum angle θ from hanging (rad)"),
        Quantity("theta_dot", "rad/s", "angular_velocity", "angular velocity dθ/dt (rad/s)"),
    )
    controls = ()
    position_index = (0,)
    velocity_index = (1,)
    constants = {"omega0": Constant(1.0, floor=1e-3), "alpha": Constant(0.1)}
    identify = ("omega0", "alpha")
    env_id = "physwm/DampedPendulum-v0"
    reset_low = (-1.0, -1.0)
    reset_high = (1.0, 1.0)
    variants = {"aphynity": DampedPendulumParams(), "frictionless": DampedPendulumParams(alpha=0.0)}
    true_variant = "aphynity"
    phase_dims = (0, 1)

    dynamics = staticmethod(damped_pendulum_dynamics)
    mechanical_energy = staticmethod(damped_pendulum_energy)

    @classmethod
    def substeps(cls, params: DampedPendulumParams) -> int:
        """50 RK4 sub-steps per sampling period (10 ms at dt = 0.5 s: global error about 1e-9 rad)."""
        return max(1, math.ceil(float(params.dt) / 0.01))
