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

Noise (:mod:`physwm.data.noise`): ``obs_noise`` records noisy observations as ``states`` and keeps the exact
states as ``clean_states``; ``process_noise`` disturbs the applied force at every step and jitters the
constants per episode (then one episode at a time: the vector environment has one set of constants). Its
random numbers come from a fourth stream of the seed (observation noise, forces and jitter each from a child
of it), so the other streams, and data collected without noise, are unchanged.
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

from ..checks import noise_levels, nonnegative_int, positive_int
from ..envs import SystemEnv, env_info, radius_start, to_action
from ..vector_envs import VECTOR_ENV_CLASSES, SystemVectorEnv, vector_env_class
from ..version import __version__
from .noise import ObservationNoise, ProcessNoise, observe, state_spread
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
    obs_noise: ObservationNoise | float | Sequence[float] | None = None,
    process_noise: ProcessNoise | None = None,
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
        obs_noise: observation noise: an :class:`~physwm.data.noise.ObservationNoise`, or standard deviations
            in physical units (a scalar or one per state); ``None``: exact states.
        process_noise: a :class:`~physwm.data.noise.ProcessNoise` (force disturbances, per-episode jitter of
            the constants; physwm environments only); ``None``: none.

    Returns:
        float64 :class:`Trajectories` with ``states [N, T+1, n]`` (``env.unwrapped.state``, plus the
        observation noise; the exact states then as ``clean_states`` and the noise in ``meta["noise"]``),
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

    if obs_noise is not None and not isinstance(obs_noise, ObservationNoise):
        obs_noise = ObservationNoise(tuple(noise_levels(obs_noise, "obs_noise", n)))
    if obs_noise is not None:
        obs_noise.stds(n, np.ones(n))  # checks the length before any work
    jitter: dict[str, float] = {}
    force_std = np.zeros(info.control_dim)
    if process_noise is not None:
        if not isinstance(process_noise, ProcessNoise):
            raise TypeError(f"process_noise must be a ProcessNoise, got {type(process_noise).__name__}")
        if not isinstance(env.unwrapped, SystemEnv):
            raise ValueError(f"process_noise needs a physwm environment (continuous forces), not {info.env_id}")
        force_std = noise_levels(process_noise.force_std, "force_std", info.control_dim)
        jitter = {k: v for k, v in process_noise.jitters(list(info.params.to_dict()), info.system.identify).items()
                  if v > 0}  # fmt: skip
        if jitter and vector:
            raise ValueError("param_jitter gives every episode its own constants: collect with vector=False")

    if isinstance(policy, str):
        policy = make_policy(policy)
    if isinstance(policy, Policy):
        policy = policy.bind(info.system(info.params))
        policy_cfg = policy.config()
    elif callable(policy):
        policy_cfg = {"name": getattr(policy, "__name__", type(policy).__name__)}
    else:
        raise ValueError(f"policy must be a Policy, a policy name {sorted(POLICIES)} or a callable")

    env_ss, policy_ss, start_ss, noise_ss = np.random.SeedSequence(int(seed)).spawn(4)
    obs_rng, force_rng, jitter_rng = (np.random.default_rng(s) for s in noise_ss.spawn(3))
    env_seed = int(env_ss.generate_state(1)[0])
    policy_rngs = [np.random.default_rng(s) for s in policy_ss.spawn(episodes)]
    start_rng = np.random.default_rng(start_ss)
    if start_radius is not None:
        starts = np.stack([radius_start(start_rng, n, start_radius) for _ in range(episodes)])
    else:
        starts = None if box is None else start_rng.uniform(box[0], box[1], size=(episodes, n))

    use_vector = vector is not False and (vector or episodes > 1) and not jitter
    twin = vector_twin(env, episodes, fused) if use_vector else None
    if vector and twin is None:
        raise ValueError("vector=True needs a physwm environment wrapped only by gymnasium.make's own wrappers")
    noise = _Disturbances(force_rng.standard_normal((episodes, T, info.control_dim)) * force_std,
                          _episode_params(info, jitter, jitter_rng, episodes))  # fmt: skip
    run = _run_vector if twin is not None else _run_single
    states, controls, lengths = run(twin or env, info, policy, policy_rngs, env_seed, starts, T, progress, noise)
    clean = None
    noise_meta: dict[str, Any] = {}
    if obs_noise is not None:
        stds = obs_noise.stds(n, state_spread(states, lengths))
        clean, states = states, observe(states, lengths, stds, obs_rng)
        noise_meta.update(obs_std=stds.tolist(), obs_noise=obs_noise.to_dict())
    if process_noise is not None:
        noise_meta["process_noise"] = process_noise.to_dict()
        if jitter:
            noise_meta["episode_params"] = [p.to_dict() for p in noise.params]

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
    if noise_meta:
        meta["noise"] = noise_meta
    return Trajectories(
        torch.from_numpy(states), torch.from_numpy(controls), torch.from_numpy(lengths), dt=info.dt, meta=meta,
        clean_states=None if clean is None else torch.from_numpy(clean),
    )


class _Disturbances:
    """Process noise drawn before the episodes run: forces ``[N, T, m]`` added to the commanded controls and
    the constants of each episode (``None``: the environment's own)."""

    def __init__(self, forces: np.ndarray, params: list | None):
        self.forces, self.params = forces, params


def _episode_params(info: Any, jitter: dict[str, float], rng: np.random.Generator, episodes: int) -> list | None:
    """Each episode's constants: every jittered constant times ``1 + jitter * N(0, 1)`` (floored at 1e-6 of it)."""
    if not jitter:
        return None
    base = info.params.to_dict()
    out = []
    for _ in range(episodes):
        d = dict(base)
        for k, v in jitter.items():
            d[k] = float(base[k]) * max(1.0 + v * rng.standard_normal(), 1e-6)
        out.append(type(info.params).from_dict(d))
    return out


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


def _run_single(env, info, policy, policy_rngs, env_seed, starts, T, progress, noise):
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
        if noise.params is not None:
            unwrapped.set_params(noise.params[ep])
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
            disturbed = noise.forces[ep, t].any()
            _, _, terminated, truncated, step_info = env.step(
                to_action(info, u + noise.forces[ep, t])[0] if disturbed else action
            )
            if "control" in step_info and not disturbed:
                applied = np.asarray(step_info["control"], dtype=np.float64).reshape(m)
            controls[ep, t] = applied
            states[ep, t + 1] = _read_state(unwrapped, n)
            lengths[ep] = t + 1
            if terminated or truncated:
                break
        if progress:
            bar.set_postfix(mean_len=f"{lengths[: ep + 1].mean():.1f}")
    bar.close()
    if noise.params is not None:
        unwrapped.set_params(info.params)
    return states, controls, lengths


def _run_vector(envs: SystemVectorEnv, info, policy, policy_rngs, env_seed, starts, T, progress, noise):
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
        commanded = np.zeros((episodes, m))
        for ep in idx:
            u = _policy_control(policy, states[ep, t], policy_rngs[ep], m, ep, t)
            commanded[ep] = to_action(info, u)[1]
            actions[ep] = to_action(info, u + noise.forces[ep, t])[0]
        actions[~running] = 0.0
        _, _, terminated, truncated, step_info = envs.step(actions)
        controls[idx, t] = step_info["control"][idx] if not noise.forces[:, t].any() else commanded[idx]
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
