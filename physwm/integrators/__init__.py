"""One integrator interface for every time stepper, and the registry of integrators by name.

* :mod:`.base`: the :class:`Integrator` interface (``step``, ``rollout``, zero-order hold, sub-steps);
* :mod:`.explicit`: :class:`Euler`, :class:`SemiImplicitEuler`, :class:`ButcherTableau`, :class:`ExplicitRK`,
  :class:`RK4`, :class:`ClassicRK4` (RK4 rounded as textbooks and gymnasium's Acrobot-v1 round it);
* :mod:`.adaptive`: :class:`Adaptive` (torchdiffeq's dopri5 and friends, optionally with the adjoint);
* :mod:`.fused`: :func:`compiled_rollout`, a field and an integrator compiled into one kernel.

:func:`get_integrator` builds one by name (the names of :data:`INTEGRATOR_NAMES`, what the command line
and the studies accept).
"""

from __future__ import annotations

from .adaptive import ADAPTIVE_METHODS, Adaptive, SolverError
from .base import Integrator, check_rollout_args
from .explicit import RK4, RK4_TABLEAU, ButcherTableau, ClassicRK4, Euler, ExplicitRK, SemiImplicitEuler
from .fused import FusedRollout, compile_available, compiled_rollout
from .registry import FIXED_STEP, INTEGRATOR_NAMES, get_integrator

__all__ = [
    "Integrator",
    "Euler",
    "SemiImplicitEuler",
    "ButcherTableau",
    "RK4_TABLEAU",
    "ExplicitRK",
    "RK4",
    "ClassicRK4",
    "Adaptive",
    "ADAPTIVE_METHODS",
    "SolverError",
    "FIXED_STEP",
    "INTEGRATOR_NAMES",
    "get_integrator",
    "check_rollout_args",
    "compiled_rollout",
    "compile_available",
    "FusedRollout",
]
