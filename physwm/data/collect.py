"""Collection: run a policy in an environment and record the exact states and the controls applied.

One integer seed makes a collection reproducible: equal seeds give identical data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium
import numpy as np
import torch
from tqdm.auto import tqdm

from ..checks import nonnegative_int, positive_int
from ..envs import SystemEnv, env_info, radius_start, to_action
from ..version import __version__
from .policies import POLICIES, Policy, make_policy
from .trajectories import Trajectories

__all__ = ["collect"]


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
        seed: seeds the env (first reset), the policy's generator and the start states, from
            independent streams (``numpy.random.SeedSequence(seed).spawn``).
        start_low, start_high: optional box (scalars or ``n``-vectors) of uniformly random start states,
            given to physwm envs as ``reset(options={"state": ...})`` and written to
            ``env.unwrapped.state`` after reset for gymnasium's own environments. Default: the env's reset.
        progress: show a tqdm progress bar over episodes.
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
    n, m = info.state_dim, info.control_dim
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
    policy_rng = np.random.default_rng(policy_ss)
    start_rng = np.random.default_rng(start_ss)

    unwrapped = env.unwrapped
    physwm_env = isinstance(unwrapped, SystemEnv)
    states = np.full((episodes, T + 1, n), np.nan)
    controls = np.full((episodes, T, m), np.nan)
    lengths = np.zeros(episodes, dtype=np.int64)
    bar = tqdm(range(episodes), desc="collect", unit="ep", disable=not progress)
    for ep in bar:
        reset_seed = env_seed if ep == 0 else None
        if start_radius is not None:
            start = radius_start(start_rng, n, start_radius)
        else:
            start = None if box is None else start_rng.uniform(box[0], box[1])
        if start is not None and physwm_env:
            env.reset(seed=reset_seed, options={"state": start})
        else:
            env.reset(seed=reset_seed)
            if start is not None:
                unwrapped.state = start.copy()
        states[ep, 0] = _read_state(unwrapped, n)
        for t in range(T):
            try:
                u = np.asarray(policy(states[ep, t].copy(), policy_rng), dtype=np.float64).reshape(-1)
            except (TypeError, ValueError) as err:
                raise ValueError(f"the policy must return {m} number(s), the control; got an error: {err}") from err
            if u.shape != (m,):
                raise ValueError(f"the policy returned {u.size} numbers at episode {ep}, step {t}; expected {m}")
            if not np.isfinite(u).all():
                raise ValueError(f"the policy returned a non-finite control {u.tolist()} at episode {ep}, step {t}")
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
