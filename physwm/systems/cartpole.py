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

Everything about CartPole lives in this file: the constants, the equations and energy, the description
(state table, learnable constants, residual features), gymnasium's termination rule and the control
tasks (balance with an LQR terminal cost, swing-up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from .base import Constant, Parameters, Quantity, System, Task, wrap_angle
from .costs import QuadraticCost
from .library import smooth_sign
from .linear import lqr

__all__ = [
    "CartPoleParams",
    "CartPole",
    "cartpole_dynamics",
    "cartpole_energy",
    "FRICTION_PARAMS",
    "DRAG_PARAMS",
    "cartpole_library",
    "cartpole_mass_matrix",
    "X_THRESHOLD",
    "THETA_THRESHOLD",
    "balance_cost",
    "balance_terminal_cost",
    "balance_success",
    "swingup_cost",
    "swingup_success",
]

#: CartPole-v1's termination thresholds: cart position (m) and pole angle (rad, 12 degrees).
X_THRESHOLD = 2.4
THETA_THRESHOLD = 12 * 2 * math.pi / 360


@dataclass(frozen=True)
class CartPoleParams(Parameters):
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
        cart_drag: quadratic (aerodynamic) drag on the cart c_d, N s^2/m^2: a force ``-c_d x_dot |x_dot|``.
        pole_drag: quadratic damping at the pole c_p, N m s^2/rad^2: a torque ``-c_p theta_dot |theta_dot|``
            (the aerodynamic drag of the rotating rod). Neither is a learnable constant of the nominal model:
            they are effects of another form than its friction family (see ``DRAG_PARAMS``).

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
    cart_drag: Any = 0.0
    pole_drag: Any = 0.0

    positive_fields = ("gravity", "masscart", "masspole", "length", "force_mag", "tau")
    nonnegative_fields = ("cart_viscous", "cart_coulomb", "pole_damping", "coulomb_smoothing", "cart_drag",
                          "pole_drag")

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
        terms = (self.cart_viscous, self.cart_coulomb, self.pole_damping, self.cart_drag, self.pole_drag)
        return any(isinstance(v, torch.Tensor) or v != 0.0 for v in terms)


#: A reference "true" system with friction (a moderate, clearly measurable gap to the frictionless
#: equations): viscous cart friction 0.1 N s/m, Coulomb cart friction 0.1 N, pole joint damping
#: 0.005 N m s/rad (a damping term of 0.1 * theta_dot in the pole's angular equation, about 5% of
#: gravity's during full swings).
FRICTION_PARAMS = CartPoleParams(cart_viscous=0.1, cart_coulomb=0.1, pole_damping=0.005)

#: The friction truth plus effects of another form than the nominal friction family (what
#: :func:`physwm.discover` is for): aerodynamic drag on the cart, ``0.5 rho C_d A = 0.5 * 1.2 kg/m^3 * 1.0 *
#: 0.25 m^2 = 0.15 N s^2/m^2`` (a 50 cm x 50 cm cart face), and the pole's own aerodynamic drag as it turns,
#: ``rho C_d d L^4 / 8 = 1.2 * 1.2 * 0.03 m * (1 m)^4 / 8 ~= 0.005 N m s^2/rad^2`` (a 1 m pole 3 cm wide): at
#: 6 rad/s a torque of 0.19 N m against gravity's 0.49 N m at horizontal; at 2 m/s a force of 0.6 N.
DRAG_PARAMS = FRICTION_PARAMS.replace(cart_drag=0.15, pole_drag=0.005)


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
        force = force - p.cart_drag * x_dot * x_dot.abs()
    # Same operation order as gymnasium's CartPole-v1, so the frictionless field matches it bit for bit.
    temp = (force + p.polemass_length * (theta_dot * theta_dot) * sintheta) / p.total_mass
    numerator = p.gravity * sintheta - costheta * temp
    if p.has_friction:
        numerator = numerator - (p.pole_damping * theta_dot + p.pole_drag * theta_dot * theta_dot.abs()) / (
            p.polemass_length
        )
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


def cartpole_mass_matrix(x: torch.Tensor, p: CartPoleParams) -> torch.Tensor:
    r"""Generalised inertia of ``(x, theta)`` at states ``x [..., 4]``: ``[..., 2, 2]`` (kg, kg m, kg m^2).

    .. math::

        M(\theta) = \begin{pmatrix} m_c + m & m l\cos\theta \\ m l\cos\theta & \tfrac43 m l^2 \end{pmatrix}

    :func:`cartpole_dynamics` solves ``M (x_ddot, theta_ddot) = (F - F_fr + m l theta_dot^2 sin theta,
    m g l sin theta - b_p theta_dot - c_p theta_dot |theta_dot|)``: a force on the cart (N) and a torque at
    the hinge (N m) enter through ``M^-1``.
    """
    c = torch.cos(x[..., 2])
    ml = p.polemass_length * c
    total = torch.as_tensor(p.total_mass, dtype=x.dtype).expand_as(c)
    inertia = torch.as_tensor(4.0 / 3.0 * p.masspole * p.length**2, dtype=x.dtype).expand_as(c)
    return torch.stack((torch.stack((total, ml), -1), torch.stack((ml, inertia), -1)), -2)


def cartpole_library() -> dict:
    """CartPole's library of candidate terms ``name -> f(x [..., 4], u [..., 1]) -> [...]`` (27 terms).

    The monomials of the velocities ``x_dot``, ``theta_dot`` up to degree 3 (9); ``x_dot*|x_dot|``,
    ``theta_dot*|theta_dot|`` (quadratic drag); ``sgn(x_dot)``, ``sgn(theta_dot)`` (dry friction, smoothed:
    :func:`physwm.systems.library.smooth_sign`); ``sin(theta)`` and ``cos(theta)`` times each velocity, each
    squared velocity and the force, and the force alone (11); ``sin(theta)``, ``cos(theta)``,
    ``sin(theta)*cos(theta)`` (mis-modelled gravity and inertia coupling).
    """
    v = {"x_dot": lambda x, u: x[..., 1], "theta_dot": lambda x, u: x[..., 3]}
    names = list(v)
    lib: dict = {}
    for i, j in ((1, 0), (0, 1), (2, 0), (1, 1), (0, 2), (3, 0), (2, 1), (1, 2), (0, 3)):  # x_dot^i theta_dot^j
        name = "*".join(n if k == 1 else f"{n}^{k}" for n, k in zip(names, (i, j)) if k)
        lib[name] = lambda x, u, i=i, j=j: v["x_dot"](x, u) ** i * v["theta_dot"](x, u) ** j
    for a in names:
        lib[f"{a}*|{a}|"] = lambda x, u, a=a: v[a](x, u) * v[a](x, u).abs()
        lib[f"sgn({a})"] = lambda x, u, a=a: smooth_sign(v[a](x, u))
    force = lambda x, u: u[..., 0].to(x.dtype)  # noqa: E731
    for fname, fn in (("sin(theta)", torch.sin), ("cos(theta)", torch.cos)):
        for a in names:
            lib[f"{fname}*{a}"] = lambda x, u, fn=fn, a=a: fn(x[..., 2]) * v[a](x, u)
            lib[f"{fname}*{a}^2"] = lambda x, u, fn=fn, a=a: fn(x[..., 2]) * v[a](x, u).square()
        lib[f"{fname}*force"] = lambda x, u, fn=fn: fn(x[..., 2]) * force(x, u)
    lib["force"] = force
    lib["sin(theta)"] = lambda x, u: torch.sin(x[..., 2])
    lib["cos(theta)"] = lambda x, u: torch.cos(x[..., 2])
    lib["sin(theta)*cos(theta)"] = lambda x, u: torch.sin(x[..., 2]) * torch.cos(x[..., 2])
    return lib


# --- control tasks --------------------------------------------------------------------------------


def balance_cost(
    x: torch.Tensor,
    u: torch.Tensor,
    *,
    x_threshold: float = X_THRESHOLD,
    theta_threshold: float = THETA_THRESHOLD,
    failure_cost: float = 100.0,
    velocity_weight: float = 0.01,
    control_weight: float = 0.0,
) -> torch.Tensor:
    """Running cost of CartPole-v1's balancing task, batched.

    ``(theta / theta_th)^2 + 0.1 (x / x_th)^2 + velocity_weight (x_dot^2 + theta_dot^2)
    + control_weight u^2 + failure_cost * [|x| > x_th or |theta| > theta_th]``: keep the pole upright and
    the cart near the centre, and above all never cross the termination thresholds.

    Args:
        x: states ``[..., 4]`` (x m, x_dot m/s, theta rad, theta_dot rad/s).
        u: forces ``[..., 1]``, N.
        x_threshold: cart position bound, m.
        theta_threshold: pole angle bound, rad (12 degrees).
        failure_cost: cost of a state beyond a bound.
        velocity_weight: weight of the squared velocities ((m/s)^-2, (rad/s)^-2).
        control_weight: weight of the squared force, N^-2.

    Returns:
        Cost ``[...]`` (dimensionless), same dtype as ``x``.
    """
    pos, x_dot, theta, theta_dot = x[..., 0], x[..., 1], x[..., 2], x[..., 3]
    c = (theta / theta_threshold).square() + 0.1 * (pos / x_threshold).square()
    if velocity_weight:
        c = c + velocity_weight * (x_dot.square() + theta_dot.square())
    if control_weight:
        c = c + control_weight * u[..., 0].to(x.dtype).square()
    failed = (pos.abs() > x_threshold) | (theta.abs() > theta_threshold)
    return c + failure_cost * failed.to(x.dtype)


def balance_terminal_cost(
    params: CartPoleParams | None = None,
    *,
    x_threshold: float = X_THRESHOLD,
    theta_threshold: float = THETA_THRESHOLD,
    velocity_weight: float = 0.01,
    control_weight: float = 1e-3,
) -> QuadraticCost:
    """Terminal cost of the balance task: the infinite-horizon LQR cost-to-go ``x^T P x`` about upright.

    ``P`` solves the discrete Riccati equation of the CartPole linearised at upright rest (see
    :func:`physwm.systems.linear.lqr`) with the state weights of :func:`balance_cost`
    (``diag(0.1 / x_th^2, velocity_weight, 1 / theta_th^2, velocity_weight)``) and ``R = control_weight``.
    It charges a plan for where its last state leads *after* the horizon: without it a 30-step
    (0.6 s) search cannot see the cart drifting towards the end of the track, and CEM lets about one
    CartPole-v1 episode in five run off it; with it the cart stays within a few decimetres.

    Args:
        params: constants to linearise (default gymnasium's CartPole-v1).

    Returns:
        A :class:`~physwm.systems.costs.QuadraticCost` (``x [..., 4] -> [...]``).
    """
    p = CartPoleParams() if params is None else CartPoleParams.from_dict(params.to_dict())
    Q = np.diag([0.1 / x_threshold**2, velocity_weight, 1.0 / theta_threshold**2, velocity_weight])
    return QuadraticCost(lqr(CartPole(p), p.tau, Q, np.array([[control_weight]])).P)


def swingup_cost(
    x: torch.Tensor,
    u: torch.Tensor,
    *,
    x_weight: float = 0.05,
    x_limit: float = 2.0,
    wall_cost: float = 10.0,
    theta_dot_weight: float = 0.01,
    x_dot_weight: float = 0.0,
    control_weight: float = 1e-4,
) -> torch.Tensor:
    """Running cost of the swing-up task (pole from hanging to upright, then held), batched.

    ``(1 - cos theta) + x_weight x^2 + wall_cost * relu(|x| - x_limit)^2
    + theta_dot_weight theta_dot^2 + control_weight u^2``. ``1 - cos theta`` is 0 upright and 2
    hanging, periodic in theta, so the number of turns does not matter; the soft wall keeps the cart
    on a track of +-``x_limit`` m.

    Args:
        x: states ``[..., 4]`` (x m, x_dot m/s, theta rad, theta_dot rad/s).
        u: forces ``[..., 1]``, N.
        x_weight: weight of the squared cart position, m^-2.
        x_limit: half-length of the track the cart should stay on, m.
        wall_cost: weight of the squared excursion beyond ``x_limit``, m^-2.
        theta_dot_weight: weight of the squared angular velocity, (rad/s)^-2.
        control_weight: weight of the squared force, N^-2.

    Returns:
        Cost ``[...]`` (dimensionless), same dtype as ``x``.
    """
    pos, theta, theta_dot = x[..., 0], x[..., 2], x[..., 3]
    c = (1.0 - torch.cos(theta)) + x_weight * pos.square() + theta_dot_weight * theta_dot.square()
    c = c + wall_cost * torch.relu(pos.abs() - x_limit).square()
    if x_dot_weight:
        c = c + x_dot_weight * x[..., 1].square()
    if control_weight:
        c = c + control_weight * u[..., 0].to(x.dtype).square()
    return c


def balance_success(
    states: np.ndarray, *, steps: int | None = None, x_threshold: float = X_THRESHOLD,
    theta_threshold: float = THETA_THRESHOLD,
) -> bool:
    """Balanced: every state within CartPole-v1's bounds (and at least ``steps`` transitions, if given).

    Args:
        states: ``[T+1, 4]`` closed-loop states (x m, x_dot m/s, theta rad, theta_dot rad/s).
        steps: episode length required, control steps (CartPole-v1: 500); ``run_episode`` checks the
            length itself.
    """
    s = np.asarray(states, dtype=np.float64)
    if steps is not None and s.shape[0] - 1 < steps:
        return False
    ok = (np.abs(s[:, 0]) <= x_threshold) & (np.abs(s[:, 2]) <= theta_threshold)
    return bool(ok.all())


def swingup_success(
    states: np.ndarray, dt: float, *, within: float = 5.0, hold: float = 2.0, angle_tol: float = THETA_THRESHOLD,
    x_limit: float = X_THRESHOLD,
) -> bool:
    """Swung up and held: upright from some time ``t* <= within`` s to the end, which is ``>= hold`` s later.

    Upright means ``|wrap(theta)| <= angle_tol`` (rad, 12 degrees by default) and ``|x| <= x_limit`` m.

    Args:
        states: ``[T+1, 4]`` closed-loop states.
        dt: control period, s.
        within: latest time to reach upright (and stay), s.
        hold: minimum time upright until the end of the episode, s.
    """
    s = np.asarray(states, dtype=np.float64)
    up = (np.abs(wrap_angle(s[:, 2])) <= angle_tol) & (np.abs(s[:, 0]) <= x_limit)
    if not up[-1]:
        return False
    down = np.flatnonzero(~up)
    t_star = 0 if down.size == 0 else int(down[-1]) + 1  # first index of the final upright stretch
    return t_star * dt <= within + 1e-9 and (len(s) - 1 - t_star) * dt >= hold - 1e-9


# --- the system -----------------------------------------------------------------------------------


class CartPole(System):
    """CartPole vector field ``dx/dt = f(x, u)`` (see the module docstring for the equations).

    Args:
        params: physical constants; gymnasium CartPole-v1 by default.
        learnable: names of constants to turn into learnable, bounded parameters (any of
            ``CartPole.constants``), for system identification by gradient descent (see
            :class:`~physwm.systems.base.System`).

    Shapes: ``x [..., 4]``, ``u [..., 1]`` -> ``[..., 4]``.
    """

    name = "cartpole"
    Params = CartPoleParams
    states = (
        Quantity("x", "m", "position", "cart position x (m)"),
        Quantity("x_dot", "m/s", "velocity", "cart velocity dx/dt (m/s)"),
        Quantity("theta", "rad", "angle", "pole angle θ (rad)"),
        Quantity("theta_dot", "rad/s", "angular_velocity", "pole angular velocity dθ/dt (rad/s)"),
    )
    controls = (Quantity("force", "N", "other", "force on the cart F (N)"),)
    position_index = (0, 2)
    velocity_index = (1, 3)
    # Constants that may be identified, with the scale of ``raw = value / scale`` (a scale near the
    # expected size keeps Adam's steps, about lr in raw units, meaningful in physical units). Masses,
    # length and gravity are floored at 1e-3 of their scale (the equations divide by them).
    constants = {
        "gravity": Constant(10.0, floor=1e-3),
        "masscart": Constant(1.0, floor=1e-3),
        "masspole": Constant(0.1, floor=1e-3),
        "length": Constant(0.5, floor=1e-3),
        "cart_viscous": Constant(0.1),
        "cart_coulomb": Constant(0.1),
        "pole_damping": Constant(0.01),
    }
    # Identified by default (explicit model and the physics half of the hybrid). Gravity is known; the
    # masses and the half-length set the inertia, the friction terms are what the nominal CartPole-v1
    # model lacks. All are identifiable from force-driven data (the force fixes the scale).
    identify = ("length", "masspole", "masscart", "cart_viscous", "cart_coulomb", "pole_damping")
    env_id = "physwm/CartPole-v0"
    reference_env_id = "CartPole-v1"
    reference_integrator = "euler"
    reset_low = (-0.05, -0.05, -0.05, -0.05)
    reset_high = (0.05, 0.05, 0.05, 0.05)
    variants = {"nominal": CartPoleParams(), "friction": FRICTION_PARAMS, "drag": DRAG_PARAMS}
    true_variant = "friction"
    lqr_q = (1.0, 1.0, 10.0, 1.0)
    phase_dims = (2, 3)
    goal_band = THETA_THRESHOLD

    dynamics = staticmethod(cartpole_dynamics)
    mechanical_energy = staticmethod(cartpole_energy)
    mass_matrix = staticmethod(cartpole_mass_matrix)

    @classmethod
    def state_features(cls, x: torch.Tensor) -> torch.Tensor:
        """``[sin theta, cos theta, x_dot, theta_dot]`` ``[..., 4]``: the cart's position is left out (the
        dynamics do not depend on it), so a learned correction cannot fit spurious position effects."""
        theta = x[..., 2]
        return torch.stack((torch.sin(theta), torch.cos(theta), x[..., 1], x[..., 3]), dim=-1)

    @classmethod
    def library(cls) -> dict:
        """CartPole's candidate terms for missing physics: :func:`cartpole_library`."""
        return cartpole_library()

    @classmethod
    def failed(cls, state: np.ndarray, params: Any) -> bool:
        """CartPole-v1's termination: ``|x| > 2.4`` m or ``|theta| > 12`` degrees."""
        x, theta = float(state[0]), float(state[2])
        return bool(x < -X_THRESHOLD or x > X_THRESHOLD or theta < -THETA_THRESHOLD or theta > THETA_THRESHOLD)

    @classmethod
    def failed_batch(cls, states: np.ndarray, params: Any) -> np.ndarray:
        """:meth:`failed` of ``states [B, 4]`` at once -> bool ``[B]``."""
        s = np.asarray(states, dtype=np.float64)
        x, theta = s[:, 0], s[:, 2]
        return (x < -X_THRESHOLD) | (x > X_THRESHOLD) | (theta < -THETA_THRESHOLD) | (theta > THETA_THRESHOLD)

    @classmethod
    def reward_batch(
        cls, states: np.ndarray, controls: np.ndarray, next_states: np.ndarray, terminated: np.ndarray
    ) -> np.ndarray:
        """CartPole-v1's reward for ``B`` transitions: ones ``[B]``."""
        return np.ones(len(states), dtype=np.float64)

    @classmethod
    def observation_high(cls, terminate: bool) -> np.ndarray:
        """CartPole-v1's observation bound when episodes terminate (twice the thresholds), else unbounded."""
        if terminate:
            return np.array([X_THRESHOLD * 2, np.inf, THETA_THRESHOLD * 2, np.inf], np.float32)
        return np.full(4, np.inf, dtype=np.float32)

    @classmethod
    def reward(cls, state: np.ndarray, control: np.ndarray, next_state: np.ndarray, terminated: bool) -> float:
        """CartPole-v1's reward: +1 for every step, including the terminating one."""
        return 1.0

    @classmethod
    def action_levels(cls, params: CartPoleParams) -> tuple[float, ...]:
        """CartPole-v1's two actions: push left (-force_mag) and right (+force_mag), N."""
        f = float(params.force_mag)
        return (-f, f)

    @classmethod
    def control_bounds(cls, params: CartPoleParams) -> tuple[np.ndarray, np.ndarray]:
        """The force bound ``+-force_mag`` (N)."""
        f = float(params.force_mag)
        return np.array([-f]), np.array([f])

    @classmethod
    def substeps(cls, params: CartPoleParams) -> int:
        """Sub-steps per control period the environments take by default: 1 without friction, 10 with
        (the smoothed Coulomb term switches within a few milliseconds, which RK4 resolves at ~2 ms)."""
        return 10 if params.has_friction else 1

    @classmethod
    def tasks(cls, params: CartPoleParams | None = None) -> dict[str, Task]:
        """``balance`` (CartPole-v1's task, 500 steps, LQR terminal cost) and ``swingup`` (from hanging, on
        the environment without termination, 350 steps: up within 5 s and held for 2 s)."""
        p = CartPoleParams() if params is None else params
        pi = math.pi
        return {
            "balance": Task("balance", balance_cost, 500, balance_success, terminate=True, horizon=30,
                            terminal_cost=balance_terminal_cost(p)),
            "swingup": Task("swingup", swingup_cost, 350, partial(swingup_success, dt=float(p.tau)),
                            start_low=(-0.05, -0.05, pi - 0.05, -0.05), start_high=(0.05, 0.05, pi + 0.05, 0.05),
                            terminate=False, horizon=40),
        }
