r"""Acrobot: two links hanging from a fixed pivot, the joint between them driven by a torque (gymnasium ``Acrobot-v1``).

State (gymnasium's order and units; ``theta1 = 0``: the first link hanging down; ``theta2``: the second
link's angle **relative** to the first):

    ====  ========  =====  ====================================
    idx   name      unit   meaning
    ====  ========  =====  ====================================
    0     theta1    rad    angle of link 1 from hanging
    1     theta2    rad    angle of link 2 relative to link 1
    2     dtheta1   rad/s  angular velocity of link 1
    3     dtheta2   rad/s  angular velocity of link 2 (relative)
    ====  ========  =====  ====================================

Control: ``u[..., 0]``, the torque on the joint between the links (N m); gymnasium's three actions apply
-1, 0 and +1 N m.

Equations: Sutton and Barto's ("book") dynamics, written as in gymnasium's ``_dsdt``, operation for operation,
with viscous damping at the two joints that gymnasium leaves out (``damping_1``, ``damping_2``, N m s/rad;
zero by default): the unactuated first joint's equation gains ``b1 dtheta1`` in ``phi1``, the actuated
second joint's torque becomes ``u - b2 dtheta2``. Gymnasium integrates one classical RK4 step over
``dt = 0.2`` s, then wraps both angles to ``[-pi, pi]`` and bounds the velocities to ``+-4 pi`` and ``+-9 pi``
rad/s; the system declares that wrapping and bounding as its ``constraint`` (applied by every integrator
after each step), so :class:`~physwm.integrators.ClassicRK4` (``"rk4_classic"``, the default integrator of
``physwm/Acrobot-v0``: RK4 rounded as gymnasium rounds it) at ``dt`` reproduces ``Acrobot-v1`` bit for bit
(tested to 1e-9 over 200 random-action steps; :class:`~physwm.integrators.RK4` agrees to about 1e-14 per
step, a difference that chaotic swings over the top amplify). Gymnasium's reset draws the start state in
float32; physwm's in float64.

Termination (``terminate=True``, gymnasium's rule): the tip rises above the bar, ``-l1 cos(theta1) - l2
cos(theta1 + theta2) > 1`` m, which is the *goal* of the swing-up task (reward -1 per step, 0 on the
terminating step).

Mechanical energy (zero potential at the pivot): ``E = d1 dtheta1^2 / 2 + d2 dtheta1 dtheta2 + (m2 lc2^2 + I2)
dtheta2^2 / 2 - (m1 lc1 + m2 l1) g cos(theta1) - m2 lc2 g cos(theta1 + theta2)``, conserved without torque and
damping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .base import Constant, Parameters, Quantity, System, Task

__all__ = [
    "AcrobotParams",
    "Acrobot",
    "acrobot_dynamics",
    "acrobot_energy",
    "tip_height",
    "GOAL_HEIGHT",
    "swingup_cost",
    "swingup_success",
]

#: Height of the bar above the pivot the tip must pass (m), gymnasium's.
GOAL_HEIGHT = 1.0


@dataclass(frozen=True)
class AcrobotParams(Parameters):
    """Constants of Acrobot-v1 (its defaults) and joint damping it leaves out.

    Attributes:
        link_length_1, link_length_2: link lengths, m (gymnasium's dynamics use only the first; the tip
            height both).
        link_mass_1, link_mass_2: link masses, kg.
        link_com_pos_1, link_com_pos_2: distance from each link's joint to its centre of mass, m.
        link_moi: moment of inertia of each link about its centre of mass, kg m^2.
        gravity: m/s^2 (gymnasium's 9.8).
        dt: control period, s.
        max_vel_1, max_vel_2: velocity bounds, rad/s.
        max_torque: torque bound, N m (gymnasium's actions: -1, 0, +1 times this).
        damping_1, damping_2: viscous damping at the pivot and at the actuated joint, N m s/rad.
    """

    link_length_1: Any = 1.0
    link_length_2: Any = 1.0
    link_mass_1: Any = 1.0
    link_mass_2: Any = 1.0
    link_com_pos_1: Any = 0.5
    link_com_pos_2: Any = 0.5
    link_moi: Any = 1.0
    gravity: Any = 9.8
    dt: float = 0.2
    max_vel_1: float = 4 * math.pi
    max_vel_2: float = 9 * math.pi
    max_torque: float = 1.0
    damping_1: Any = 0.0
    damping_2: Any = 0.0

    positive_fields = ("link_length_1", "link_length_2", "link_mass_1", "link_mass_2", "link_com_pos_1",
                       "link_com_pos_2", "link_moi", "gravity", "dt", "max_vel_1", "max_vel_2", "max_torque")
    nonnegative_fields = ("damping_1", "damping_2")

    @property
    def has_friction(self) -> bool:
        """True if a damping term is non-zero or a tensor (a learnable damping may leave zero)."""
        return any(isinstance(v, torch.Tensor) or v != 0.0 for v in (self.damping_1, self.damping_2))


def acrobot_dynamics(x: torch.Tensor, u: torch.Tensor, p: AcrobotParams) -> torch.Tensor:
    """``dx/dt [..., 4]`` of states ``x [..., 4]`` (rad, rad, rad/s, rad/s) under torques ``u [..., 1]`` (N m).

    Gymnasium's ``_dsdt`` ("book" dynamics) term by term, so the undamped field matches it bit for bit.
    """
    theta1, theta2, dtheta1, dtheta2 = x.unbind(-1)
    a = u[..., 0]
    m1, m2, l1 = p.link_mass_1, p.link_mass_2, p.link_length_1
    lc1, lc2, I1, I2, g = p.link_com_pos_1, p.link_com_pos_2, p.link_moi, p.link_moi, p.gravity
    pi = math.pi
    if p.has_friction:
        a = a - p.damping_2 * dtheta2
    d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * torch.cos(theta2)) + I1 + I2
    d2 = m2 * (lc2**2 + l1 * lc2 * torch.cos(theta2)) + I2
    phi2 = m2 * lc2 * g * torch.cos(theta1 + theta2 - pi / 2.0)
    phi1 = (
        -m2 * l1 * lc2 * dtheta2**2 * torch.sin(theta2)
        - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * torch.sin(theta2)
        + (m1 * lc1 + m2 * l1) * g * torch.cos(theta1 - pi / 2)
        + phi2
    )
    if p.has_friction:
        phi1 = phi1 + p.damping_1 * dtheta1
    ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1**2 * torch.sin(theta2) - phi2) / (
        m2 * lc2**2 + I2 - d2**2 / d1
    )
    ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
    return torch.stack((dtheta1, dtheta2, ddtheta1, ddtheta2), dim=-1)


def acrobot_energy(x: torch.Tensor, p: AcrobotParams) -> torch.Tensor:
    """Mechanical energy ``[...]`` (J) of states ``x [..., 4]`` (zero potential at the pivot)."""
    theta1, theta2, dtheta1, dtheta2 = x.unbind(-1)
    m1, m2, l1 = p.link_mass_1, p.link_mass_2, p.link_length_1
    lc1, lc2, inertia, g = p.link_com_pos_1, p.link_com_pos_2, p.link_moi, p.gravity
    c2 = torch.cos(theta2)
    d11 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * c2) + 2 * inertia
    d12 = m2 * (lc2**2 + l1 * lc2 * c2) + inertia
    d22 = m2 * lc2**2 + inertia
    kinetic = 0.5 * d11 * dtheta1**2 + d12 * dtheta1 * dtheta2 + 0.5 * d22 * dtheta2**2
    potential = -(m1 * lc1 + m2 * l1) * g * torch.cos(theta1) - m2 * lc2 * g * torch.cos(theta1 + theta2)
    return kinetic + potential


def _wrap_pi(v: torch.Tensor) -> torch.Tensor:
    """Gymnasium's ``wrap(v, -pi, pi)``: subtract or add ``2 pi`` until ``v`` lies in ``[-pi, pi]``."""
    pi, diff = math.pi, math.pi - (-math.pi)
    while bool((v > pi).any()):
        v = torch.where(v > pi, v - diff, v)
    while bool((v < -pi).any()):
        v = torch.where(v < -pi, v + diff, v)
    return v


def acrobot_bounds(x: torch.Tensor, p: AcrobotParams) -> torch.Tensor:
    """States ``x [..., 4]`` with both angles wrapped to ``[-pi, pi]`` and the velocities bounded (gymnasium)."""
    theta1, theta2, dtheta1, dtheta2 = x.unbind(-1)
    return torch.stack((_wrap_pi(theta1), _wrap_pi(theta2), dtheta1.clamp(-p.max_vel_1, p.max_vel_1),
                        dtheta2.clamp(-p.max_vel_2, p.max_vel_2)), dim=-1)  # fmt: skip


def tip_height(x: torch.Tensor, p: AcrobotParams | None = None) -> torch.Tensor:
    """Height of the tip above the pivot ``[...]`` (m) of states ``x [..., 4]``."""
    p = AcrobotParams() if p is None else p
    return -p.link_length_1 * torch.cos(x[..., 0]) - p.link_length_2 * torch.cos(x[..., 0] + x[..., 1])


def swingup_cost(
    x: torch.Tensor, u: torch.Tensor, *, params: AcrobotParams | None = None, energy_weight: float = 1.0
) -> torch.Tensor:
    """Running cost of the swing-up task, batched ``x [..., 4]``, ``u [..., 1]`` -> ``[...]``: how far the tip is
    below the bar, ``relu(GOAL_HEIGHT - height)`` (m), plus ``energy_weight`` times the energy still missing to
    rest upright, ``relu(E_up - E) / |E_up|`` (energy shaping: with 1 N m the links must be pumped over several
    swings, which a planning horizon of a few seconds only sees through the energy)."""
    p = AcrobotParams() if params is None else params
    c = torch.relu(GOAL_HEIGHT - tip_height(x, p))
    if energy_weight:
        up = x.new_tensor([math.pi, 0.0, 0.0, 0.0])
        e_up = acrobot_energy(up, p)
        c = c + energy_weight * torch.relu(e_up - acrobot_energy(x, p)) / e_up.abs()
    return c


def swingup_success(states: np.ndarray, params: AcrobotParams | None = None) -> bool:
    """Acrobot-v1's goal: the tip of the last state ``states[-1]`` is above the bar (``> GOAL_HEIGHT`` m)."""
    s = torch.as_tensor(np.asarray(states, dtype=np.float64)[-1])
    return bool(tip_height(s, params) > GOAL_HEIGHT)


class Acrobot(System):
    """Gymnasium's Acrobot-v1 as a vector field (see the module docstring).

    Shapes: ``x [..., 4]``, ``u [..., 1]`` (torque, N m) -> ``[..., 4]``.
    """

    name = "acrobot"
    Params = AcrobotParams
    states = (
        Quantity("theta1", "rad", "angle", "link 1 angle θ1 (rad)"),
        Quantity("theta2", "rad", "angle", "link 2 relative angle θ2 (rad)"),
        Quantity("dtheta1", "rad/s", "angular_velocity", "link 1 angular velocity dθ1/dt (rad/s)"),
        Quantity("dtheta2", "rad/s", "angular_velocity", "link 2 angular velocity dθ2/dt (rad/s)"),
    )
    controls = (Quantity("torque", "N m", "other", "joint torque u (N m)"),)
    position_index = (0, 1)
    velocity_index = (2, 3)
    constants = {
        "link_mass_1": Constant(1.0, floor=1e-3),
        "link_mass_2": Constant(1.0, floor=1e-3),
        "link_com_pos_1": Constant(0.5, floor=1e-3),
        "link_com_pos_2": Constant(0.5, floor=1e-3),
        "link_moi": Constant(1.0, floor=1e-3),
        "damping_1": Constant(0.05),
        "damping_2": Constant(0.05),
    }
    identify = ("link_mass_2", "link_com_pos_2", "damping_1", "damping_2")
    env_id = "physwm/Acrobot-v0"
    reference_env_id = "Acrobot-v1"
    reference_integrator = "rk4_classic"
    reset_low = (-0.1, -0.1, -0.1, -0.1)
    reset_high = (0.1, 0.1, 0.1, 0.1)
    variants = {"nominal": AcrobotParams(), "friction": AcrobotParams(damping_1=0.05, damping_2=0.05)}
    true_variant = "friction"
    lqr_q = (1.0, 1.0, 0.1, 0.1)
    phase_dims = (0, 2)

    dynamics = staticmethod(acrobot_dynamics)
    mechanical_energy = staticmethod(acrobot_energy)
    constraint = staticmethod(acrobot_bounds)
    env_integrator = "rk4_classic"

    @classmethod
    def reference_params(cls, env: Any) -> AcrobotParams:
        """Constants of a gymnasium ``AcrobotEnv`` (its ``LINK_*``, ``MAX_VEL_*``, ``AVAIL_TORQUE`` and ``dt``)."""
        names = {"link_length_1": "LINK_LENGTH_1", "link_length_2": "LINK_LENGTH_2", "link_mass_1": "LINK_MASS_1",
                 "link_mass_2": "LINK_MASS_2", "link_com_pos_1": "LINK_COM_POS_1", "link_com_pos_2": "LINK_COM_POS_2",
                 "link_moi": "LINK_MOI", "dt": "dt", "max_vel_1": "MAX_VEL_1", "max_vel_2": "MAX_VEL_2"}  # fmt: skip
        values = {k: float(getattr(env, a)) for k, a in names.items() if hasattr(env, a)}
        if hasattr(env, "AVAIL_TORQUE"):
            values["max_torque"] = float(max(abs(float(t)) for t in env.AVAIL_TORQUE))
        return AcrobotParams(**values)

    @classmethod
    def failed(cls, state: np.ndarray, params: Any) -> bool:
        """Acrobot-v1's termination: the tip above the bar (the goal of its task, not a failure)."""
        s = np.asarray(state, dtype=np.float64)
        l1, l2 = float(params.link_length_1), float(params.link_length_2)
        return bool(-l1 * np.cos(s[0]) - l2 * np.cos(s[1] + s[0]) > GOAL_HEIGHT)

    @classmethod
    def reward(cls, state: np.ndarray, control: np.ndarray, next_state: np.ndarray, terminated: bool) -> float:
        """Acrobot-v1's reward: -1 for every step that does not reach the goal, 0 for the one that does."""
        return 0.0 if terminated else -1.0

    @classmethod
    def action_levels(cls, params: AcrobotParams) -> tuple[float, ...]:
        """Acrobot-v1's three actions: torques -max_torque, 0, +max_torque (N m)."""
        t = float(params.max_torque)
        return (-t, 0.0, t)

    @classmethod
    def control_bounds(cls, params: AcrobotParams) -> tuple[np.ndarray, np.ndarray]:
        """The torque bound ``+-max_torque`` (N m)."""
        t = float(params.max_torque)
        return np.array([-t]), np.array([t])

    @classmethod
    def tasks(cls, params: AcrobotParams | None = None) -> dict[str, Task]:
        """``swingup``: Acrobot-v1's task, from hanging (its reset), raise the tip above the bar within 500
        steps (100 s); reaching it ends the episode in success. Cost: :func:`swingup_cost` (height and energy;
        CEM on the true equations reaches the bar in 65-80 steps)."""
        p = AcrobotParams() if params is None else AcrobotParams.from_dict(params.to_dict())

        def cost(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
            return swingup_cost(x, u, params=p)

        def success(states: np.ndarray) -> bool:
            return swingup_success(states, p)

        return {"swingup": Task("swingup", cost, 500, success, horizon=20, terminal_success=True)}
