r"""Planning and imagination with any :class:`~physwm.models.WorldModel`.

Model-predictive control (MPC): at every control step a planner searches for the sequence of
``horizon`` controls that minimises a cost over the model's predicted states, applies the first one to
the real system, and starts the next search from the remaining ones (warm start: the previous plan
shifted by one step). Two sampling planners are provided, batched over candidate sequences (one
``model.rollout`` of ``[population, horizon]`` per iteration, no Python loop over candidates):

* :class:`CEM`, the cross-entropy method (Rubinstein 1997; as used by PETS, Chua et al. 2018): sample
  a Gaussian population, refit the Gaussian to the ``elites`` lowest-cost sequences, repeat;
* :class:`MPPI`, model-predictive path integral control (Williams et al. 2017): perturb the plan with
  Gaussian noise and average the perturbed sequences with weights ``softmax(-cost / temperature)``.

Ensembles (any model with a ``.members`` list of WorldModels) are planned on either their own
(mean) prediction, ``ensemble="mean"``, or by PETS' trajectory sampling, ``ensemble="ts"``: each
candidate sequence is rolled out as ``particles`` particles, particle ``k`` propagated by member
``k mod E`` for the whole horizon (TS-infinity), and its cost is the mean over particles.

Costs are plain batched functions of state and control, ``cost(x [..., n], u [..., m]) -> [...]``,
charged on every transition ``(x_{t+1}, u_t)`` of a plan and summed over the horizon (plus an optional
``terminal_cost(x [..., n]) -> [...]`` on the last state). :func:`balance_cost` is CartPole-v1's task
(keep the pole within 12 degrees and the cart within 2.4 m); :func:`swingup_cost` swings the pole up
from hanging and holds it (on ``physwm/CartPole-v0`` with ``terminate=False``).

Closed loop: :func:`run_episode` runs a planner on the *true* environment (gymnasium ``CartPole-v1``,
whose two discrete actions are forces of +-10 N, or ``physwm/CartPole-v0``) and records states,
forces, rewards, planning time per step and success (:class:`Episode`); :func:`planning_study`
repeats that over seeds for several models and reports success rates per model (:class:`PlanningStudy`).

Imagination: :func:`imagine` runs a policy in closed loop on a *model* and returns the virtual
experience as :class:`~physwm.data.Trajectories`, the container of real data.

Example::

    >>> import physwm
    >>> from physwm.control import CEM, balance_cost, make_env, run_episode
    >>> model = physwm.models.ODEModel(physwm.CartPole(), integrator="euler")  # exact for CartPole-v1
    >>> planner = CEM(model, balance_cost, bounds=(-10.0, 10.0), horizon=30, population=500, seed=0)
    >>> episode = run_episode(planner, make_env("CartPole-v1"), "balance", seed=0)
    >>> episode.success, episode.steps, 1000 * episode.plan_times.mean()  # ms per step
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .models.base import WorldModel

__all__ = [
    "Planner",
    "CEM",
    "MPPI",
    "PLANNERS",
    "make_planner",
    "balance_cost",
    "balance_terminal_cost",
    "QuadraticCost",
    "swingup_cost",
    "Task",
    "TASKS",
    "get_task",
    "balance_success",
    "swingup_success",
    "wrap_angle",
    "make_env",
    "default_planner_options",
    "check_model_fits_env",
    "Episode",
    "run_episode",
    "PlanningStudy",
    "planning_study",
    "imagine",
]

Cost = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
TerminalCost = Callable[[torch.Tensor], torch.Tensor]

#: CartPole-v1's termination thresholds: cart position (m) and pole angle (rad, 12 degrees).
X_THRESHOLD = 2.4
THETA_THRESHOLD = 12 * 2 * math.pi / 360


# --- costs -----------------------------------------------------------------------------------------


def wrap_angle(theta: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Angle wrapped to ``[-pi, pi)`` (rad), for tensors or numpy arrays."""
    if isinstance(theta, torch.Tensor):
        return torch.remainder(theta + math.pi, 2 * math.pi) - math.pi
    return np.remainder(np.asarray(theta) + math.pi, 2 * math.pi) - math.pi


def balance_cost(
    x: torch.Tensor,
    u: torch.Tensor,
    *,
    x_threshold: float = X_THRESHOLD,
    theta_threshold: float = THETA_THRESHOLD,
    failure_cost: float = 100.0,
    velocity_weight: float = 0.01,
    control_weight: float = 0.0,
) -> torch.Tensor:
    """Running cost of CartPole-v1's balancing task, batched.

    ``(theta / theta_th)^2 + 0.1 (x / x_th)^2 + velocity_weight (x_dot^2 + theta_dot^2)
    + control_weight u^2 + failure_cost * [|x| > x_th or |theta| > theta_th]``: keep the pole upright and
    the cart near the centre, and above all never cross the termination thresholds.

    Args:
        x: states ``[..., 4]`` (x m, x_dot m/s, theta rad, theta_dot rad/s).
        u: forces ``[..., 1]``, N.
        x_threshold: cart position bound, m.
        theta_threshold: pole angle bound, rad (12 degrees).
        failure_cost: cost of a state beyond a bound.
        velocity_weight: weight of the squared velocities ((m/s)^-2, (rad/s)^-2).
        control_weight: weight of the squared force, N^-2.

    Returns:
        Cost ``[...]`` (dimensionless), same dtype as ``x``.
    """
    pos, x_dot, theta, theta_dot = x[..., 0], x[..., 1], x[..., 2], x[..., 3]
    c = (theta / theta_threshold).square() + 0.1 * (pos / x_threshold).square()
    if velocity_weight:
        c = c + velocity_weight * (x_dot.square() + theta_dot.square())
    if control_weight:
        c = c + control_weight * u[..., 0].to(x.dtype).square()
    failed = (pos.abs() > x_threshold) | (theta.abs() > theta_threshold)
    return c + failure_cost * failed.to(x.dtype)


class QuadraticCost:
    """A quadratic cost ``x^T P x`` of states ``x [..., n] -> [...]`` (e.g. an LQR value function).

    Args:
        P: ``[n, n]`` symmetric positive semi-definite matrix.
        weight: factor in front.
    """

    def __init__(self, P: Any, weight: float = 1.0):
        P = torch.as_tensor(np.asarray(P, dtype=np.float64))
        if P.ndim != 2 or P.shape[0] != P.shape[1] or not torch.isfinite(P).all():
            raise ValueError(f"P must be a finite square matrix, got shape {tuple(P.shape)}")
        self.P = weight * (P + P.T) / 2
        self._cache: dict[tuple, torch.Tensor] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = (x.dtype, x.device)
        P = self._cache.get(key)
        if P is None:
            P = self._cache[key] = self.P.to(dtype=x.dtype, device=x.device)
        if x.shape[-1] != P.shape[0]:
            raise ValueError(f"QuadraticCost expects states [..., {P.shape[0]}], got {tuple(x.shape)}")
        return ((x @ P) * x).sum(-1)

    def __repr__(self) -> str:
        return f"QuadraticCost(n={self.P.shape[0]})"


