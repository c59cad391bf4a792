"""The registry of systems by name: the built-in ones and those a user registers with :func:`register_system`.

``build_spec``, checkpoints, study configs and data files name a system by its ``name``; :func:`get_system`
turns the name back into the class. A system of one's own works everywhere once registered::

    @physwm.systems.register_system
    class MyPendulum(physwm.System):
        name = "my_pendulum"
        ...

Registering also makes and registers its gymnasium environment (if it declares an ``env_id``): the layer
that owns environments (:mod:`physwm.envs`) subscribes with :func:`add_registration_hook`, so this module
needs nothing above it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import torch

from .acrobot import Acrobot
from .base import Parameters, Quantity, System
from .cartpole import CartPole
from .pendulum import DampedPendulum, Pendulum

__all__ = [
    "SYSTEMS",
    "BUILTIN_SYSTEMS",
    "DEFAULT_SYSTEM",
    "get_system",
    "register_system",
    "check_system",
    "add_registration_hook",
]

#: Every registered system by name (the built-in ones first; :func:`register_system` adds more).
SYSTEMS: dict[str, type[System]] = {c.name: c for c in (CartPole, Pendulum, DampedPendulum, Acrobot)}
#: The names of the systems physwm ships.
BUILTIN_SYSTEMS: tuple[str, ...] = tuple(SYSTEMS)
#: The system used where none is given (``build()``, ``get_task("balance")``, figures' labels).
DEFAULT_SYSTEM: type[System] = CartPole

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_HOOKS: list[Callable[[type[System]], None]] = []


def get_system(system: Any) -> type[System]:
    """The :class:`System` class of a name (a key of :data:`SYSTEMS`), a System subclass or instance, or a
    system's Params instance.

    Raises:
        ValueError: an unknown name, listing the valid ones.
        TypeError: anything else.
    """
    if isinstance(system, str):
        if system not in SYSTEMS:
            raise ValueError(
                f"unknown system {system!r}; valid: {sorted(SYSTEMS)} (a system of your own must be registered "
                "first: physwm.systems.register_system(MySystem))"
            )
        return SYSTEMS[system]
    if isinstance(system, type) and issubclass(system, System):
        return system
    if isinstance(system, System):
        return type(system)
    if isinstance(system, Parameters):
        for cls in SYSTEMS.values():
            if type(system) is cls.Params:
                return cls
        for cls in SYSTEMS.values():
            if isinstance(system, cls.Params):
                return cls
    raise TypeError(f"expected a system name, System class or instance, got {type(system).__name__}")


def add_registration_hook(hook: Callable[[type[System]], None]) -> None:
    """Call ``hook(cls)`` for every system registered from now on (:mod:`physwm.envs` registers its
    environment maker here). A hook that raises undoes the registration."""
    if hook not in _HOOKS:
        _HOOKS.append(hook)


def _indices(value: Any, n: int, what: str, where: str) -> None:
    if value is None:
        return
    if not isinstance(value, tuple) or not all(isinstance(i, int) and 0 <= i < n for i in value):
        raise TypeError(f"{where}.{what} must be a tuple of state indices in [0, {n}), got {value!r}")


def check_system(cls: Any) -> None:
    """Raise a TypeError or ValueError naming the problem if ``cls`` is not a usable :class:`System` subclass.

    Checked: the name, the Params dataclass and its defaults, the state and control descriptions, the
    learnable constants and the default ``identify`` set, the position/velocity pairs, ``phase_dims``,
    the variants, the environment's start box and control period (when it declares an ``env_id``), and one
    evaluation of ``dynamics`` at the zero state (shape and finiteness).
    """
    if not (isinstance(cls, type) and issubclass(cls, System)) or cls is System:
        raise TypeError(f"register_system expects a subclass of physwm.System, got {cls!r}")
    where = cls.__name__
    if not isinstance(cls.name, str) or not _NAME_RE.match(cls.name):
        raise ValueError(f"{where}.name must be a non-empty string of letters, digits, '_', '-', '.', got {cls.name!r}")
    pc = cls.Params
    if not (isinstance(pc, type) and issubclass(pc, Parameters) and dataclasses.is_dataclass(pc)):
        raise TypeError(f"{where}.Params must be a frozen dataclass subclassing physwm.Parameters, got {cls.Params!r}")
    try:
        defaults = cls.Params()
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}.Params() must build with its defaults: {err}") from err
    fields = set(defaults.to_dict())
    for what in ("states", "controls"):
        value = getattr(cls, what)
        if not isinstance(value, tuple) or not all(isinstance(q, Quantity) for q in value):
            raise TypeError(f"{where}.{what} must be a tuple of physwm.Quantity, got {value!r}")
    if not cls.states:
        raise ValueError(f"{where}.states is empty; describe every state entry with a Quantity")
    n = cls.state_dim
    if cls.dynamics is System.dynamics:
        raise TypeError(f"{where} must define its equations: dynamics(x, u, params) -> dx/dt")
    unknown = sorted(set(cls.constants) - fields)
    if unknown:
        raise ValueError(
            f"{where}.constants {unknown} are not fields of {cls.Params.__name__}; valid: {sorted(fields)}"
        )
    unknown = sorted(set(cls.identify) - set(cls.constants))
    if unknown:
        raise ValueError(f"{where}.identify {unknown} are not learnable constants; valid: {sorted(cls.constants)}")
    _indices(cls.position_index, n, "position_index", where)
    _indices(cls.velocity_index, n, "velocity_index", where)
    if (cls.position_index is None) != (cls.velocity_index is None) or (
        cls.position_index is not None and len(cls.position_index) != len(cls.velocity_index)
    ):
        raise ValueError(f"{where}.position_index and velocity_index must both be set, of equal length, or both None")
    _indices(cls.phase_dims, n, "phase_dims", where)
    if len(cls.phase_dims) != 2 or cls.phase_dims[0] == cls.phase_dims[1]:
        raise ValueError(f"{where}.phase_dims must be two distinct state indices, got {cls.phase_dims!r}")
    for key, v in cls.variants.items():
        if not isinstance(v, cls.Params):
            raise TypeError(f"{where}.variants[{key!r}] must be a {cls.Params.__name__}, got {type(v).__name__}")
    if cls.true_variant is not None and cls.true_variant not in cls.variants:
        raise ValueError(f"{where}.true_variant {cls.true_variant!r} is not a variant; valid: {sorted(cls.variants)}")
    if cls.env_id is not None:
        if not isinstance(cls.env_id, str) or "/" not in cls.env_id:
            raise ValueError(f"{where}.env_id must be a namespaced gymnasium id such as 'mine/MySystem-v0', got "
                             f"{cls.env_id!r}")
        for what in ("reset_low", "reset_high"):
            box = getattr(cls, what)
            if box is None or len(box) != n:
                raise ValueError(f"{where} declares env_id {cls.env_id!r}, so it needs {what}: the environment's "
                                 f"start box, {n} numbers (one per state entry); got {box!r}")
        try:
            cls.control_period(defaults)
        except ValueError as err:
            raise ValueError(f"{where}: its environment needs a control period: {err}") from err
    try:
        with torch.no_grad():
            out = cls(defaults)(torch.zeros(1, n, dtype=torch.float64), torch.zeros(1, cls.control_dim,
                                                                                     dtype=torch.float64))
    except Exception as err:  # the user's equations: report whatever they raise, with the class named
        raise ValueError(f"{where}.dynamics failed at the zero state: {type(err).__name__}: {err}") from err
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, n):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{where}.dynamics must return dx/dt of shape [..., {n}], got {shape} for x [1, {n}]")
    if not bool(torch.isfinite(out).all()):
        raise ValueError(f"{where}.dynamics returned non-finite values at the zero state: {out.tolist()}")


def register_system(cls: type[System] | None = None, *, replace: bool = False) -> Any:
    """Register a :class:`System` subclass under its ``name`` (usable as a class decorator); returns ``cls``.

    Afterwards ``build(..., system=cls)`` stores the system by name, so checkpoints and study configs
    rebuild it, and its gymnasium environment ``cls.env_id`` (if it declares one) exists. Registering the
    same class again does nothing; a class redefined under the same module and name (a re-run notebook
    cell) replaces the old one.

    Args:
        cls: the system class (checked by :func:`check_system`).
        replace: replace another class registered under the same name (never a built-in system).

    Raises:
        TypeError, ValueError: naming the problem (see :func:`check_system`); a name or environment id taken
            by another system.
    """
    if cls is None:
        return lambda c: register_system(c, replace=replace)
    check_system(cls)
    old = SYSTEMS.get(cls.name)
    if old is cls:
        return cls
    if old is not None:
        if cls.name in BUILTIN_SYSTEMS:
            raise ValueError(f"the name {cls.name!r} belongs to physwm's built-in {old.__name__}; choose another name")
        same = (old.__module__, old.__qualname__) == (cls.__module__, cls.__qualname__)
        if not (replace or same):
            raise ValueError(f"the name {cls.name!r} is taken by {old.__module__}.{old.__qualname__}; choose another "
                             "name or pass replace=True")
    taken = {c.env_id: c for c in SYSTEMS.values() if c.env_id is not None and c.name != cls.name}
    if cls.env_id is not None and cls.env_id in taken:
        raise ValueError(f"{cls.__name__}.env_id {cls.env_id!r} is the environment of {taken[cls.env_id].__name__}")
    SYSTEMS[cls.name] = cls
    try:
        for hook in _HOOKS:
            hook(cls)
    except Exception:
        if old is None:
            del SYSTEMS[cls.name]
        else:
            SYSTEMS[cls.name] = old
        raise
    return cls
