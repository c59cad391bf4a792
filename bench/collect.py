"""Benchmark: collecting friction-CartPole data (RK4, 10 sub-steps) and stepping its vector environment.

Two comparisons, each printed as a ratio of rates measured in the same run (timings on a shared machine
fall on every contender alike: contenders are timed round-robin and the best repeat is kept):

1. ``physwm.collect`` of ``--episodes`` (64) episodes of ``--steps`` (500) steps of the CartPole with
   friction (``physwm/CartPole-v0``, ``FRICTION_PARAMS``, ``terminate=False``, RK4 with 10 sub-steps per
   20 ms, uniform random forces):

   * ``single env``: ``collect(..., vector=False)``, one episode after another, one state per step (the
     path every collection took before the vector environments). Its cost is linear in the transitions,
     so it is timed on ``--single-episodes`` (4) episodes and reported per transition (``--full``: all).
   * ``vector env, eager``: ``collect(...)`` with ``fused=False``: all episodes in lock step, one batched
     eager PyTorch step per time step (collect's default).
   * ``vector env, fused``: ``fused=True``: the step compiled (``physwm.integrators.compiled_vector_step``).
     The first collection compiles (its time is printed separately); the timed runs reuse the compiled
     code of the process (and inductor's on-disk cache).

2. Env-steps per second at ``--num-envs`` (1,024) environments: physwm's vector environment of the
   friction CartPole (RK4, 10 sub-steps: 40 evaluations of the equations per step, with friction
   terms) against gymnasium's ``CartPoleVectorEnv`` (``gym.make_vec("CartPole-v1", ...,
   vectorization_mode="vector_entry_point")``, numpy float64, one Euler evaluation per step). Both
   with next-step autoreset, termination and truncation checks, rewards and float32 observations;
   actions are drawn before timing.

3. ``--study``: every data set of the default study (``physwm demo``), collected in this process one
   after another, one episode at a time (``vector=False``) and the study's way (``collect``'s default),
   each once: the collection share of the default study's wall time, before and after.

Run: ``python bench/collect.py`` (``--quick`` for a short run). ``--threads`` sets torch's intra-op
threads (default 1: one core against numpy's one core).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

# Run from a source checkout even when physwm is not installed (or installed elsewhere).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import physwm  # noqa: E402
from physwm import collect  # noqa: E402
from physwm.envs import make_env  # noqa: E402

ENV = "physwm/CartPole-v0"


def best_times(runs: dict, repeats: int) -> dict:
    """Best wall time of each callable over ``repeats`` rounds, round-robin (one run of each per round)."""
    best = dict.fromkeys(runs, math.inf)
    for _ in range(repeats):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def friction_env(max_steps: int):
    env = make_env(ENV, params="friction", terminate=False, max_episode_steps=max_steps)
    assert repr(env.unwrapped.integrator) == "RK4(substeps=10)", env.unwrapped.integrator
    return env


def bench_collect(episodes: int, steps: int, single_episodes: int, repeats: int) -> dict:
    env = friction_env(steps)

    def run(n, **kw):
        return collect(env, "uniform", episodes=n, max_steps=steps, seed=0, progress=False, **kw)

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a compile fallback would be a silent eager run
        first = run(episodes, fused=True)
    compile_run_s = time.perf_counter() - t0
    eager = run(episodes, fused=False)
    # same starts and noise; round-off apart, the same data (CartPole amplifies round-off along episodes)
    err20 = float((first.states[:, :21] - eager.states[:, :21]).abs().max())
    seconds = best_times({
        "single env": lambda: run(single_episodes, vector=False),
        "vector env, eager": lambda: run(episodes, fused=False),
        "vector env, fused": lambda: run(episodes, fused=True),
    }, repeats)  # fmt: skip
    per_transition = {k: v / ((single_episodes if k == "single env" else episodes) * steps) for k, v in seconds.items()}
    return {"per_transition": per_transition, "compile_run_s": compile_run_s, "err20": err20}


def bench_vector_env(num_envs: int, steps: int, repeats: int) -> dict:
    gym_env = gym.make_vec("CartPole-v1", num_envs=num_envs, vectorization_mode="vector_entry_point")
    ours = {
        fused: gym.make_vec(ENV, num_envs=num_envs, vectorization_mode="vector_entry_point",
                            params=physwm.FRICTION_PARAMS, terminate=False, fused=fused)
        for fused in (True, False)
    }  # fmt: skip
    rng = np.random.default_rng(0)
    discrete = rng.integers(0, 2, size=(steps, num_envs))
    forces = rng.uniform(-10, 10, size=(steps, num_envs, 1)).astype(np.float32)
    gym_env.reset(seed=0)
    for e in ours.values():
        e.reset(seed=0)
    t0 = time.perf_counter()
    ours[True].step(forces[0])  # compiles
    compile_s = time.perf_counter() - t0

    def loop(env, actions, n):
        def run():
            for t in range(n):
                env.step(actions[t])

        return run

    eager_steps = max(2, steps // 10)
    seconds = best_times({
        "gymnasium CartPoleVectorEnv (Euler, no friction)": loop(gym_env, discrete, steps),
        "physwm vector env, fused (RK4 x 10, friction)": loop(ours[True], forces, steps),
        "physwm vector env, eager (RK4 x 10, friction)": loop(ours[False], forces, eager_steps),
    }, repeats)  # fmt: skip
    n_steps = {k: (eager_steps if "eager" in k else steps) for k in seconds}
    return {"rates": {k: num_envs * n_steps[k] / v for k, v in seconds.items()}, "compile_s": compile_s,
            "compiled": ours[True].unwrapped.fused_step.compiled}


def bench_study() -> dict:
    """Seconds to collect every split of the default study, one episode at a time and the default way."""
    from physwm.data import make_policy
    from physwm.studies import default_config

    cfg = default_config()
    seconds = {"single env": 0.0, "default (vector env)": 0.0}
    for task in cfg.tasks:
        system = task.system_class
        for split in (task.train, task.val_split(), *task.tests):
            env_id = split.env_id(system)
            for label, vector in (("single env", False), ("default (vector env)", None)):
                if env_id == system.env_id:
                    env = make_env(env_id, params=task.true_params(split), max_episode_steps=split.max_steps,
                                   **split.env_options)
                else:
                    env = make_env(env_id, max_episode_steps=max(500, split.max_steps))
                t0 = time.perf_counter()
                collect(env, make_policy(split.policy, **split.policy_options), episodes=split.episodes,
                        max_steps=split.max_steps, seed=split.seed, start_low=split.start_low,
                        start_high=split.start_high, progress=False, vector=vector)
                seconds[label] += time.perf_counter() - t0
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and steps")
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--single-episodes", type=int, default=4, help="episodes the single-env path is timed on")
    parser.add_argument("--full", action="store_true", help="time the single-env path on all --episodes")
    parser.add_argument("--num-envs", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--study", action="store_true", help="only: the default study's data sets, both ways")
    args = parser.parse_args(argv)
    for name in ("episodes", "steps", "single_episodes", "num_envs", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    torch.set_num_threads(args.threads)
    if args.study:
        s = bench_study()
        print(f"default study's data sets, collected one after another in one process (torch threads "
              f"{args.threads}): one episode at a time {s['single env']:.1f} s, the default way "
              f"{s['default (vector env)']:.1f} s ({s['single env'] / s['default (vector env)']:.1f}x)")
        return 0
    repeats = 2 if args.quick else 3
    single = args.episodes if args.full else min(args.single_episodes, args.episodes)
    print(f"torch {torch.__version__}, gymnasium {gym.__version__}, numpy {np.__version__}; torch threads "
          f"{args.threads}; best of {repeats} round-robin repeats")

    c = bench_collect(args.episodes, args.steps, single, repeats)
    t = c["per_transition"]
    base = t["single env"]
    total = args.episodes * args.steps
    print(f"\n1. collect {args.episodes} episodes x {args.steps} steps, friction CartPole, RK4 x 10 sub-steps "
          f"({total} transitions; single env timed on {single} episodes)")
    print(f"   {'path':<22} {'s (whole collection)':>21} {'us/transition':>14} {'speed-up':>9}")
    for k, v in t.items():
        print(f"   {k:<22} {v * total:>21.2f} {v * 1e6:>14.1f} {base / v:>8.1f}x")
    print(f"   fused: first collection (compiles) {c['compile_run_s']:.1f} s; max|fused - eager| over the first "
          f"20 steps {c['err20']:.1e}")

    steps = 50 if args.quick else 200
    v = bench_vector_env(args.num_envs, steps, repeats)
    r = v["rates"]
    g = r["gymnasium CartPoleVectorEnv (Euler, no friction)"]
    fallback = "" if v["compiled"] else "; COMPILATION FAILED: eager fallback"
    print(f"\n2. vector environments, {args.num_envs} envs, env-steps/s (fused compile {v['compile_s']:.1f} s, "
          f"not counted{fallback})")
    for k, rate in r.items():
        print(f"   {k:<50} {rate:>11.3g} {rate / g:>6.2f}x")
    print("\nratios (same run): collect vector fused / single "
          f"{base / t['vector env, fused']:.1f}x, vector eager / single {base / t['vector env, eager']:.1f}x; "
          f"vector env fused / gymnasium {r['physwm vector env, fused (RK4 x 10, friction)'] / g:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