def balance_terminal_cost(
    params: Any = None,
    *,
    x_threshold: float = X_THRESHOLD,
    theta_threshold: float = THETA_THRESHOLD,
    velocity_weight: float = 0.01,
    control_weight: float = 1e-3,
) -> QuadraticCost:
    """Terminal cost of the balance task: the infinite-horizon LQR cost-to-go ``x^T P x`` about upright.

    ``P`` solves the discrete Riccati equation of the CartPole linearised at upright rest (via
    :class:`physwm.data.LQRPolicy`) with the state weights of :func:`balance_cost`
    (``diag(0.1 / x_th^2, velocity_weight, 1 / theta_th^2, velocity_weight)``) and ``R = control_weight``.
    It charges a plan for where its last state leads *after* the horizon: without it a 30-step
    (0.6 s) search cannot see the cart drifting towards the end of the track, and CEM lets about one
    CartPole-v1 episode in five run off it; with it the cart stays within a few decimetres.

    Args:
        params: :class:`~physwm.systems.CartPoleParams` to linearise (default gymnasium's CartPole-v1).

    Returns:
        A :class:`QuadraticCost` (``x [..., 4] -> [...]``).
    """
    from .data import LQRPolicy
    from .systems.cartpole import CartPoleParams

    p = CartPoleParams() if params is None else params
    Q = np.diag([0.1 / x_threshold**2, velocity_weight, 1.0 / theta_threshold**2, velocity_weight])
    return QuadraticCost(LQRPolicy(p, Q=Q, R=control_weight).P)


def swingup_cost(
    x: torch.Tensor,
    u: torch.Tensor,
    *,
    x_weight: float = 0.05,
    x_limit: float = 2.0,
    wall_cost: float = 10.0,
    theta_dot_weight: float = 0.01,
    x_dot_weight: float = 0.0,
    control_weight: float = 1e-4,
) -> torch.Tensor:
    """Running cost of the swing-up task (pole from hanging to upright, then held), batched.

    ``(1 - cos theta) + x_weight x^2 + wall_cost * relu(|x| - x_limit)^2
    + theta_dot_weight theta_dot^2 + control_weight u^2``. ``1 - cos theta`` is 0 upright and 2
    hanging, periodic in theta, so the number of turns does not matter; the soft wall keeps the cart
    on a track of +-``x_limit`` m.

    Args:
        x: states ``[..., 4]`` (x m, x_dot m/s, theta rad, theta_dot rad/s).
        u: forces ``[..., 1]``, N.
        x_weight: weight of the squared cart position, m^-2.
        x_limit: half-length of the track the cart should stay on, m.
        wall_cost: weight of the squared excursion beyond ``x_limit``, m^-2.
        theta_dot_weight: weight of the squared angular velocity, (rad/s)^-2.
        control_weight: weight of the squared force, N^-2.

    Returns:
        Cost ``[...]`` (dimensionless), same dtype as ``x``.
    """
    pos, theta, theta_dot = x[..., 0], x[..., 2], x[..., 3]
    c = (1.0 - torch.cos(theta)) + x_weight * pos.square() + theta_dot_weight * theta_dot.square()
    c = c + wall_cost * torch.relu(pos.abs() - x_limit).square()
    if x_dot_weight:
        c = c + x_dot_weight * x[..., 1].square()
    if control_weight:
        c = c + control_weight * u[..., 0].to(x.dtype).square()
    return c


# --- planners --------------------------------------------------------------------------------------


