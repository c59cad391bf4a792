"""Planning and imagination with any :class:`~physwm.models.WorldModel`.

* :mod:`.planners`: :class:`CEM` and :class:`MPPI`, batched model-predictive control (PETS trajectory
  sampling for ensembles);
* :mod:`.tasks`: a system's control tasks by name (:func:`get_task`);
* :mod:`.episodes`: closed loop on the true environment (:func:`run_episode`, :func:`planning_study`);
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
from .episodes import Episode, PlanningStudy, check_model_fits_env, default_planner_options, planning_study, run_episode
from .imagine import imagine
from .planners import CEM, MPPI, PLANNERS, Planner, make_planner
from .policy import FrozenPolicy, NeuralPolicy, ValueNetwork
from .policy_learning import POLICY_METHODS, LearnedPolicy, learn_policy
from .tasks import get_task, task_names

__all__ = [
    "Planner",
    "CEM",
    "MPPI",
    "PLANNERS",
    "make_planner",
    "get_task",
    "task_names",
    "make_env",
    "Episode",
    "run_episode",
    "PlanningStudy",
    "planning_study",
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
