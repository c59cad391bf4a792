"""Planning and imagination with any :class:`~physwm.models.WorldModel`.

* :mod:`.planners`: :class:`CEM` and :class:`MPPI`, batched model-predictive control (PETS trajectory
  sampling for ensembles);
* :mod:`.gradient`: :class:`ILQR`, :class:`Shooting` (Adam on the controls) and :class:`CEMGD` (CEM, then
  gradient steps), on the model's Jacobians by autograd;
* :mod:`.dynamics`: :class:`PlanningModel`, the model as planners see it (compiled where it pays, model
  evaluations counted); :mod:`.derivatives`: the cost's gradients and Hessians;
* :mod:`.registry`: :data:`PLANNERS` and :func:`make_planner`;
* :mod:`.adaptive`: :class:`AdaptiveController`, a planner whose model's constants are re-identified online;
* :mod:`.tasks`: a system's control tasks by name (:func:`get_task`);
* :mod:`.episodes`: closed loop on the true environment (:func:`run_episode`, :func:`planning_study`,
  :func:`policy_study`);
* :mod:`.imagine`: virtual experience from a model (:func:`imagine`);
* :mod:`.policy_learning`: a neural policy learned in imagination (:func:`learn_policy`; :mod:`.policy`).

Example::

    >>> import physwm
    >>> from physwm.control import CEM, default_planner_options, get_task, make_env, run_episode
    >>> model = physwm.models.ODEModel(physwm.CartPole(), integrator="euler")  # exact for CartPole-v1
    >>> env = make_env("CartPole-v1", "balance")
    >>> planner = CEM(model, get_task("balance").cost, seed=0, **default_planner_options(env, "balance"))
    >>> episode = run_episode(planner, env, "balance", seed=0)
    >>> episode.success, episode.steps, 1000 * episode.plan_times.mean()  # ms per step
"""

from ..envs import make_env
from .adaptive import AdaptiveController
from .dynamics import PlanningModel
from .episodes import (
    Episode,
    PlanningStudy,
    check_model_fits_env,
    default_planner_options,
    planning_study,
    policy_study,
    run_episode,
)
from .gradient import CEMGD, ILQR, Shooting
from .imagine import imagine
from .planners import CEM, MPPI, Planner
from .policy import FrozenPolicy, NeuralPolicy, ValueNetwork
from .policy_learning import POLICY_METHODS, LearnedPolicy, learn_policy
from .registry import PLANNERS, make_planner
from .tasks import get_task, task_names

__all__ = [
    "Planner",
    "AdaptiveController",
    "CEM",
    "MPPI",
    "ILQR",
    "Shooting",
    "CEMGD",
    "PlanningModel",
    "PLANNERS",
    "make_planner",
    "get_task",
    "task_names",
    "make_env",
    "Episode",
    "run_episode",
    "PlanningStudy",
    "planning_study",
    "policy_study",
    "default_planner_options",
    "check_model_fits_env",
    "imagine",
    "learn_policy",
    "LearnedPolicy",
    "POLICY_METHODS",
    "NeuralPolicy",
    "FrozenPolicy",
    "ValueNetwork",
]
