"""One integrator interface for every time stepper, and the registry of integrators by name.

* :mod:`.base`: the :class:`Integrator` interface (``step``, ``rollout``, zero-order hold, sub-steps);
* :mod:`.explicit`: :class:`Euler`, :class:`SemiImplicitEuler`, :class:`ButcherTableau`, :class:`ExplicitRK`,
  :class:`RK4`, :class:`ClassicRK4` (RK4 rounded as textbooks and gymnasium's Acrobot-v1 round it);
* :mod:`.adaptive`: :class:`Adaptive` (torchdiffeq's dopri5 and friends, optionally with the adjoint);
* :mod:`.fused`: :func:`compiled_rollout` and :func:`compiled_vector_step` (what vector environments step), a
  field and an integrator compiled into one kernel;
* :mod:`.compiled`: :class:`CompiledFunction`, torch.compile with the cost shown and an eager fallback;
* :mod:`.linearize`: :func:`step_jacobians` (batched one-step Jacobians by autograd), compiled for fields;
* :mod:`.feedback`: :func:`feedback_rollout`, closed-loop rollouts under affine feedback (iLQR), compiled.

:func:`get_integrator` builds one by name (the names of :data:`INTEGRATOR_NAMES`, what the command line
and the studies accept).
"""

from __future__ import annotations

from .adaptive import ADAPTIVE_METHODS, Adaptive, SolverError
from .base import Integrator, check_rollout_args
from .compiled import CompiledFunction, compile_available, inductor_cache_dir
from .explicit import RK4, RK4_TABLEAU, ButcherTableau, ClassicRK4, Euler, ExplicitRK, SemiImplicitEuler
from .feedback import FeedbackRollout, compiled_feedback_rollout, feedback_rollout
from .fused import FusedRollout, FusedStep, compiled_rollout, compiled_vector_step
from .linearize import compiled_jacobians, compiled_step, field_step, step_jacobians, step_jacobians_func
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
    "compiled_vector_step",
    "FusedStep",
    "CompiledFunction",
    "inductor_cache_dir",
    "step_jacobians",
    "step_jacobians_func",
    "field_step",
    "compiled_jacobians",
    "compiled_step",
    "feedback_rollout",
    "compiled_feedback_rollout",
    "FeedbackRollout",
]
