"""Closed loop on the true environment: episodes of a planner (or any policy) and planning studies.

:func:`run_episode` runs a planner on the true environment (a physwm environment or a gymnasium one a
physwm system reproduces, e.g. ``CartPole-v1`` whose two discrete actions are forces of +-10 N) and records
states, controls, rewards, planning time per step and success (:class:`Episode`); :func:`planning_study`
repeats that over seeds for several models and reports success rates per model (:class:`PlanningStudy`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..checks import positive_int
from ..data import Trajectories
from ..envs import SystemEnv, env_info, make_env, to_action
from ..models import WorldModel
from ..systems import Task
from .adaptive import AdaptiveController
from .planners import Planner
from .registry import make_planner
from .tasks import get_task

__all__ = ["Episode", "run_episode", "PlanningStudy", "planning_study", "policy_study", "default_planner_options",
           "check_model_fits_env"]  # fmt: skip


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
        terminated: whether the environment terminated the episode (CartPole: fell / left the track;
            Acrobot-v1: reached the goal, see :attr:`~physwm.systems.Task.terminal_success`).
        env_id, task, seed: what was run.
        model: a name for the model (free text).
        system: the name of the environment's system (for labels); "" if unknown.
        model_evaluations: ``[T]`` model evaluations per step (a :class:`Planner`'s
            ``last_info["model_evaluations"]``; empty for a plain policy).
        plan_cpu_times: ``[T]`` CPU time of this process per planning step, s (``time.process_time``: unlike
            the wall clock, hardly inflated by other processes sharing the cores).
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
    system: str = ""
    model_evaluations: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    plan_cpu_times: np.ndarray = field(default_factory=lambda: np.zeros(0))

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
        planner: a :class:`Planner`, an :class:`~physwm.control.AdaptiveController` or a callable
            ``state [n] -> control [m]`` (forces, N).
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
    info = env_info(env)
    t = get_task(task, info.system)
    env_id, dt, m = info.env_id, info.dt, info.control_dim
    planning = isinstance(planner, (Planner, AdaptiveController))
    if planning:
        check_model_fits_env(planner.model, env)
        planner.reset()
    elif not callable(planner):
        raise TypeError(f"planner must be a Planner or a callable policy, got {type(planner).__name__}")
    steps = t.steps if steps is None else positive_int(steps, "steps")
    if start is not None:
        options = {"state": [float(v) for v in start]}
    elif t.start_low is not None:
        options = {"low": list(t.start_low), "high": list(t.start_high)}
    else:
        options = None
    if options is not None and not isinstance(env.unwrapped, SystemEnv):
        # gymnasium's own environments have no such reset options: set the exact state after the reset.
        if start is None:
            raise ValueError(f"{env_id} cannot sample the {t.name} task's start box; use {info.system.env_id}")
        env.reset(seed=seed)
        env.unwrapped.state = np.asarray(options["state"], dtype=np.float64)
    else:
        env.reset(seed=seed, options=options)
    base = env.unwrapped
    states = [np.asarray(base.state, dtype=np.float64).copy()]
    controls, rewards, times, cpu_times, evaluations = [], [], [], [], []
    terminated = False
    bar = tqdm(total=steps, desc=f"{planner.name if planning else 'policy'} {t.name}",
               disable=not progress, leave=False)
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        u = planner(states[-1])
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
        if planning:
            evaluations.append(int(planner.last_info.get("model_evaluations", 0)))
        u = np.asarray(u.detach().cpu().numpy() if isinstance(u, torch.Tensor) else u, dtype=np.float64).reshape(-1)
        if u.shape != (m,) or not np.isfinite(u).all():
            raise ValueError(f"the planner returned {u.tolist()}, expected {m} finite control value(s)")
        action, applied = to_action(info, u)
        _, reward, terminated, truncated, step_info = env.step(action)
        if "control" in step_info:
            applied = np.asarray(step_info["control"], dtype=np.float64).reshape(m)
        states.append(np.asarray(base.state, dtype=np.float64).copy())
        controls.append(applied)
        rewards.append(float(reward))
        bar.update(1)
        if terminated or truncated:
            break
    bar.close()
    S = np.stack(states)
    if terminated:  # the environment ended the episode: the goal (Acrobot-v1) or a failure (CartPole-v1)
        success = t.terminal_success and bool(t.success(S))
    else:
        success = len(controls) >= steps and bool(t.success(S))
    return Episode(
        states=S, controls=np.asarray(controls, dtype=np.float64).reshape(-1, m), rewards=np.asarray(rewards),
        plan_times=np.asarray(times), dt=dt, success=success, terminated=bool(terminated), env_id=env_id,
        task=t.name, seed=int(seed), model=model_name, system=info.system.name,
        model_evaluations=np.asarray(evaluations, dtype=np.int64), plan_cpu_times=np.asarray(cpu_times),
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
        """Model name -> success rate, mean/std return, mean steps, mean and 95th percentile planning ms, mean
        model evaluations per step."""
        out = {}
        for k, eps in self.episodes.items():
            ret = np.array([e.ret for e in eps])
            pt = np.concatenate([e.plan_times for e in eps]) * 1e3
            ev = np.concatenate([e.model_evaluations for e in eps])
            out[k] = {
                "success_rate": float(np.mean([e.success for e in eps])),
                "episodes": len(eps),
                "return_mean": float(ret.mean()),
                "return_std": float(ret.std()),
                "steps_mean": float(np.mean([e.steps for e in eps])),
                "plan_ms_mean": float(pt.mean()) if pt.size else float("nan"),
                "plan_ms_p95": float(np.percentile(pt, 95)) if pt.size else float("nan"),
                "evals_per_step": float(ev.mean()) if ev.size else float("nan"),
            }
        return out

    def table(self) -> str:
        """The summary as a fixed-width text table."""
        rows = [f"{self.planner} on {self.env_id}, task {self.task}",
                f"{'model':<16} {'success':>9} {'return':>15} {'ms/step':>9} {'p95 ms':>8} {'evals/step':>10}"]
        for k, s in self.summary().items():
            rows.append(f"{k:<16} {s['success_rate'] * s['episodes']:>4.0f}/{s['episodes']:<4} "
                        f"{s['return_mean']:>8.1f} +-{s['return_std']:>5.1f} {s['plan_ms_mean']:>9.2f} "
                        f"{s['plan_ms_p95']:>8.2f} {s['evals_per_step']:>10.0f}")
        return "\n".join(rows)


def study_env(
    env_id: str, task: str | Task, env_options: Mapping[str, Any] | None, steps: int | None, seeds: Sequence[int]
) -> tuple[Any, Task, list[int]]:
    """The environment, the task and the seeds of a planning or policy study (``steps`` caps the episodes)."""
    env_options = dict(env_options or {})
    if steps is not None:
        env_options.setdefault("max_episode_steps", int(steps))
    env = make_env(env_id, task, **env_options)
    t = get_task(task, env_info(env).system)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must not be empty")
    return env, t, seeds


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
        planner: a name of :data:`~physwm.control.PLANNERS` (``"cem"``, ``"mppi"``, ``"ilqr"``, ``"shooting"``,
            ``"cem_gd"``).
        planner_options: keyword arguments of the planner (default: bounds of the env's force, the
            task's horizon, and ``action_levels`` for CartPole-v1's discrete forces).
        env_options: keyword arguments of :func:`make_env`.
        steps: episode length (default the task's).
        progress: a progress bar over episodes.

    Returns:
        A :class:`PlanningStudy` (``.success_rate()``, ``.summary()``, ``.table()``).
    """
    if not isinstance(models, Mapping) or not models:
        raise ValueError("models must be a non-empty dict of name -> WorldModel")
    env, t, seeds = study_env(env_id, task, env_options, steps, seeds)
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
    return PlanningStudy(episodes, env_info(env).env_id, t.name, planner, dict(planner_options or {}))


