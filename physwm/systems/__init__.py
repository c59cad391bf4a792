"""Known physics: the System protocol, the built-in systems and the registry of systems by name.

``SYSTEMS`` maps each registered system's name to its class (CartPole, Pendulum, DampedPendulum and
Acrobot are built in); :func:`register_system` adds a user's own :class:`System` subclass (and its gymnasium
environment), after which it works everywhere a built-in one does; :func:`get_system` resolves a name, a
class or an instance.
"""

from __future__ import annotations

from .acrobot import Acrobot, AcrobotParams, acrobot_dynamics, acrobot_energy
from .base import (
    QUANTITY_KINDS,
    Constant,
    Parameters,
    Quantity,
    System,
    Task,
    VectorField,
    check_state_control,
    wrap_angle,
)
from .cartpole import FRICTION_PARAMS, CartPole, CartPoleParams, cartpole_dynamics, cartpole_energy
from .costs import QuadraticCost
from .linear import LQRDesign, linearize, lqr
from .pendulum import (
    DampedPendulum,
    DampedPendulumParams,
    Pendulum,
    PendulumParams,
    damped_pendulum_dynamics,
    pendulum_dynamics,
    pendulum_energy,
)
from .registry import (
    BUILTIN_SYSTEMS,
    DEFAULT_SYSTEM,
    SYSTEMS,
    add_registration_hook,
    check_system,
    get_system,
    register_system,
)

__all__ = [
    "VectorField",
    "System",
    "Parameters",
    "Quantity",
    "Constant",
    "Task",
    "QuadraticCost",
    "QUANTITY_KINDS",
    "check_state_control",
    "wrap_angle",
    "linearize",
    "lqr",
    "LQRDesign",
    "CartPole",
    "CartPoleParams",
    "cartpole_dynamics",
    "cartpole_energy",
    "FRICTION_PARAMS",
    "Pendulum",
    "PendulumParams",
    "pendulum_dynamics",
    "pendulum_energy",
    "DampedPendulum",
    "DampedPendulumParams",
    "damped_pendulum_dynamics",
    "Acrobot",
    "AcrobotParams",
    "acrobot_dynamics",
    "acrobot_energy",
    "SYSTEMS",
    "BUILTIN_SYSTEMS",
    "DEFAULT_SYSTEM",
    "get_system",
    "register_system",
    "check_system",
    "add_registration_hook",
]
