"""Collection: run a policy in an environment and record the exact states and the controls applied.

One integer seed makes a collection reproducible: equal seeds give identical data.

Many episodes of a physwm environment are collected together, in lock step, on its vector environment
(:mod:`physwm.vector_envs`: every step of all episodes is one batched call of the same field and
integrator) instead of one state at a time. Both ways draw their random numbers from the same streams:
the start states (the environment's reset generator, or the ``start_low``/``start_high`` box) in episode
order and one policy generator per episode (``SeedSequence(seed)`` spawned per episode), so they give the
same starts, the same policy noise and, stepped eagerly (the default), bit-for-bit the same data
(tested). A compiled vector step (``fused=True``) agrees with the eager one to float round-off, which a
chaotic system like CartPole amplifies along an episode; starts and noise streams stay identical. It is
not the default: compiling costs 10-60 s on two cores, more than an eager collection of hundreds of
thousands of transitions (``bench/collect.py`` measures both).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker, TimeLimit
from tqdm.auto import tqdm

from ..checks import nonnegative_int, positive_int
from ..envs import SystemEnv, env_info, radius_start, to_action
from ..vector_envs import VECTOR_ENV_CLASSES, SystemVectorEnv, vector_env_class
from ..version import __version__
from .policies import POLICIES, Policy, make_policy
from .trajectories import Trajectories

__all__ = ["collect", "vector_twin"]

# the wrappers gymnasium.make adds; an environment wrapped in anything else is stepped through its wrappers
_PLAIN_WRAPPERS = (TimeLimit, OrderEnforcing, PassiveEnvChecker)


def _box(value: Any, name: str, n: int) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,) or not np.isfinite(arr).all():
        raise ValueError(f"{name} must be a finite scalar or {n}-vector (one entry per state), got {value!r}")
    return arr


def _read_state(unwrapped: Any, n: int) -> np.ndarray:
    s = np.asarray(unwrapped.state, dtype=np.float64)
    if s.shape != (n,):
        raise ValueError(f"env.unwrapped.state must have shape ({n},), got {s.shape}")
    return s


def _env_config(env: gymnasium.Env, info: Any) -> dict:
    base = env.unwrapped
    spec = getattr(env, "spec", None)
    cfg: dict[str, Any] = {
        "env_id": info.env_id,
        "max_episode_steps": None if spec is None else spec.max_episode_steps,
        "system": info.system.name,
        "params": info.params.to_dict(),
        "state_names": [q.name for q in info.system.states],
        "control_names": [q.name for q in info.system.controls],
    }
    if isinstance(base, SystemEnv):
        cfg["integrator"] = repr(base.integrator)
        cfg["terminate"] = base.terminate
    else:
        cfg["integrator"] = str(getattr(base, "kinematics_integrator", "unknown"))
        cfg["terminate"] = True
    return cfg


def collect(
    env: gymnasium.Env | str,
    policy: Policy | Callable[[np.ndarray, np.random.Generator], Any] | str,
    episodes: int,
    max_steps: int,
    seed: int,
    start_low: float | Sequence[float] | None = None,
    start_high: float | Sequence[float] | None = None,
    progress: bool = True,
    *,
    vector: bool | None = None,
    fused: bool | None = False,
    start_radius: Sequence[float] | None = None,
) -> Trajectories:
    """Run ``policy`` in an environment and record exact states and applied controls.

    Args:
        env: a gymnasium env (or id string, made with ``gymnasium.make``): a physwm environment
            (``"physwm/CartPole-v0"``; continuous, the control actually applied, after clipping and float32
            rounding, is recorded) or a gymnasium environment a physwm system reproduces (``"CartPole-v1"``:
            discrete actions; the policy's control ``u`` becomes the nearest action, +force_mag for
            ``u >= 0`` else -force_mag, see :func:`physwm.envs.to_action`).
        policy: a :class:`Policy`, a name for :func:`make_policy`, or a callable
            ``f(state float64 [n], rng) -> control [m]`` (a float when ``m = 1``).
        episodes: number of episodes N >= 1.
        max_steps: maximum transitions per episode T >= 1; episodes end earlier on termination or
            the env's time limit.
        seed: seeds the env (first reset), the policy's generators (one per episode) and the start states,
            from independent streams (``numpy.random.SeedSequence(seed).spawn``).
        start_low, start_high: optional box (scalars or ``n``-vectors) of uniformly random start states,
            given to physwm envs as ``reset(options={"state": ...})`` and written to
            ``env.unwrapped.state`` after reset for gymnasium's own environments. Default: the env's reset.
        progress: show a tqdm progress bar (over episodes, or over the steps of the vector environment).
        vector: collect all episodes together on the environment's vector environment (see the module
            docstring); ``None`` (default): when there are several episodes and ``env`` is a physwm
            environment with no wrappers but ``gymnasium.make``'s own (time limit, order, checker).
        fused: compile the vector environment's step (see the module docstring; ``None``: the vector
            environment's rule, from ``FUSED_MIN_ENVS`` episodes on).
        start_radius: instead of a box, start states at a random distance ``U[low, high)`` from zero in a
            random direction (``(low, high)``; APHYNITY's initial conditions, see :func:`physwm.envs.radius_start`).

    Returns:
        float64 :class:`Trajectories` with ``states [N, T+1, n]`` (``env.unwrapped.state``),
        ``controls [N, T, m]``, ``lengths [N]``, ``dt`` the system's control period and ``meta`` (env id and
        config, system and its state names, policy, seed, start box, physwm version).
    """
    if isinstance(env, str):
        env = gymnasium.make(env)
    episodes = positive_int(episodes, "episodes")
    T = positive_int(max_steps, "max_steps")
    seed = nonnegative_int(seed, "seed")
    info = env_info(env)
    n = info.state_dim
    if (start_low is None) != (start_high is None):
        raise ValueError("give both start_low and start_high, or neither")
    if start_radius is not None and start_low is not None:
        raise ValueError("give start_low/start_high or start_radius, not both")
    if start_radius is not None:
        radius_start(np.random.default_rng(0), n, start_radius)  # checks the radius before any work
    box = None
    if start_low is not None:
        box = (_box(start_low, "start_low", n), _box(start_high, "start_high", n))
        if (box[0] > box[1]).any():
            raise ValueError(f"start_low {box[0].tolist()} must be <= start_high {box[1].tolist()}")

    if isinstance(policy, str):
        policy = make_policy(policy)
    if isinstance(policy, Policy):
        policy = policy.bind(info.system(info.params))
        policy_cfg = policy.config()
    elif callable(policy):
        policy_cfg = {"name": getattr(policy, "__name__", type(policy).__name__)}
    else:
        raise ValueError(f"policy must be a Policy, a policy name {sorted(POLICIES)} or a callable")

    env_ss, policy_ss, start_ss = np.random.SeedSequence(int(seed)).spawn(3)
    env_seed = int(env_ss.generate_state(1)[0])
    policy_rngs = [np.random.default_rng(s) for s in policy_ss.spawn(episodes)]
    start_rng = np.random.default_rng(start_ss)
    if start_radius is not None:
        starts = np.stack([radius_start(start_rng, n, start_radius) for _ in range(episodes)])
    else:
        starts = None if box is None else start_rng.uniform(box[0], box[1], size=(episodes, n))

    twin = vector_twin(env, episodes, fused) if vector is not False and (vector or episodes > 1) else None
    if vector and twin is None:
        raise ValueError("vector=True needs a physwm environment wrapped only by gymnasium.make's own wrappers")
    run = _run_vector if twin is not None else _run_single
    states, controls, lengths = run(twin or env, info, policy, policy_rngs, env_seed, starts, T, progress)

    meta = {
        **_env_config(env, info),
        "policy": policy_cfg,
        "seed": int(seed),
        "episodes": int(episodes),
        "max_steps": T,
        "start_low": None if box is None else box[0].tolist(),
        "start_high": None if box is None else box[1].tolist(),
        "physwm_version": __version__,
    }
    if start_radius is not None:
        meta["start_radius"] = [float(v) for v in start_radius]
    return Trajectories(
        torch.from_numpy(states), torch.from_numpy(controls), torch.from_numpy(lengths), dt=info.dt, meta=meta
    )


def _policy_control(policy: Callable, state: np.ndarray, rng: np.random.Generator, m: int, ep: int, t: int):
    try:
        u = np.asarray(policy(state.copy(), rng), dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise ValueError(f"the policy must return {m} number(s), the control; got an error: {err}") from err
    if u.shape != (m,):
        raise ValueError(f"the policy returned {u.size} numbers at episode {ep}, step {t}; expected {m}")
    if not np.isfinite(u).all():
        raise ValueError(f"the policy returned a non-finite control {u.tolist()} at episode {ep}, step {t}")
    return u


def _run_single(env, info, policy, policy_rngs, env_seed, starts, T, progress):
    """Episode after episode on ``env``: ``(states [N, T+1, n], controls [N, T, m], lengths [N])``."""
    n, m, episodes = info.state_dim, info.control_dim, len(policy_rngs)
    unwrapped = env.unwrapped
    physwm_env = isinstance(unwrapped, SystemEnv)
    states = np.full((episodes, T + 1, n), np.nan)
    controls = np.full((episodes, T, m), np.nan)
    lengths = np.zeros(episodes, dtype=np.int64)
    bar = tqdm(range(episodes), desc="collect", unit="ep", disable=not progress)
    for ep in bar:
        reset_seed = env_seed if ep == 0 else None
        start = None if starts is None else starts[ep]
        if start is not None and physwm_env:
            env.reset(seed=reset_seed, options={"state": start})
        else:
            env.reset(seed=reset_seed)
            if start is not None:
                unwrapped.state = start.copy()
        states[ep, 0] = _read_state(unwrapped, n)
        for t in range(T):
            u = _policy_control(policy, states[ep, t], policy_rngs[ep], m, ep, t)
            action, applied = to_action(info, u)
            _, _, terminated, truncated, step_info = env.step(action)
            if "control" in step_info:
                applied = np.asarray(step_info["control"], dtype=np.float64).reshape(m)
            controls[ep, t] = applied
            states[ep, t + 1] = _read_state(unwrapped, n)
            lengths[ep] = t + 1
            if terminated or truncated:
                break
        if progress:
            bar.set_postfix(mean_len=f"{lengths[: ep + 1].mean():.1f}")
    bar.close()
    return states, controls, lengths


def _run_vector(envs: SystemVectorEnv, info, policy, policy_rngs, env_seed, starts, T, progress):
    """All episodes in lock step on a vector environment of one environment per episode."""
    n, m, episodes = info.state_dim, info.control_dim, len(policy_rngs)
    states = np.full((episodes, T + 1, n), np.nan)
    controls = np.full((episodes, T, m), np.nan)
    lengths = np.zeros(episodes, dtype=np.int64)
    if starts is None:
        envs.reset(seed=env_seed)  # episode i starts at the i-th draw, as on the single environment
    else:
        envs.reset(options={"state": starts})
    states[:, 0] = envs.state
    running = np.ones(episodes, dtype=bool)
    actions = np.zeros((episodes, m), dtype=np.float32)
    bar = tqdm(range(T), desc=f"collect ({episodes} envs)", unit="step", disable=not progress)
    for t in bar:
        idx = np.flatnonzero(running)
        for ep in idx:
            actions[ep] = to_action(info, _policy_control(policy, states[ep, t], policy_rngs[ep], m, ep, t))[0]
        actions[~running] = 0.0
        _, _, terminated, truncated, step_info = envs.step(actions)
        controls[idx, t] = step_info["control"][idx]
        states[idx, t + 1] = envs.state[idx]
        lengths[idx] = t + 1
        running &= ~(terminated | truncated)
        if not running.any():
            break
    bar.close()
    envs.close()
    return states, controls, lengths


def vector_twin(env: gymnasium.Env, num_envs: int, fused: bool | None = None) -> SystemVectorEnv | None:
    """The vector environment of ``num_envs`` copies of a physwm environment (same constants, integrator
    object, termination and time limit; autoreset on the next step), or ``None`` if ``env`` is not a physwm
    environment or is wrapped in anything but ``gymnasium.make``'s own wrappers."""
    base = env.unwrapped
    if not isinstance(base, SystemEnv):
        return None
    limits, w = [], env
    while isinstance(w, gymnasium.Wrapper):
        if type(w) not in _PLAIN_WRAPPERS:
            return None
        if isinstance(w, TimeLimit):
            limits.append(w.spec.max_episode_steps if w.spec is not None else None)
        w = w.env
    limit = min((x for x in limits if x is not None), default=None)
    cls = VECTOR_ENV_CLASSES.get(base.system.name)
    if cls is None or cls.system is not base.system:  # a user's own system
        cls = vector_env_class(base.system)
    return cls(num_envs, params=base.params, integrator=base.integrator, terminate=base.terminate,
               max_episode_steps=limit, autoreset_mode=AutoresetMode.NEXT_STEP, fused=fused)  # fmt: skip