def policy_study(
    policies: Mapping[str, Callable[[np.ndarray], Any]],
    env_id: str = "CartPole-v1",
    task: str | Task = "balance",
    seeds: Sequence[int] = tuple(range(20)),
    *,
    env_options: Mapping[str, Any] | None = None,
    steps: int | None = None,
    progress: bool = True,
) -> PlanningStudy:
    """Success rate per policy over seeds: the planning study of policies that need no search.

    The same episodes as :func:`planning_study` (the environment, the task's starts, one episode per seed),
    each control a call of the policy (e.g. a learned policy's :meth:`~physwm.control.LearnedPolicy.freeze`),
    so its rows sit beside a planner's in one table: the study's ``planner`` is ``"policy"``.

    Args:
        policies: name -> callable ``state [n] -> control [m]`` (physical units).
        env_id, task, seeds, env_options, steps, progress: as in :func:`planning_study`.

    Returns:
        A :class:`PlanningStudy` (``planner="policy"``).
    """
    if not isinstance(policies, Mapping) or not policies:
        raise ValueError("policies must be a non-empty dict of name -> callable policy")
    bad = sorted(name for name, p in policies.items() if not callable(p) or isinstance(p, WorldModel))
    if bad:
        raise TypeError(f"policies {bad} are not callable policies state -> control (a model needs a planner: "
                        "use planning_study)")
    env, t, seeds = study_env(env_id, task, env_options, steps, seeds)
    episodes: dict[str, list[Episode]] = {}
    with tqdm(total=len(policies) * len(seeds), desc=f"policy {t.name}", disable=not progress) as bar:
        for name, policy in policies.items():
            episodes[name] = []
            for s in seeds:
                episodes[name].append(run_episode(policy, env, t, seed=s, steps=steps, model_name=name))
                bar.update(1)
    env.close()
    return PlanningStudy(episodes, env_info(env).env_id, t.name, "policy")


def default_planner_options(env, task: str | Task) -> dict[str, Any]:
    """Planner keyword arguments that fit an environment and task: control bounds, discrete action levels
    (gymnasium's CartPole-v1), the task's horizon and terminal cost."""
    info = env_info(env)
    t = get_task(task, info.system)
    opts: dict[str, Any] = {"bounds": (info.low.tolist(), info.high.tolist()) if info.control_dim > 1
                            else (float(info.low[0]), float(info.high[0])), "horizon": t.horizon,
                            "terminal_cost": t.terminal_cost}  # fmt: skip
    if info.levels is not None:
        opts["action_levels"] = info.levels
    return opts


def check_model_fits_env(model: WorldModel, env) -> None:
    """ValueError naming the mismatch if the model's dims or ``dt`` do not fit the environment."""
    info = env_info(env)
    env_id, dt, n, m = info.env_id, info.dt, info.state_dim, info.control_dim
    if model.state_dim != n:
        raise ValueError(f"model state_dim {model.state_dim} does not fit {env_id}'s state of size {n}")
    if model.control_dim != m:
        raise ValueError(f"model control_dim {model.control_dim} does not fit {env_id}'s control of size {m}")
    if math.isfinite(dt) and abs(float(model.dt) - dt) > 1e-9:
        raise ValueError(f"model dt {model.dt} s does not fit {env_id}'s control period {dt} s")