def _model_dtype_device(model: torch.nn.Module) -> tuple[torch.dtype, torch.device]:
    for t in itertools.chain(model.parameters(), model.buffers()):
        if t.is_floating_point():
            return t.dtype, t.device
    return torch.get_default_dtype(), torch.device("cpu")


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _positive_float(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a positive number, got {value!r}") from err
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive, finite number, got {value!r}")
    return v


def _members(model: torch.nn.Module) -> list[WorldModel] | None:
    members = getattr(model, "members", None)
    if members is None:
        return None
    members = list(members)
    if not members:
        raise ValueError(f"{type(model).__name__}.members is empty")
    return members


class Planner:
    """Base class of the sampling MPC planners (:class:`CEM`, :class:`MPPI`).

    Args:
        model: any WorldModel (``model.rollout(x0 [B, n], u [B, T, m]) -> [B, T+1, n]``); an ensemble
            is any model with a ``.members`` list of WorldModels.
        cost: running cost ``(x [..., n], u [..., m]) -> [...]`` charged on each transition
            ``(x_{t+1}, u_t)`` of a plan; e.g. :func:`balance_cost`, :func:`swingup_cost`.
        bounds: ``(low, high)`` control bounds (numbers or ``[m]`` sequences, physical units: N).
        horizon: planning horizon H, control steps.
        population: candidate sequences per iteration P.
        iterations: refinement iterations per control step.
        terminal_cost: optional cost ``(x [..., n]) -> [...]`` of the last predicted state.
        init_std: standard deviation of the sampling distribution at the start of each step (units of
            the control; default a quarter of ``high - low``).
        action_levels: optional allowed control values (``[L]``, e.g. ``(-10, 10)`` for CartPole-v1's
            two discrete forces): sampled controls are snapped to the nearest level before they are
            evaluated, and the returned action is snapped too, so the plan is judged on what the
            environment will actually apply.
        ensemble: for ensembles, ``"mean"`` (plan on the ensemble's own ``rollout``) or ``"ts"``
            (PETS trajectory sampling over members, see the module docstring).
        particles: particles per candidate for ``ensemble="ts"`` (default: the number of members).
        nonfinite: ``"raise"`` (default): a NaN/inf cost is a ValueError; ``"worst"``: candidates with
            non-finite cost rank last (for learned models that blow up on a few wild sequences).
        seed: int seed or a ``torch.Generator`` for the sampling noise.
        dtype: planning dtype (default: the model's parameter dtype, float32 for a new model).
        fused: roll out an :class:`~physwm.models.ODEModel` with :func:`physwm.fused.compiled_rollout`
            (its field and integrator compiled into one kernel by ``torch.compile``: 10-15x faster per
            rollout, but the first call compiles for 10-60 s). Other models: a ValueError.
        num_threads: if set, torch's intra-op thread count during each search (restored afterwards).
            Planning runs many small tensor operations; on a busy machine 1 thread can be several times
            faster than a thread pool that waits for cores.

    Attributes:
        plan: the current mean plan ``[H, m]`` (warm start of the next step).
        last_info: about the last call to :meth:`optimize`: ``"cost"`` (lowest sequence cost seen),
            ``"iterations"``, and for CEM ``"best"`` (that sequence) and ``"elite_cost"`` (mean cost of
            the last elites), for MPPI ``"effective_samples"`` (``1 / sum w^2`` of the last weights).
    """

    name = "planner"

    def __init__(
        self,
        model: WorldModel,
        cost: Cost,
        *,
        bounds: tuple[Any, Any],
        horizon: int = 30,
        population: int = 500,
        iterations: int = 5,
        terminal_cost: TerminalCost | None = None,
        init_std: float | Sequence[float] | None = None,
        action_levels: Sequence[float] | None = None,
        ensemble: str = "mean",
        particles: int | None = None,
        nonfinite: str = "raise",
        seed: int | torch.Generator = 0,
        dtype: torch.dtype | None = None,
        fused: bool = False,
        num_threads: int | None = None,
    ):
        if not isinstance(model, torch.nn.Module) or not hasattr(model, "rollout"):
            raise TypeError(f"model must be a WorldModel, got {type(model).__name__}")
        if not callable(cost):
            raise TypeError(f"cost must be a callable (x [..., n], u [..., m]) -> [...], got {type(cost).__name__}")
        if terminal_cost is not None and not callable(terminal_cost):
            raise TypeError(f"terminal_cost must be callable or None, got {type(terminal_cost).__name__}")
        self.model = model
        self.cost = cost
        self.terminal_cost = terminal_cost
        self.horizon = _positive_int("horizon", horizon)
        self.population = _positive_int("population", population)
        self.iterations = _positive_int("iterations", iterations)
        self.state_dim = int(model.state_dim)
        self.control_dim = int(model.control_dim)
        model_dtype, self.device = _model_dtype_device(model)
        self.dtype = model_dtype if dtype is None else dtype
        if not self.dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point dtype, got {self.dtype}")

        m = self.control_dim
        try:
            low_t, high_t = (torch.as_tensor(b, dtype=self.dtype, device=self.device).reshape(-1) for b in bounds)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"bounds must be (low, high) numbers or [m] sequences, got {bounds!r}") from err
        if low_t.numel() not in (1, m) or high_t.numel() not in (1, m):
            raise ValueError(f"bounds must be numbers or sequences of the control size m={m}, got {bounds!r}")
        low, high = low_t.expand(m).clone(), high_t.expand(m).clone()
        if not (torch.isfinite(low).all() and torch.isfinite(high).all() and (low < high).all()):
            raise ValueError(f"bounds must be finite with low < high, got {bounds!r}")
        self.low, self.high = low, high
        if init_std is None:
            std0 = (high - low) / 4
        else:
            std0 = torch.as_tensor(init_std, dtype=self.dtype, device=self.device).reshape(-1).expand(m).clone()
            if not (torch.isfinite(std0).all() and (std0 > 0).all()):
                raise ValueError(f"init_std must be positive and finite, got {init_std!r}")
        self.init_std = std0
        if action_levels is None:
            self.action_levels = None
        else:
            levels = torch.as_tensor(action_levels, dtype=self.dtype, device=self.device).reshape(-1)
            if levels.numel() < 1 or not torch.isfinite(levels).all():
                raise ValueError(f"action_levels must be a non-empty sequence of finite values, got {action_levels!r}")
            if ((levels < low.min()) | (levels > high.max())).any():
                raise ValueError(f"action_levels {levels.tolist()} must lie within bounds {bounds!r}")
            self.action_levels = torch.unique(levels)  # sorted
            self._level_mids = (self.action_levels[1:] + self.action_levels[:-1]) / 2
            self._level_steps = self.action_levels[1:] - self.action_levels[:-1]

        if ensemble not in ("mean", "ts"):
            raise ValueError(f"unknown ensemble mode {ensemble!r}; valid: ['mean', 'ts']")
        self.ensemble = ensemble
        members = _members(model)
        if ensemble == "ts":
            if members is None:
                raise ValueError(
                    f"ensemble='ts' needs a model with a .members list (an ensemble); {type(model).__name__} has none"
                )
            for i, mem in enumerate(members):
                if (mem.state_dim, mem.control_dim) != (self.state_dim, self.control_dim):
                    raise ValueError(f"ensemble member {i} has dims ({mem.state_dim}, {mem.control_dim}), "
                                     f"the ensemble ({self.state_dim}, {self.control_dim})")
            self.particles = len(members) if particles is None else _positive_int("particles", particles)
        elif particles is not None:
            raise ValueError("particles only applies to ensemble='ts'")
        else:
            self.particles = 1
        self._members = members
        self._rollout = None
        if fused:
            from .fused import compiled_rollout
            from .models.ode import ODEModel

            if not isinstance(model, ODEModel):
                raise ValueError(
                    f"fused=True needs an ODEModel (a field and an integrator), not {type(model).__name__}"
                )
            if ensemble == "ts":
                raise ValueError("fused=True does not apply to ensemble='ts'")
            self._rollout = compiled_rollout(model.field, model.integrator, model.dt)
        if num_threads is not None:
            num_threads = _positive_int("num_threads", num_threads)
        self.num_threads = num_threads
        if nonfinite not in ("raise", "worst"):
            raise ValueError(f"unknown nonfinite policy {nonfinite!r}; valid: ['raise', 'worst']")
        self.nonfinite = nonfinite

        if isinstance(seed, torch.Generator):
            self.generator = seed
        else:
            if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
                raise TypeError(f"seed must be an int or a torch.Generator, got {type(seed).__name__}")
            self.generator = torch.Generator(device=self.device).manual_seed(int(seed))
        self.last_info: dict[str, Any] = {}
        self.reset()

    # -- state ----------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the warm start: the plan restarts at the middle of the bounds."""
        self.plan = ((self.low + self.high) / 2).expand(self.horizon, self.control_dim).clone()

    def _shift(self) -> None:
        self.plan = torch.cat((self.plan[1:], ((self.low + self.high) / 2)[None]), dim=0)

    # -- evaluation -----------------------------------------------------------------------------------
    def _snap(self, u: torch.Tensor) -> torch.Tensor:
        if self.action_levels is None:
            return u
        # nearest level as a sum of steps (indexing a tiny tensor with a big index is slow on CPU)
        above = (u.unsqueeze(-1) > self._level_mids).to(u.dtype)
        return self.action_levels[0] + (above * self._level_steps).sum(-1)

    def _sequence_cost(self, states: torch.Tensor, controls: torch.Tensor) -> torch.Tensor:
        c = self.cost(states[:, 1:], controls)
        if not isinstance(c, torch.Tensor) or c.shape != controls.shape[:2]:
            raise ValueError(
                f"cost must map states [B, H, n] and controls [B, H, m] to [B, H] = {tuple(controls.shape[:2])}, "
                f"got {tuple(c.shape) if isinstance(c, torch.Tensor) else type(c).__name__}"
            )
        total = c.sum(1)
        if self.terminal_cost is not None:
            tc = self.terminal_cost(states[:, -1])
            if not isinstance(tc, torch.Tensor) or tc.shape != total.shape:
                raise ValueError(f"terminal_cost must map states [B, n] to [B] = {tuple(total.shape)}")
            total = total + tc
        return total

    def evaluate(self, x0: torch.Tensor, controls: torch.Tensor) -> torch.Tensor:
        """Cost ``[P]`` of candidate sequences ``controls [P, H, m]`` from the state ``x0 [n]``.

        One batched ``model.rollout`` for plain models and ``ensemble="mean"``; one per member for
        ``ensemble="ts"`` (each on its share of the ``P * particles`` particles).
        """
        P = controls.shape[0]
        if self.ensemble == "ts":
            K, members = self.particles, self._members
            E = len(members)
            u = controls.unsqueeze(1).expand(P, K, *controls.shape[1:])  # [P, K, H, m]
            costs = controls.new_empty(P, K)
            member_of = torch.arange(K) % E
            for e, member in enumerate(members):
                ks = torch.nonzero(member_of == e).flatten()
                if ks.numel() == 0:
                    continue
                ue = u[:, ks].reshape(P * ks.numel(), *controls.shape[1:])
                states = member.rollout(x0.expand(ue.shape[0], -1), ue)
                costs[:, ks] = self._sequence_cost(states, ue).reshape(P, ks.numel())
            return costs.mean(1)
        rollout = self.model.rollout if self._rollout is None else self._rollout
        states = rollout(x0.expand(P, -1), controls)
        return self._sequence_cost(states, controls)

    def _checked_costs(self, costs: torch.Tensor, iteration: int) -> torch.Tensor:
        bad = ~torch.isfinite(costs)
        if bad.any():
            if self.nonfinite == "raise" or bad.all():
                raise ValueError(
                    f"{type(self).__name__}: the cost is NaN or inf for {int(bad.sum())} of {costs.numel()} candidate "
                    f"sequences at iteration {iteration} (the model's predictions or the cost function diverged); "
                    + ("pass nonfinite='worst' to rank such candidates last" if not bad.all() else
                       "every candidate is non-finite: check the model and the cost")
                )
            costs = torch.where(bad, torch.full_like(costs, torch.finfo(costs.dtype).max), costs)
        return costs

    def _state(self, state: Any) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(state) if not isinstance(state, torch.Tensor) else state)
        x = x.to(dtype=self.dtype, device=self.device).reshape(-1)
        if x.numel() != self.state_dim:
            raise ValueError(f"state must have {self.state_dim} entries (the model's state_dim), got shape "
                             f"{tuple(np.shape(state))}")
        if not torch.isfinite(x).all():
            raise ValueError(f"state contains NaN or inf: {x.tolist()}")
        return x

    # -- public ---------------------------------------------------------------------------------------
    def optimize(self, state: Any) -> torch.Tensor:
        """Search from ``state [n]`` (warm-started at :attr:`plan`); returns the plan ``[H, m]``.

        Updates :attr:`plan` but does not shift it (:meth:`act` does).
        """
        x0 = self._state(state)
        threads = torch.get_num_threads()
        try:
            if self.num_threads is not None and self.num_threads != threads:
                torch.set_num_threads(self.num_threads)
            with torch.no_grad():
                self.plan = self._optimize(x0)
        finally:
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
        return self.plan

    def act(self, state: Any) -> torch.Tensor:
        """Plan from ``state [n]``, return the first control ``[m]`` and shift the plan (warm start)."""
        plan = self.optimize(state)
        u = self._snap(plan[0].clamp(self.low, self.high)).clone()
        self._shift()
        return u

    __call__ = act

    def _optimize(self, x0: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _sample(self, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        P, H, m = self.population, self.horizon, self.control_dim
        eps = torch.randn((P, H, m), generator=self.generator, dtype=self.dtype, device=self.device)
        u = mean + std * eps
        u[0] = mean  # the current plan is always a candidate
        return torch.maximum(torch.minimum(u, self.high), self.low)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(model={type(self.model).__name__}, horizon={self.horizon}, "
                f"population={self.population}, iterations={self.iterations}{self._extra_repr()})")

    def _extra_repr(self) -> str:
        return ""


class CEM(Planner):
    """Cross-entropy method over control sequences (PETS' optimiser).

    Each iteration samples ``population`` sequences from a diagonal Gaussian (mean = the plan,
    clipped to the bounds; the plan itself is always one of them), evaluates all of them in one batched
    rollout, and refits mean and standard deviation to the ``elites`` cheapest:
    ``mean <- alpha * mean + (1 - alpha) * elite_mean`` (likewise the std). The returned plan is the
    final mean. See :class:`Planner` for the shared arguments.

    Args:
        elites: number of elite sequences (``1 <= elites <= population``; default ``population // 10``).
        alpha: smoothing of the Gaussian's update, in ``[0, 1)`` (0: replace by the elite statistics).
        min_std: the search stops early once every std is below this (control units).
    """

    name = "cem"

    def __init__(
        self,
        model: WorldModel,
        cost: Cost,
        *,
        bounds: tuple[Any, Any],
        horizon: int = 30,
        population: int = 500,
        elites: int | None = None,
        iterations: int = 5,
        alpha: float = 0.1,
        min_std: float = 1e-3,
        **kwargs: Any,
    ):
        super().__init__(model, cost, bounds=bounds, horizon=horizon, population=population,
                         iterations=iterations, **kwargs)
        if elites is None:
            elites = max(1, self.population // 10)
        self.elites = _positive_int("elites", elites)
        if self.elites > self.population:
            raise ValueError(f"elites ({self.elites}) must not exceed population ({self.population})")
        if not (0.0 <= float(alpha) < 1.0):
            raise ValueError(f"alpha must be in [0, 1), got {alpha!r}")
        self.alpha = float(alpha)
        if not float(min_std) >= 0:
            raise ValueError(f"min_std must be >= 0, got {min_std!r}")
        self.min_std = float(min_std)

    def _optimize(self, x0: torch.Tensor) -> torch.Tensor:
        mean = self.plan
        std = self.init_std.expand_as(mean).clone()
        best_cost, best = math.inf, mean
        for it in range(self.iterations):
            u = self._sample(mean, std)
            costs = self._checked_costs(self.evaluate(x0, self._snap(u)), it)
            c_elite, idx = torch.topk(costs, self.elites, largest=False, sorted=True)
            if float(c_elite[0]) < best_cost:
                best_cost, best = float(c_elite[0]), u[idx[0]]
            elite = u[idx]
            mean = self.alpha * mean + (1 - self.alpha) * elite.mean(0)
            std = self.alpha * std + (1 - self.alpha) * elite.std(0, unbiased=False)
            if float(std.max()) < self.min_std:
                break
        self.last_info = {"cost": best_cost, "best": best, "elite_cost": float(c_elite.mean()),
                          "iterations": it + 1}
        return mean

    def _extra_repr(self) -> str:
        return f", elites={self.elites}, alpha={self.alpha}"


class MPPI(Planner):
    """Model-predictive path integral control (information-theoretic MPC, Williams et al. 2017).

    Each iteration perturbs the plan with Gaussian noise of std ``noise_std`` (the plan itself is
    always one of the candidates), evaluates the ``population`` perturbed sequences in one batched
    rollout and replaces the plan by their average weighted by ``softmax(-(cost - min cost) /
    temperature)``. A low temperature approaches the best sample, a high one the plain mean. See
    :class:`Planner` for the shared arguments (``init_std`` is the noise std here).

    Args:
        temperature: lambda > 0, in cost units.
        iterations: refinements per control step (1 is classic MPPI).
    """

    name = "mppi"

    def __init__(
        self,
        model: WorldModel,
        cost: Cost,
        *,
        bounds: tuple[Any, Any],
        horizon: int = 30,
        population: int = 500,
        iterations: int = 1,
        temperature: float = 1.0,
        **kwargs: Any,
    ):
        super().__init__(model, cost, bounds=bounds, horizon=horizon, population=population,
                         iterations=iterations, **kwargs)
        self.temperature = _positive_float("temperature", temperature)

    def _optimize(self, x0: torch.Tensor) -> torch.Tensor:
        mean = self.plan
        std = self.init_std.expand_as(mean)
        best_cost = math.inf
        for it in range(self.iterations):
            u = self._sample(mean, std)
            costs = self._checked_costs(self.evaluate(x0, self._snap(u)), it)
            cmin = costs.min()
            best_cost = min(best_cost, float(cmin))
            w = torch.softmax(-(costs - cmin) / self.temperature, dim=0)
            mean = torch.einsum("p,phm->hm", w, u)
        self.last_info = {"cost": best_cost, "effective_samples": float(1.0 / w.square().sum()),
                          "iterations": it + 1}
        return mean

    def _extra_repr(self) -> str:
        return f", temperature={self.temperature}"


PLANNERS: dict[str, type[Planner]] = {"cem": CEM, "mppi": MPPI}


def make_planner(name: str, model: WorldModel, cost: Cost, **options: Any) -> Planner:
    """Build a planner by name (``"cem"`` or ``"mppi"``); an unknown name lists the valid ones."""
    if name not in PLANNERS:
        raise ValueError(f"unknown planner {name!r}; valid: {sorted(PLANNERS)}")
    return PLANNERS[name](model, cost, **options)


# --- tasks -----------------------------------------------------------------------------------------


def balance_success(
    states: np.ndarray, dt: float, *, steps: int | None = None, x_threshold: float = X_THRESHOLD,
    theta_threshold: float = THETA_THRESHOLD,
) -> bool:
    """Balanced: every state within CartPole-v1's bounds (and at least ``steps`` transitions, if given).

    Args:
        states: ``[T+1, 4]`` closed-loop states (x m, x_dot m/s, theta rad, theta_dot rad/s).
        dt: control period, s (unused; same signature as :func:`swingup_success`).
        steps: episode length required, control steps (CartPole-v1: 500); :func:`run_episode` checks
            the length itself.
    """
    s = np.asarray(states, dtype=np.float64)
    if steps is not None and s.shape[0] - 1 < steps:
        return False
    ok = (np.abs(s[:, 0]) <= x_threshold) & (np.abs(s[:, 2]) <= theta_threshold)
    return bool(ok.all())


def swingup_success(
    states: np.ndarray, dt: float, *, within: float = 5.0, hold: float = 2.0, angle_tol: float = THETA_THRESHOLD,
    x_limit: float = X_THRESHOLD,
) -> bool:
    """Swung up and held: upright from some time ``t* <= within`` s to the end, which is ``>= hold`` s later.

    Upright means ``|wrap(theta)| <= angle_tol`` (rad, 12 degrees by default) and ``|x| <= x_limit`` m.

    Args:
        states: ``[T+1, 4]`` closed-loop states.
        dt: control period, s.
        within: latest time to reach upright (and stay), s.
        hold: minimum time upright until the end of the episode, s.
    """
    s = np.asarray(states, dtype=np.float64)
    up = (np.abs(wrap_angle(s[:, 2])) <= angle_tol) & (np.abs(s[:, 0]) <= x_limit)
    if not up[-1]:
        return False
    down = np.flatnonzero(~up)
    t_star = 0 if down.size == 0 else int(down[-1]) + 1  # first index of the final upright stretch
    return t_star * dt <= within + 1e-9 and (len(s) - 1 - t_star) * dt >= hold - 1e-9


@dataclass(frozen=True)
class Task:
    """A control task: its running cost, how episodes start and end, and what counts as success.

    Attributes:
        name: ``"balance"`` or ``"swingup"``.
        cost: running cost ``(x [..., n], u [..., m]) -> [...]``.
        steps: episode length, control steps.
        start_low, start_high: box the start state is sampled from (seeded by the env's reset);
            ``None``: the environment's own reset distribution.
        terminate: whether the physwm environment should end episodes at CartPole-v1's thresholds.
        success: ``(states [T+1, n], dt) -> bool``.
        horizon: default planning horizon, steps.
        terminal_cost: optional cost of a plan's last state, ``x [..., n] -> [...]``.
    """

    name: str
    cost: Cost
    steps: int
    start_low: tuple[float, ...] | None
    start_high: tuple[float, ...] | None
    terminate: bool
    success: Callable[[np.ndarray, float], bool]
    horizon: int = 30
    terminal_cost: TerminalCost | None = None


TASKS: dict[str, Task] = {
    "balance": Task("balance", balance_cost, 500, None, None, True, balance_success, horizon=30,
                    terminal_cost=balance_terminal_cost()),
    "swingup": Task(
        "swingup", swingup_cost, 350,
        (-0.05, -0.05, math.pi - 0.05, -0.05), (0.05, 0.05, math.pi + 0.05, 0.05),
        False, swingup_success, horizon=40,
    ),
}


def get_task(task: str | Task) -> Task:
    """A :class:`Task` by name (``"balance"``, ``"swingup"``); an unknown name lists the valid ones."""
    if isinstance(task, Task):
        return task
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid: {sorted(TASKS)}")
    return TASKS[task]


# --- closed loop -----------------------------------------------------------------------------------

ENV_IDS = ("CartPole-v1", "physwm/CartPole-v0")


def make_env(env_id: str = "CartPole-v1", task: str | Task = "balance", params: Any = None, **kwargs: Any):
    """The true environment for a task: gymnasium ``CartPole-v1`` or ``physwm/CartPole-v0``.

    ``physwm/CartPole-v0`` gets ``params`` (default :data:`physwm.envs.FRICTION_PARAMS`, the CartPole
    with friction), ``terminate`` from the task (False for swing-up) and a time limit of the task's
    episode length; extra keyword arguments go to ``gymnasium.make``. ``CartPole-v1`` terminates at
    12 degrees, so it only fits the balance task.
    """
    import gymnasium

    from . import envs as _envs  # registers physwm/CartPole-v0

    t = get_task(task)
    if env_id == "CartPole-v1":
        if t.name != "balance":
            raise ValueError(f"CartPole-v1 terminates at 12 degrees and only fits the balance task, not {t.name!r}; "
                             "use physwm/CartPole-v0 (terminate=False) for swing-up")
        if params is not None:
            raise ValueError("params only apply to physwm/CartPole-v0")
        kwargs.setdefault("max_episode_steps", max(t.steps, 500))
        return gymnasium.make("CartPole-v1", **kwargs)
    if env_id == _envs.ENV_ID:
        kwargs.setdefault("terminate", t.terminate)
        kwargs.setdefault("max_episode_steps", t.steps)
        return gymnasium.make(env_id, params=_envs.FRICTION_PARAMS if params is None else params, **kwargs)
    raise ValueError(f"unknown environment {env_id!r}; valid: {list(ENV_IDS)}")


def _env_spec(env) -> tuple[str, float, int, int, tuple[float, float] | None, float]:
    """(id, dt, state_dim, control_dim, discrete force pair or None, force bound) of a CartPole env."""
    import gymnasium

    base = env.unwrapped
    env_id = env.spec.id if env.spec is not None else type(base).__name__
    dt = float(getattr(base, "dt", getattr(base, "tau", float("nan"))))
    n = int(np.prod(env.observation_space.shape))
    force_mag = float(getattr(base, "force_mag", 10.0))
    if isinstance(env.action_space, gymnasium.spaces.Discrete):
        if env.action_space.n != 2:
            raise ValueError(f"only two discrete actions (forces -/+force_mag) are supported, {env_id} has "
                             f"{env.action_space.n}")
        return env_id, dt, n, 1, (-force_mag, force_mag), force_mag
    if isinstance(env.action_space, gymnasium.spaces.Box):
        m = int(np.prod(env.action_space.shape))
        return env_id, dt, n, m, None, float(np.max(env.action_space.high))
    raise ValueError(f"unsupported action space {env.action_space} of {env_id}")


def check_model_fits_env(model: WorldModel, env) -> None:
    """ValueError naming the mismatch if the model's dims or ``dt`` do not fit the environment."""
    env_id, dt, n, m, _, _ = _env_spec(env)
    if model.state_dim != n:
        raise ValueError(f"model state_dim {model.state_dim} does not fit {env_id}'s state of size {n}")
    if model.control_dim != m:
        raise ValueError(f"model control_dim {model.control_dim} does not fit {env_id}'s control of size {m}")
    if math.isfinite(dt) and abs(float(model.dt) - dt) > 1e-9:
        raise ValueError(f"model dt {model.dt} s does not fit {env_id}'s control period {dt} s")


@dataclass
class Episode:
    """One closed-loop episode on a true environment.

    Attributes:
        states: ``[T+1, n]`` exact (float64) states, the first is the start.
        controls: ``[T, m]`` forces applied, N (CartPole-v1: +-10).
        rewards: ``[T]`` environment rewards.
        plan_times: ``[T]`` wall-clock planning time per step, s.
        dt: control period, s.
        success: whether the task's success criterion holds.
        terminated: whether the environment terminated the episode (fell / left the track).
        env_id, task, seed: what was run.
        model: a name for the model (free text).
    """

    states: np.ndarray
    controls: np.ndarray
    rewards: np.ndarray
    plan_times: np.ndarray
    dt: float
    success: bool
    terminated: bool
    env_id: str
    task: str
    seed: int
    model: str = ""

    @property
    def steps(self) -> int:
        """Number of control steps taken."""
        return int(self.controls.shape[0])

    @property
    def ret(self) -> float:
        """Episode return (sum of rewards)."""
        return float(self.rewards.sum())

    @property
    def time(self) -> np.ndarray:
        """``[T+1]`` times of the states, s."""
        return np.arange(self.states.shape[0]) * self.dt

    def to_trajectories(self):
        """The episode as a one-episode :class:`~physwm.data.Trajectories` (float64)."""
        from .data import Trajectories

        return Trajectories(
            torch.from_numpy(self.states[None].copy()), torch.from_numpy(self.controls[None].copy()),
            dt=self.dt, meta={"env_id": self.env_id, "task": self.task, "seed": self.seed, "policy": "mpc",
                              "model": self.model},
        )

    def summary(self) -> str:
        return (f"{self.model or 'model'} on {self.env_id} ({self.task}, seed {self.seed}): "
                f"{'success' if self.success else 'failure'}, {self.steps} steps, return {self.ret:.0f}, "
                f"planning {1e3 * float(np.mean(self.plan_times)) if self.steps else 0.0:.1f} ms/step")


def run_episode(
    planner: Planner | Callable[[np.ndarray], Any],
    env,
    task: str | Task = "balance",
    *,
    seed: int = 0,
    steps: int | None = None,
    start: Sequence[float] | None = None,
    model_name: str = "",
    progress: bool = False,
) -> Episode:
    """Run a planner (or any policy ``state [n] -> force [m]``) in closed loop on a true environment.

    At every step the planner sees the environment's exact state (``env.unwrapped.state``, float64)
    and returns a force; for gymnasium's discrete CartPole-v1 the force's sign picks the action
    (``u > 0``: push right). Planners get their warm start reset first.

    Args:
        planner: a :class:`Planner` or a callable ``state [n] -> control [m]`` (forces, N).
        env: a gymnasium CartPole environment (see :func:`make_env`).
        task: ``"balance"``, ``"swingup"`` or a :class:`Task` (start states, success, episode length).
        seed: seed of the environment's reset.
        steps: episode length (default the task's); the episode ends earlier if the env terminates or
            truncates.
        start: exact start state (default: the task's start distribution).
        model_name: recorded in the episode.
        progress: show a tqdm progress bar.

    Returns:
        An :class:`Episode`.
    """
    from tqdm.auto import tqdm

    t = get_task(task)
    env_id, dt, n, m, discrete, _ = _env_spec(env)
    if isinstance(planner, Planner):
        check_model_fits_env(planner.model, env)
        planner.reset()
    elif not callable(planner):
        raise TypeError(f"planner must be a Planner or a callable policy, got {type(planner).__name__}")
    steps = t.steps if steps is None else _positive_int("steps", steps)
    if start is not None:
        options = {"state": [float(v) for v in start]}
    elif t.start_low is not None:
        options = {"low": list(t.start_low), "high": list(t.start_high)}
    else:
        options = None
    if options is not None and env_id == "CartPole-v1":
        # gymnasium's CartPole-v1 has no such reset options: set its exact state after the reset instead.
        if start is None:
            raise ValueError(f"CartPole-v1 cannot sample the {t.name} task's start box; use physwm/CartPole-v0")
        env.reset(seed=seed)
        env.unwrapped.state = np.asarray(options["state"], dtype=np.float64)
    else:
        env.reset(seed=seed, options=options)
    base = env.unwrapped
    states = [np.asarray(base.state, dtype=np.float64).copy()]
    controls, rewards, times = [], [], []
    terminated = False
    bar = tqdm(total=steps, desc=f"{planner.name if isinstance(planner, Planner) else 'policy'} {t.name}",
               disable=not progress, leave=False)
    for _ in range(steps):
        t0 = time.perf_counter()
        u = planner(states[-1])
        times.append(time.perf_counter() - t0)
        u = np.asarray(u.detach().cpu().numpy() if isinstance(u, torch.Tensor) else u, dtype=np.float64).reshape(-1)
        if u.shape != (m,) or not np.isfinite(u).all():
            raise ValueError(f"the planner returned {u.tolist()}, expected {m} finite force(s)")
        if discrete is not None:
            action = int(u[0] > 0)
            force = np.array([discrete[action]])
        else:
            action = np.clip(u, env.action_space.low, env.action_space.high).astype(env.action_space.dtype)
            force = action.astype(np.float64)
        _, reward, terminated, truncated, info = env.step(action)
        if "force" in info:
            force = np.asarray([info["force"]], dtype=np.float64).reshape(m)
        states.append(np.asarray(base.state, dtype=np.float64).copy())
        controls.append(force)
        rewards.append(float(reward))
        bar.update(1)
        if terminated or truncated:
            break
    bar.close()
    S = np.stack(states)
    success = (not terminated) and len(controls) >= steps and bool(t.success(S, dt))
    return Episode(
        states=S, controls=np.asarray(controls, dtype=np.float64).reshape(-1, m), rewards=np.asarray(rewards),
        plan_times=np.asarray(times), dt=dt, success=success, terminated=bool(terminated), env_id=env_id,
        task=t.name, seed=int(seed), model=model_name,
    )


@dataclass
class PlanningStudy:
    """Closed-loop results of several models over seeds (see :func:`planning_study`).

    Attributes:
        episodes: model name -> one :class:`Episode` per seed.
        env_id, task, planner: what was run; ``planner_options``: the planner's keyword arguments.
    """

    episodes: dict[str, list[Episode]]
    env_id: str
    task: str
    planner: str
    planner_options: dict[str, Any] = field(default_factory=dict)

    def success_rate(self) -> dict[str, float]:
        """Model name -> fraction of successful episodes."""
        return {k: float(np.mean([e.success for e in v])) for k, v in self.episodes.items()}

    def summary(self) -> dict[str, dict[str, float]]:
        """Model name -> success rate, mean/std return, mean steps, mean and 95th percentile planning ms."""
        out = {}
        for k, eps in self.episodes.items():
            ret = np.array([e.ret for e in eps])
            pt = np.concatenate([e.plan_times for e in eps]) * 1e3
            out[k] = {
                "success_rate": float(np.mean([e.success for e in eps])),
                "episodes": len(eps),
                "return_mean": float(ret.mean()),
                "return_std": float(ret.std()),
                "steps_mean": float(np.mean([e.steps for e in eps])),
                "plan_ms_mean": float(pt.mean()) if pt.size else float("nan"),
                "plan_ms_p95": float(np.percentile(pt, 95)) if pt.size else float("nan"),
            }
        return out

    def table(self) -> str:
        """The summary as a fixed-width text table."""
        rows = [f"{self.planner} on {self.env_id}, task {self.task}",
                f"{'model':<16} {'success':>9} {'return':>15} {'ms/step':>9} {'p95 ms':>8}"]
        for k, s in self.summary().items():
            rows.append(f"{k:<16} {s['success_rate'] * s['episodes']:>4.0f}/{s['episodes']:<4} "
                        f"{s['return_mean']:>8.1f} +-{s['return_std']:>5.1f} {s['plan_ms_mean']:>9.2f} "
                        f"{s['plan_ms_p95']:>8.2f}")
        return "\n".join(rows)


def planning_study(
    models: Mapping[str, WorldModel],
    env_id: str = "CartPole-v1",
    task: str | Task = "balance",
    seeds: Sequence[int] = tuple(range(20)),
    *,
    planner: str = "cem",
    planner_options: Mapping[str, Any] | None = None,
    env_options: Mapping[str, Any] | None = None,
    steps: int | None = None,
    progress: bool = True,
) -> PlanningStudy:
    """Success rate per model over seeds: each model plans in closed loop on the true environment.

    Args:
        models: name -> WorldModel (e.g. ``{"explicit": ..., "hybrid": ..., "mlp": ...}``).
        env_id: ``"CartPole-v1"`` or ``"physwm/CartPole-v0"`` (friction by default, see :func:`make_env`).
        task: ``"balance"`` or ``"swingup"``.
        seeds: one episode per seed (the env's reset and the planner's noise both use it).
        planner: ``"cem"`` or ``"mppi"``.
        planner_options: keyword arguments of the planner (default: bounds of the env's force, the
            task's horizon, and ``action_levels`` for CartPole-v1's discrete forces).
        env_options: keyword arguments of :func:`make_env`.
        steps: episode length (default the task's).
        progress: a progress bar over episodes.

    Returns:
        A :class:`PlanningStudy` (``.success_rate()``, ``.summary()``, ``.table()``).
    """
    from tqdm.auto import tqdm

    if not isinstance(models, Mapping) or not models:
        raise ValueError("models must be a non-empty dict of name -> WorldModel")
    t = get_task(task)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must not be empty")
    env_options = dict(env_options or {})
    if steps is not None:
        env_options.setdefault("max_episode_steps", int(steps))
    env = make_env(env_id, t, **env_options)
    episodes: dict[str, list[Episode]] = {}
    total = len(models) * len(seeds)
    with tqdm(total=total, desc=f"{planner} {t.name}", disable=not progress) as bar:
        for name, model in models.items():
            check_model_fits_env(model, env)
            episodes[name] = []
            for s in seeds:
                options = default_planner_options(env, t)
                options.update(planner_options or {})
                options["seed"] = s
                p = make_planner(planner, model, t.cost, **options)
                ep = run_episode(p, env, t, seed=s, steps=steps, model_name=name)
                episodes[name].append(ep)
                bar.update(1)
                bar.set_postfix(model=name, success=f"{np.mean([e.success for e in episodes[name]]):.2f}")
    env.close()
    return PlanningStudy(episodes, _env_spec(env)[0], t.name, planner, dict(planner_options or {}))


def default_planner_options(env, task: str | Task) -> dict[str, Any]:
    """Planner keyword arguments that fit an environment and task: force bounds, discrete force levels
    (CartPole-v1), the task's horizon."""
    _, _, _, _, discrete, force = _env_spec(env)
    t = get_task(task)
    opts: dict[str, Any] = {"bounds": (-force, force), "horizon": t.horizon, "terminal_cost": t.terminal_cost}
    if discrete is not None:
        opts["action_levels"] = discrete
    return opts


# --- imagination -----------------------------------------------------------------------------------


def _as_policy(policy: Any, seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
    from .data import Policy as DataPolicy

    if isinstance(policy, Planner):
        raise TypeError("a Planner plans one state at a time; wrap it or use run_episode for closed-loop MPC")
    if isinstance(policy, DataPolicy):
        from .systems.cartpole import CartPoleParams

        bound = policy.bind(CartPoleParams())
        rng = np.random.default_rng(seed)

        def batched(x: torch.Tensor) -> torch.Tensor:
            rows = x.detach().cpu().numpy().astype(np.float64)
            return torch.tensor([[float(bound(r, rng))] for r in rows])

        batched.__name__ = f"physwm.data {bound.name}"
        return batched
    if not callable(policy):
        raise TypeError(f"policy must be a callable state batch [B, n] -> control [B, m], got {type(policy).__name__}")
    return policy


def imagine(
    model: WorldModel,
    policy: Callable[[torch.Tensor], torch.Tensor],
    starts: torch.Tensor,
    steps: int,
    *,
    terminate: Callable[[torch.Tensor], torch.Tensor] | None = None,
    seed: int = 0,
    meta: Mapping[str, Any] | None = None,
    progress: bool = False,
):
    """Generate virtual experience: run ``policy`` in closed loop on ``model`` from ``starts``.

    ``x_{t+1} = model.step(x_t, policy(x_t))`` for all episodes at once, under ``torch.no_grad``.
    Recurrent models are stepped one transition at a time too (their ``step``), so their hidden state
    does not carry over between steps here.

    Args:
        model: any WorldModel.
        policy: a callable ``states [B, n] -> controls [B, m]`` (tensors, physical units: forces in N)
            evaluated on the whole batch at once; numpy outputs are accepted. A
            :class:`physwm.data.Policy` (``make_policy("lqr" | "uniform" | "random")``, one state at
            a time, ``policy(state, rng) -> force``) is accepted too: it is applied row by row with a
            ``numpy`` generator seeded by ``seed``, after ``bind`` to gymnasium's CartPole-v1
            constants if it was not given its own.
        starts: start states ``[B, n]`` (or one state ``[n]``); their dtype and device are kept.
        steps: transitions per episode T.
        terminate: optional ``states [B, n] -> bool [B]``: an episode ends at the first predicted
            state for which it is True (that state is kept; later entries are NaN padding and
            ``lengths`` counts the valid transitions). Episodes whose prediction becomes NaN/inf end
            before that state, and are counted in ``meta["diverged"]``.
        seed: seed of a :class:`physwm.data.Policy`'s random numbers (noise, random actions).
        meta: extra metadata for the result.
        progress: tqdm progress bar over steps.

    Returns:
        :class:`~physwm.data.Trajectories` with ``states [B, T+1, n]``, ``controls [B, T, m]``,
        ``lengths [B]``, ``dt = model.dt`` and ``meta["source"] = "imagined"``.
    """
    from tqdm.auto import tqdm

    from .data import Trajectories

    policy = _as_policy(policy, seed)
    steps = _positive_int("steps", steps)
    x = torch.as_tensor(starts)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[-1] != model.state_dim or x.shape[0] == 0:
        raise ValueError(f"starts must have shape [B, {model.state_dim}] with B >= 1, got {tuple(x.shape)}")
    if not x.is_floating_point() or not torch.isfinite(x).all():
        raise ValueError("starts must be finite floating-point states")
    B, n, m = x.shape[0], model.state_dim, model.control_dim
    states = x.new_full((B, steps + 1, n), float("nan"))
    controls = x.new_full((B, steps, m), float("nan"))
    states[:, 0] = x
    lengths = torch.full((B,), steps, dtype=torch.int64)
    active = torch.ones(B, dtype=torch.bool)
    diverged = torch.zeros(B, dtype=torch.bool)
    with torch.no_grad():
        for t in tqdm(range(steps), desc="imagine", disable=not progress, leave=False):
            u = policy(x)
            if not isinstance(u, torch.Tensor):
                u = torch.as_tensor(np.asarray(u))
            u = u.to(dtype=x.dtype, device=x.device)
            if u.shape != (B, m):
                raise ValueError(f"the policy must return controls [B={B}, m={m}], got {tuple(u.shape)}")
            if not torch.isfinite(u[active]).all():
                raise ValueError(f"the policy returned NaN or inf controls at step {t}")
            x_next = model.step(x, u)
            bad = active & ~torch.isfinite(x_next).all(-1)
            if bad.any():
                diverged |= bad
                lengths[bad] = t
                active &= ~bad
            controls[active, t] = u[active]
            states[active, t + 1] = x_next[active]
            if terminate is not None:
                done = torch.as_tensor(terminate(x_next)).to(torch.bool).reshape(-1)
                if done.shape != (B,):
                    raise ValueError(f"terminate must return bool [B={B}], got {tuple(done.shape)}")
                ended = active & done
                lengths[ended] = t + 1
                active &= ~done
            if not active.any():
                break
            x = torch.where(active[:, None], x_next, x)  # ended rows keep a finite state
    info = {"source": "imagined", "model": type(model).__name__, "policy": getattr(policy, "__name__", repr(policy)),
            "steps": steps, "diverged": int(diverged.sum())}
    info.update(meta or {})
    return Trajectories(states, controls, lengths=lengths, dt=float(model.dt), meta=info)
