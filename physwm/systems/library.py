"""Candidate-term libraries for sparse regression of missing physics (SINDy-style), and their checks.

A *library* is a mapping ``name -> function``: each function takes states ``x [..., n]`` and controls
``u [..., m]`` (torch tensors, physical units) and returns one candidate term ``[...]``. The name is how
the term is printed in a discovered equation (``"x_dot*|x_dot|"``), so it should read as the expression it
computes. :class:`~physwm.models.SymbolicField` combines the terms linearly on a system's acceleration rows;
:func:`physwm.discover` picks the few that explain what the known physics misses.

Every system has one (:meth:`physwm.systems.System.library`): :func:`default_library` builds it from the
system's description (each velocity ``v``: ``v``, ``v*|v|``, a smoothed sign ``sgn(v)``; each angle ``a``
times each velocity: ``sin(a)*v``, ``cos(a)*v``; each control), and a system may declare a richer one
(CartPole's). Users pass their own as a dict of named torch functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

__all__ = ["Library", "SIGN_SMOOTHING", "smooth_sign", "default_library", "check_library", "evaluate_library"]

#: A library: term name -> ``f(x [..., n], u [..., m]) -> [...]``.
Library = Mapping[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]

#: Velocity scale of the smoothed sign ``sgn(v) = tanh(v / SIGN_SMOOTHING)`` of the built-in libraries
#: (the units of ``v``), the same as CartPole's Coulomb smoothing.
SIGN_SMOOTHING = 0.01

_VELOCITY_KINDS = ("velocity", "angular_velocity")


def smooth_sign(v: torch.Tensor) -> torch.Tensor:
    """``tanh(v / SIGN_SMOOTHING)``: ``sign(v)`` smoothed over :data:`SIGN_SMOOTHING` (differentiable)."""
    return torch.tanh(v / SIGN_SMOOTHING)


def _state(i: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return lambda x, u: x[..., i]


def _control(j: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return lambda x, u: u[..., j].to(x.dtype)


def _abs_times(i: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return lambda x, u: x[..., i] * x[..., i].abs()


def _sign(i: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return lambda x, u: smooth_sign(x[..., i])


def _trig_times(fn: Callable, a: int, i: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return lambda x, u: fn(x[..., a]) * x[..., i]


def default_library(system: Any) -> dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    """The generic library of a system, built from its description (``states``, ``controls``).

    For each velocity ``v`` (state kinds ``velocity``/``angular_velocity``): ``v``, ``v*|v|`` and
    ``sgn(v)`` (:func:`smooth_sign`): viscous, quadratic (aerodynamic) and dry friction; for each angle
    ``a`` and velocity ``v``: ``sin(a)*v`` and ``cos(a)*v``; each control ``u`` as is (a mis-scaled input).

    Args:
        system: a :class:`~physwm.systems.System` class or instance (anything with ``states``/``controls``).

    Returns:
        An ordered dict ``name -> f(x, u)``.
    """
    states, controls = tuple(system.states), tuple(system.controls)
    vel = [(i, q.name) for i, q in enumerate(states) if q.kind in _VELOCITY_KINDS]
    ang = [(i, q.name) for i, q in enumerate(states) if q.kind == "angle"]
    lib: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {}
    for i, v in vel:
        lib[v] = _state(i)
        lib[f"{v}*|{v}|"] = _abs_times(i)
        lib[f"sgn({v})"] = _sign(i)
    for a, an in ang:
        for i, v in vel:
            lib[f"sin({an})*{v}"] = _trig_times(torch.sin, a, i)
            lib[f"cos({an})*{v}"] = _trig_times(torch.cos, a, i)
    for j, q in enumerate(controls):
        lib[q.name] = _control(j)
    return lib


def check_library(library: Any, state_dim: int, control_dim: int) -> dict[str, Callable]:
    """Check a library and return it as a plain dict (order kept).

    Each term is called once on a small probe batch (states and controls drawn from a fixed generator, so
    the check is deterministic and touches no global RNG) and must return a finite tensor of the batch's
    shape.

    Raises:
        TypeError: ``library`` is not a mapping of names to callables.
        ValueError: an empty library, or a term (named) that fails, returns the wrong shape or NaN/inf.
    """
    if not isinstance(library, Mapping):
        raise TypeError(f"library must be a dict of name -> f(x, u), got {type(library).__name__}")
    if not library:
        raise ValueError("library is empty: give at least one candidate term (name -> f(x, u))")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(7, state_dim, generator=gen, dtype=torch.float64)
    u = torch.randn(7, control_dim, generator=gen, dtype=torch.float64)
    out: dict[str, Callable] = {}
    for name, fn in library.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"library term names must be non-empty strings, got {name!r}")
        if not callable(fn):
            raise TypeError(f"library term {name!r} must be a function f(x, u), got {type(fn).__name__}")
        try:
            value = fn(x, u)
        except Exception as err:  # noqa: BLE001 - the user's function: name it and say why
            raise ValueError(f"library term {name!r} failed on states [7, {state_dim}]: {err}") from err
        _check_term(name, value, x.shape[:-1])
        out[name] = fn
    return out


def _check_term(name: str, value: Any, shape: torch.Size) -> None:
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"library term {name!r} must return a torch tensor, got {type(value).__name__}")
    if value.shape != shape:
        raise ValueError(
            f"library term {name!r} returned shape {tuple(value.shape)} for states of shape {(*shape, '-')}; "
            f"it must return one value per state, shape {tuple(shape)}"
        )
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"library term {name!r} returned NaN or inf on finite states")


def evaluate_library(library: Library, x: torch.Tensor, u: torch.Tensor, check: bool = False) -> torch.Tensor:
    """All terms of ``library`` at states ``x [..., n]`` and controls ``u [..., m]``: ``[..., K]`` (dtype of ``x``).

    Args:
        check: verify each term's shape and finiteness (a ValueError naming the term); the regression checks,
            a rollout does not (it stays fast and lets the integrator report divergence).
    """
    terms = []
    for name, fn in library.items():
        value = fn(x, u)
        if check:
            _check_term(name, value, x.shape[:-1])
        terms.append(value.to(x.dtype))
    return torch.stack(terms, dim=-1)
