"""Benchmark: a policy learned in imagination against MPC with the same model (issue 15).

Setting: the default hybrid (``build("hybrid")``; untrained, so its vector field is CartPole-v1's nominal
equations integrated by RK4, the residual network evaluated and outputting 0), the ``balance`` task. The
policy is trained by :func:`physwm.control.learn_policy` with its defaults (analytic gradients, 100 updates of
64 imagined episodes x 32 steps; ``--iterations`` overrides) purely on the model, then run on gymnasium's
CartPole-v1 (discrete +-10 N: the sign of the policy's force) for ``--seeds`` seeded episodes of the task's
500 steps: successes, mean return (steps survived) and the median wall-clock ms per control step. MPC: CEM
(:func:`physwm.control.default_planner_options`, population 500, 5 iterations) with the same model, on
``--mpc-seeds`` episodes of ``--mpc-steps`` steps (timing and survival only; full MPC episodes on this model
are measured by ``bench/plan.py``). Both timed in the same run; the ratio is printed.

Measured (loaded 2-core machine, the default command): 20/20 successes, mean return 500.0, median 0.062 ms
per control step (wall); learning 272 s wall; CEM 1150 ms per step (wall, inflated by the load).

Run: ``python bench/policy.py`` (a few minutes on a shared machine) or ``python bench/policy.py --quick``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from physwm.control import CEM, default_planner_options, get_task, learn_policy, make_env, run_episode
from physwm.models import build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=None, help="default: learn_policy's")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--mpc-seeds", type=int, default=2)
    parser.add_argument("--mpc-steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="60 iterations, 5 seeds, 1 MPC episode of 15 steps")
    args = parser.parse_args()
    if args.quick:
        args.iterations, args.seeds, args.mpc_seeds, args.mpc_steps = 60, 5, 1, 15
    torch.set_num_threads(args.threads)
    model = build("hybrid")
    t0 = time.perf_counter()
    extra = {} if args.iterations is None else {"iterations": args.iterations}
    learned = learn_policy(model, "balance", seed=0, progress=False, **extra)
    train_s = time.perf_counter() - t0
    policy = learned.freeze()
    env = make_env("CartPole-v1", task="balance")
    eps = [run_episode(policy, env, "balance", seed=s) for s in range(args.seeds)]
    pol_ms = 1e3 * float(np.median(np.concatenate([e.plan_times for e in eps])))
    wins = sum(e.success for e in eps)
    ret = float(np.mean([len(e.controls) for e in eps]))
    task = get_task("balance")
    cem = CEM(model, task.cost, population=500, iterations=5, seed=0, **default_planner_options(env, "balance"))
    mpc = [run_episode(cem, env, "balance", seed=s, steps=args.mpc_steps) for s in range(args.mpc_seeds)]
    mpc_ms = 1e3 * float(np.median(np.concatenate([e.plan_times for e in mpc])))
    mpc_up = sum(not e.terminated for e in mpc)
    print(f"threads={args.threads}; hybrid (untrained: CartPole-v1's equations, RK4), balance on CartPole-v1")
    its = len(learned.history["cost"])
    print(f"  learned policy: {its} iterations in {train_s:.1f} s; {wins}/{args.seeds} successes, "
          f"mean return {ret:.1f} steps; median {pol_ms:.3f} ms per control step")
    print(f"  CEM MPC, same model: median {mpc_ms:.1f} ms per control step ({mpc_up}/{args.mpc_seeds} up after "
          f"{args.mpc_steps} steps); MPC / policy time = {mpc_ms / pol_ms:.0f}x")


if __name__ == "__main__":
    main()
