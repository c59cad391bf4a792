"""Known physics: the System protocol and the built-in systems, by name.

``SYSTEMS`` maps each built-in system's name to its class; :func:`get_system` resolves a name, a class or
an instance (a user's own :class:`System` subclass works everywhere a built-in one does).
"""

from __future__ import annotations

from typing import Any

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
    "SYSTEMS",
    "DEFAULT_SYSTEM",
    "get_system",
]

#: The built-in systems by name.
SYSTEMS: dict[str, type[System]] = {CartPole.name: CartPole}
#: The system used where none is given (``build()``, ``get_task("balance")``, figures' labels).
DEFAULT_SYSTEM: type[System] = CartPole


def get_system(system: Any) -> type[System]:
    """The :class:`System` class of a name (a key of :data:`SYSTEMS`), a System subclass or instance, or a
    system's Params instance.

    Raises:
        ValueError: an unknown name, listing the valid ones.
        TypeError: anything else.
    """
    if isinstance(system, str):
        if system not in SYSTEMS:
            raise ValueError(f"unknown system {system!r}; valid: {sorted(SYSTEMS)}")
        return SYSTEMS[system]
    if isinstance(system, type) and issubclass(system, System):
        return system
    if isinstance(system, System):
        return type(system)
    if isinstance(system, Parameters):
        for cls in SYSTEMS.values():
            if isinstance(system, cls.Params):
                return cls
    raise TypeError(f"expected a system name, System class or instance, got {type(system).__name__}")
