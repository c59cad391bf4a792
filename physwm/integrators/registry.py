"""The integrators by name: what the command line, the studies and ``build`` accept."""

from __future__ import annotations

from typing import Any

from .adaptive import ADAPTIVE_METHODS, Adaptive
from .base import Integrator
from .explicit import RK4, ClassicRK4, Euler, SemiImplicitEuler

__all__ = ["FIXED_STEP", "INTEGRATOR_NAMES", "get_integrator"]

#: Fixed-step integrators by name (each takes ``substeps``).
FIXED_STEP: dict[str, type[Integrator]] = {
    "euler": Euler, "semi_implicit_euler": SemiImplicitEuler, "rk4": RK4, "rk4_classic": ClassicRK4,
}
#: Every name :func:`get_integrator` accepts.
INTEGRATOR_NAMES: tuple[str, ...] = (*FIXED_STEP, *ADAPTIVE_METHODS)
_ADAPTIVE_OPTIONS = ("rtol", "atol", "adjoint", "max_steps")


def get_integrator(name: str | Integrator, substeps: int = 1, **options: Any) -> Integrator:
    """Build an integrator by name: one of :data:`INTEGRATOR_NAMES` (``-``/spaces read as ``_``).

    Args:
        name: the name, or an :class:`Integrator` (returned as is; then no other argument may be given).
        substeps: sub-steps per control period (fixed-step integrators only).
        **options: ``rtol``, ``atol``, ``adjoint``, ``max_steps`` of adaptive integrators.

    Raises:
        ValueError: an unknown name (listing the valid ones), or an option the integrator does not take
            (never silently dropped).
    """
    if isinstance(name, Integrator):
        if substeps != 1 or options:
            raise ValueError(f"{name!r} is already built; set substeps and options on the instance")
        return name
    key = str(name).lower().replace("-", "_").replace(" ", "_")
    if key in ADAPTIVE_METHODS:
        if substeps != 1:
            raise ValueError("adaptive integrators choose their own steps; substeps must be 1")
        unknown = sorted(set(options) - set(_ADAPTIVE_OPTIONS))
        if unknown:
            raise ValueError(f"unknown options {unknown} for integrator {key!r}; valid: {list(_ADAPTIVE_OPTIONS)}")
        return Adaptive(method=key, **options)
    if key in FIXED_STEP:
        if options:
            raise ValueError(
                f"options {sorted(options)} only apply to adaptive integrators {list(ADAPTIVE_METHODS)}, not {key!r}"
            )
        return FIXED_STEP[key](substeps=substeps)
    raise ValueError(f"unknown integrator {name!r}; valid: {list(INTEGRATOR_NAMES)}")
