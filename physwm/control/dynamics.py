"""A planner's access to its world model: rollouts, steps and one-step Jacobians, compiled where that pays.

:class:`PlanningModel` is what every planner calls instead of the model itself. It decides, once, whether
the model's rollouts run compiled (``fused``): by default they do for every :class:`~physwm.models.ODEModel`
with a fixed-step integrator (explicit, hybrid and Neural ODE models; Euler, semi-implicit Euler, RK4)
where ``torch.compile`` is available, and eagerly everywhere else (implicit models, adaptive integrators,
no C++ compiler) without a word, since the numbers are the same. The decision belongs to the object, not
to process-wide state: two planners on one model may decide differently.

Compiled, a rollout is :func:`~physwm.integrators.compiled_rollout`, a closed-loop rollout under affine
feedback :func:`~physwm.integrators.compiled_feedback_rollout` and a linearisation
:func:`~physwm.integrators.compiled_jacobians`, all cached on the model's field (planners built later on
the same model reuse them) and on disk by inductor; the first call per batch size compiles and says so on
stderr (see :mod:`physwm.integrators.compiled`).

It also counts **model evaluations**: one per predicted transition (a state and control mapped to the next
state) and one per transition differentiated (a vector-Jacobian product of one step), so a rollout of
``B`` sequences of ``H`` steps counts ``B * H`` and the Jacobians at ``N`` points count ``N * (1 + n)``
(one forward pass and ``n`` vector-Jacobian products). Planners report the count per control step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..integrators import (
    Adaptive,
    compile_available,
    compiled_feedback_rollout,
    compiled_jacobians,
    compiled_rollout,
    compiled_step,
    feedback_rollout,
    step_jacobians,
)
from ..models import ODEModel, WorldModel
from ..models.base import quiet_rollout

__all__ = ["PlanningModel", "fusable"]


def fusable(model: WorldModel) -> bool:
    """Whether ``model``'s rollouts can be compiled into fused kernels: an ODEModel with a fixed-step
    integrator (an adaptive one's step size is decided by the data, which does not compile)."""
    return isinstance(model, ODEModel) and not isinstance(model.integrator, Adaptive)


class PlanningModel:
    """A world model as planners use it (see the module docstring).

    Args:
        model: any WorldModel.
        fused: ``None`` (default): compiled where :func:`fusable` and a compiler is available
            (:func:`~physwm.integrators.compile_available`), else eager; ``True``: compiled (a ValueError
            for a model that is not fusable; without a compiler it runs eagerly, same numbers); ``False``:
            always eager.
        progress: show a message on stderr while a kernel compiles (the first call per batch size).

    Attributes:
        model: the model.
        fused: whether rollouts, steps and Jacobians go through compiled kernels.
        evaluations: model evaluations so far (see the module docstring); planners read differences.
    """

    def __init__(self, model: WorldModel, fused: bool | None = None, progress: bool = True):
        if not isinstance(model, WorldModel):
            raise TypeError(f"model must be a WorldModel, got {type(model).__name__}")
        if fused is None:
            fused = fusable(model) and compile_available()
        elif not isinstance(fused, bool):
            raise TypeError(f"fused must be None, True or False, got {fused!r}")
        elif fused and not fusable(model):
            raise ValueError(
                f"fused=True needs an ODEModel (a field and a fixed-step integrator), not {type(model).__name__}"
                + (f" with {model.integrator!r}" if isinstance(model, ODEModel) else "")
            )
        self.model, self.fused, self.progress = model, bool(fused), progress
        self.evaluations = 0
        self.state_dim, self.control_dim = int(model.state_dim), int(model.control_dim)
        self._kernel: dict[str, Callable] = {}
        # an ODEModel's rollout is its step iterated (to round-off); other models may carry a hidden state
        # (GRU, Transformer) or average member rollouts (Ensemble), which iterating step does not do
        self._rollout_is_steps = isinstance(model, ODEModel) or type(model).rollout is WorldModel.rollout

    def _compiled(self, kind: str) -> Callable:
        kernel = self._kernel.get(kind)
        if kernel is None:
            m, make = self.model, {"rollout": compiled_rollout, "feedback": compiled_feedback_rollout,
                                   "jacobians": compiled_jacobians, "step": compiled_step}[kind]
            kernel = self._kernel[kind] = make(m.field, m.integrator, m.dt, progress=self.progress)
        return kernel

    @property
    def compile_seconds(self) -> float:
        """Seconds this model's kernels have spent in calls that compiled (in this process)."""
        return float(sum(k.compile_seconds for k in self._kernel.values()))

    def rollout(self, x0: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``model.rollout`` (without its divergence warning): ``x0 [B, n]``, ``u [B, T, m]`` -> ``states [B, T+1,
        n]``."""
        self.evaluations += u.shape[0] * u.shape[1]
        if not self.fused:  # divergent candidates are ranked by the planner's nonfinite policy, not warned about
            return quiet_rollout(self.model, x0, u)
        return self._compiled("rollout")(x0, u)

    def step_rollout(self, x0: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """The model's one-step map iterated: ``x0 [B, n]``, ``u [B, T, m]`` -> ``states [B, T+1, n]``.

        What gradient-based planners differentiate (:meth:`jacobians` is the Jacobian of :meth:`step`); the
        same as :meth:`rollout` except for models whose rollout is not their step iterated (an ensemble's
        rollout averages member rollouts, this one iterates the ensemble's mean step).
        """
        if self._rollout_is_steps:
            return self.rollout(x0, u)
        self.evaluations += u.shape[0] * u.shape[1]
        states = [x0]
        for t in range(u.shape[1]):
            states.append(self.model.step(states[-1], u[:, t]))
        return torch.stack(states, dim=1)

    def step(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``model.step``: ``x [B, n]``, ``u [B, m]`` -> ``[B, n]`` (compiled: one kernel call)."""
        self.evaluations += x.shape[0]
        if not self.fused:
            return self.model.step(x, u)
        return self._compiled("step")(x, u)

    def feedback_rollout(self, x0: torch.Tensor, x_ref: torch.Tensor, u_ref: torch.Tensor, k: torch.Tensor,
                         gains: torch.Tensor, alpha: torch.Tensor, low: torch.Tensor,
                         high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's step iterated in closed loop under ``u_t = clip(u_ref_t + alpha k_t + K_t (x_t - x_ref_t))``
        (see :func:`~physwm.integrators.feedback_rollout` for the shapes); ``(states [B, T+1, n],
        controls [B, T, m])``."""
        self.evaluations += x0.shape[0] * u_ref.shape[0]
        if not self.fused:
            return feedback_rollout(self.model.step, x0, x_ref, u_ref, k, gains, alpha, low, high)
        return self._compiled("feedback")(x0, x_ref, u_ref, k, gains, alpha, low, high)

    def jacobians(self, x: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Next states and one-step Jacobians at ``N`` points (:func:`~physwm.integrators.step_jacobians`).

        Args:
            x: states ``[N, n]``.
            u: controls ``[N, m]``.

        Returns:
            ``(x_next [N, n], A [N, n, n], B [N, n, m])``.
        """
        self.evaluations += x.shape[0] * (1 + self.state_dim)
        with torch.no_grad():
            if not self.fused:
                return step_jacobians(self.model.step, x, u)
            return self._compiled("jacobians")(x, u)

    def __repr__(self) -> str:
        return f"PlanningModel({type(self.model).__name__}, {'fused' if self.fused else 'eager'})"
