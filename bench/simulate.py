"""Benchmark: batched CartPole simulation, physwm (float32) against gymnasium's numpy vector env.

Prints env-steps per second at several batch sizes N, measured in the same run, and the ratio
physwm / gymnasium. What each contender does per env-step:

* ``gymnasium``: ``gym.make_vec("CartPole-v1", num_envs=N, vectorization_mode="vector_entry_point")``
  (numpy, float64): action check, dynamics, Euler at tau = 0.02 s, termination and truncation checks,
  reward, autoreset of finished envs, float32 observation copy. Actions are drawn before timing.
* ``physwm eager``: ``Euler().rollout(CartPole(), x0, u, 0.02)``, plain PyTorch, one small op at a time:
  dynamics, Euler, all states stored ``[N, T+1, 4]``.
* ``physwm fused``: ``physwm.compiled_rollout(CartPole(), Euler(), 0.02)``, the same
  ``cartpole_dynamics`` and Euler step compiled by torch.compile (inductor, C++) into one loop:
  dynamics, Euler, all states stored (input checks included).
* ``fused + termination``: the fused rollout plus gymnasium's termination flags (``|x| > 2.4`` or
  ``|theta| > 12 deg``) for every stored state (five element-wise torch ops over the whole rollout).
* ``..., output reused``: the same, writing the states into the previous call's array (``out=``)
  instead of fresh memory: a loop of rollouts of one shape need not allocate (fresh pages cost the
  operating system a zero-fill, which is a large share of the time at large N on these machines).

No physwm path resets finished episodes: the rollouts are open loop over the whole horizon. Compile
time is measured separately (first call at each N) and is not part of steps/s. Every timing is the
best of several repeats, taken round-robin over the contenders (the machine may be shared).

Run: ``python bench/simulate.py`` (or ``--quick``). ``--threads`` sets torch's intra-op threads for the
physwm paths: the default ``auto`` uses 1 thread below 4096 envs and every core above (the machine's two
cores; gymnasium's numpy cannot use the second). ``--threads 1`` compares one core with one core and is
the robust choice on a shared machine: an OpenMP kernel whose second thread is descheduled by another
process waits for it, which can make 2-thread runs many times slower while other jobs run. Torch puts
large tensors on transparent huge pages (``THP_MEM_ALLOC_ENABLE=1``, as numpy already does for its
arrays of 4 MB and more), so a fresh ``[N, T+1, 4]`` output costs far fewer page faults; ``--no-thp``
turns that off.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

# Run from a source checkout even when physwm is not installed (or installed elsewhere).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# torch's CPU allocator backs tensors >= 2 MB with transparent huge pages when this is set before
# its first allocation (torch >= 2.2), so fresh outputs cost far fewer page faults.
if "--no-thp" not in sys.argv[1:]:
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from physwm import (  # noqa: E402
    CartPole,
    Euler,
    compiled_rollout,  # noqa: E402
)

X_THRESHOLD = 2.4
THETA_THRESHOLD = 12 * 2 * math.pi / 360


def _best_times(runs: dict, repeats: int, min_seconds: float, max_rounds: int = 200) -> dict:
    """Best wall time of each callable, timed round-robin (one run of each per round) for at least
    ``repeats`` rounds and until every contender has run ``min_seconds`` in total, so that load from
    other processes on a shared machine falls on every contender alike and each gets quiet moments."""
    best = dict.fromkeys(runs, math.inf)
    spent = dict.fromkeys(runs, 0.0)
    for round_ in range(max_rounds):
        if round_ >= repeats and min(spent.values()) >= min_seconds:
            break
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            best[name] = min(best[name], dt)
            spent[name] += dt
    return best


def gymnasium_run(n: int, steps: int, seed: int = 0):
    env = gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode="vector_entry_point")
    env.reset(seed=seed)
    actions = np.random.default_rng(seed).integers(0, 2, size=(steps, n))
    for t in range(min(steps, 5)):  # warm up
        env.step(actions[t])

    def run():
        for t in range(steps):
            env.step(actions[t])

    return run


def _inputs(n: int, steps: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x0 = (torch.rand(n, 4, generator=g) - 0.5) * 0.1  # gymnasium's reset distribution
    force = torch.where(torch.rand(n, steps, 1, generator=g) < 0.5, -10.0, 10.0)  # random discrete actions
    return x0, force


def _terminated(states: torch.Tensor) -> torch.Tensor:
    """Termination flags ``[N, T+1]`` of ``states [N, T+1, 4]``, computed time-major (the rollout's layout).

    Five eager element-wise ops; faster here than inductor's kernel, whose bool stores are slow.
    """
    s = states.permute(1, 2, 0)  # [T+1, 4, N], contiguous for a fused rollout's result
    return ((s[:, 0].abs() > X_THRESHOLD) | (s[:, 2].abs() > THETA_THRESHOLD)).t()


def bench_size(n: int, steps: int, repeats: int, chunk: int, min_seconds: float) -> dict:
    """Env-steps/s of every contender at ``n`` envs and ``steps`` steps, plus compile time and accuracy."""
    field, euler = CartPole(), Euler()
    x0, u = _inputs(n, steps)
    rollout = compiled_rollout(field, euler, 0.02, chunk=chunk)
    t0 = time.perf_counter()
    states = rollout(x0, u)
    compile_s = time.perf_counter() - t0
    # Accuracy on a short horizon: CartPole is chaotic, round-off grows along long rollouts.
    h = min(steps, 20)
    max_err = float((rollout(x0, u[:, :h]) - euler.rollout(field, x0, u[:, :h], 0.02)).abs().max())
    runs = {
        "gymnasium CartPoleVectorEnv (numpy)": gymnasium_run(n, steps),
        "physwm eager Euler().rollout": lambda: euler.rollout(field, x0, u, 0.02),
        "physwm fused": lambda: rollout(x0, u),
        "physwm fused + termination": lambda: _terminated(rollout(x0, u)),
        "physwm fused, output reused": lambda: rollout(x0, u, out=states),
        "physwm fused + termination, output reused": lambda: _terminated(rollout(x0, u, out=states)),
    }
    seconds = _best_times(runs, repeats, min_seconds)
    return {"rates": {k: n * steps / v for k, v in seconds.items()}, "compile_s": compile_s, "err": max_err,
            "compiled": rollout.compiled}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats (a short run)")
    parser.add_argument("--sizes", default="1,64,1024,16384", help="comma-separated numbers of envs")
    parser.add_argument("--threads", default="auto",
                        help="torch threads for physwm: a number, or auto (1 below 4096 envs, else all cores)")
    parser.add_argument("--chunk", type=int, default=8, help="steps fused per compiled call")
    parser.add_argument("--repeats", type=int, default=None, help="least timing rounds (best is kept)")
    parser.add_argument("--no-thp", action="store_true",
                        help="do not set THP_MEM_ALLOC_ENABLE=1 (torch then allocates large tensors on small pages)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not sizes or min(sizes) < 1:
        parser.error(f"--sizes must be positive integers, got {args.sizes!r}")
    if args.threads != "auto" and not (args.threads.isdigit() and int(args.threads) >= 1):
        parser.error(f"--threads must be a positive integer or auto, got {args.threads!r}")
    cores = os.cpu_count() or 1
    repeats = args.repeats or (3 if args.quick else 7)
    min_seconds = 0.1 if args.quick else 0.5  # per contender and N; more rounds while it is not reached
    budget = 2e5 if args.quick else 2e6  # env-steps per timed gymnasium run

    print(f"CartPole simulation, env-steps/s (best of >= {repeats} runs and >= {min_seconds} s per method); "
          f"torch {torch.__version__}, gymnasium {gym.__version__}, numpy {np.__version__}, {cores} CPUs; "
          f"fused chunk = {args.chunk} steps; THP_MEM_ALLOC_ENABLE={os.environ.get('THP_MEM_ALLOC_ENABLE', 'unset')}")
    print(f"{'N':>6} {'T':>4} {'thr':>3}  {'method':<42} {'env-steps/s':>11} {'vs gym':>7}")
    summary = []
    for n in sizes:
        steps = int(min(500, max(20, budget // n)))
        steps = -(-steps // args.chunk) * args.chunk  # whole chunks
        threads = int(args.threads) if args.threads != "auto" else (1 if n < 4096 else cores)
        torch.set_num_threads(threads)  # before compiling: inductor's C++ kernels specialise on it
        f = bench_size(n, steps, repeats, args.chunk, min_seconds)
        r = f["rates"]
        g = r["gymnasium CartPoleVectorEnv (numpy)"]
        print("-" * 78)
        for i, (name, rate) in enumerate(r.items()):
            lead = f"{n:>6} {steps:>4} {threads:>3}" if i == 0 else " " * 14
            print(f"{lead}  {name:<42} {rate:>11.3g} {rate / g:>7.2f}")
        fallback = "" if f["compiled"] else "  COMPILATION FAILED: eager fallback"
        print(f"{'':>14}  compile {f['compile_s']:.1f} s (first call, not in steps/s); "
              f"max|fused - eager| over 20 steps {f['err']:.1e}{fallback}", flush=True)
        summary.append((n, g, r["physwm fused"], r["physwm fused + termination"], r["physwm fused, output reused"]))
    print("=" * 86)
    print(f"{'N':>6}  {'gymnasium':>10}  {'fused':>10} {'ratio':>6}  {'fused+term':>10} {'ratio':>6}  "
          f"{'fused, out reused':>17} {'ratio':>6}")
    for n, g, fused, term, reused in summary:
        print(f"{n:>6}  {g:>10.3g}  {fused:>10.3g} {fused / g:>6.2f}  {term:>10.3g} {term / g:>6.2f}  "
              f"{reused:>17.3g} {reused / g:>6.2f}")
    print("gymnasium: dynamics, Euler, termination/truncation, reward, autoreset, float32 obs (numpy float64, "
          "1 thread).\nphyswm: dynamics, Euler, every state stored [N, T+1, 4] (float32, 'thr' torch threads); "
          "'+ termination'\nadds gymnasium's termination flags of every state; 'reused' writes the states into "
          "the previous call's\narray instead of fresh memory. physwm never autoresets (open-loop rollouts).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
