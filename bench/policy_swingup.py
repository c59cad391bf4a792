"""Benchmark: a policy learned in imagination swinging up the friction CartPole (issue 15: >= 8/10 seeds at
< 1 ms per control step), against MPC with the same model.

Model: the planning benchmarks' ``hybrid (euler)`` (``bench/planning_models.py``: nominal physics with
learnable constants plus a residual, fitted to 40 episodes x 100 steps of the friction CartPole under
uniform random forces from starts over the whole circle). No other true-environment transition is used.

Policy (``--method distil``, the default here): :func:`physwm.control.learn_policy` with
``method="distil"`` and its default options (:func:`physwm.control.distil.distil_planner`: 6 DAgger rounds
of 8 imagined episodes of 200 steps in the model, half from the task's hanging start box, half
from a wide box over every angle; every visited state labelled by iLQR with real-time iterations planning
on the same model; the policy regressed on all labels). ``--rounds``/``--episodes``/``--steps`` override.

``--method gradient``: analytic gradients through the hybrid (SHAC-style), with two optional aids, a
curriculum of start states (``--starts all``: uniform over ``|x| <= 1``, ``|x_dot| <= 1``, every angle,
``|theta_dot| <= 4``; ``mix``: half of them from the task's start box; ``task``: the box only) and an
energy-shaping term ``--energy-weight * (e - 1)^2`` (``e = cos theta + (2/3) l theta_dot^2 / g``, the
pole's energy in units of its upright potential). Measured earlier on a loaded 2-core machine:
``--iterations 300 --envs 64 --horizon 32 --starts mix``: 0/10, the pole spins over the top; ``--iterations
400 --starts mix --energy-weight 0.5``: 0/10; ``--iterations 250 --horizon 64 --lr 1e-3 --starts all
--energy-weight 0.5``: 0/10 (the imagined cost per step levels off near 1: a local optimum of short-horizon
gradients).

Evaluation: ``--seeds`` seeded episodes of the task on ``physwm/CartPole-v0`` (friction, no termination, 350
steps, start within +-0.05 of hanging; success: upright within 5 s and held for 2 s): successes, mean
return and the median CPU ms per control step (``time.process_time``, steadier than the wall clock on a
shared machine). MPC with the same model: the planner the policy imitates (iLQR, ``warm_iterations=1``,
compiled), on ``--mpc-seeds`` full episodes; the ratio of the two times is printed.

Measured with the default command on a loaded 2-core machine (CPU times): learning 170 s; the policy 10/10
swing-ups, mean return 350.0, 0.534 ms per control step; MPC (iLQR, same model) 2/2, 8.62 ms per step, 16x
the policy's. ``--seed 1`` (another learning seed): 10/10, 0.529 ms. A smaller budget (``--rounds 4
--episodes 6 --steps 350``) gave 7/10.

Run: ``python bench/policy_swingup.py`` (a few minutes of CPU; more wall time on a shared machine).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time

import numpy as np
import torch
from planning_models import make_models

from physwm.control import default_planner_options, get_task, learn_policy, make_env, make_planner, run_episode
from physwm.control.distil import DEFAULT_DISTIL_PLANNER
from physwm.systems.cartpole import swingup_cost


def energy_shaped(weight: float, half_length: float = 0.5, gravity: float = 9.8):
    """The swing-up cost plus ``weight * (e - 1)^2`` (see the module docstring)."""

    def cost(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        e = torch.cos(x[..., 2]) + (2.0 / 3.0) * half_length * x[..., 3].square() / gravity
        return swingup_cost(x, u) + weight * (e - 1.0).square()

    return cost


def curriculum(kind: str, k: int, seed: int) -> torch.Tensor | None:
    """``[k, 4]`` start states of the imagined episodes (None: the task's start box)."""
    if kind == "task":
        return None
    g = torch.Generator().manual_seed(seed)
    high = torch.tensor([1.0, 1.0, math.pi, 4.0])
    starts = -high + 2 * high * torch.rand(k, 4, generator=g)
    if kind == "mix":
        box = 0.05 * (2 * torch.rand(k // 2, 4, generator=g) - 1)
        starts[: k // 2] = torch.tensor([0.0, 0.0, math.pi, 0.0]) + box
    return starts


def learn(model, args):
    """The learned policy of ``args.method`` (see the module docstring)."""
    if args.method == "distil":
        options = {k: getattr(args, k) for k in ("rounds", "episodes", "steps") if getattr(args, k) is not None}
        return learn_policy(model, "swingup", method="distil", distil_options=options, hidden=args.hidden,
                            seed=args.seed, progress=False)  # fmt: skip
    task = get_task("swingup")
    if args.energy_weight > 0:
        task = dataclasses.replace(task, cost=energy_shaped(args.energy_weight))
    return learn_policy(model, task, iterations=args.iterations, envs=args.envs, horizon=args.horizon, lr=args.lr,
                        hidden=args.hidden, starts=curriculum(args.starts, 8192, 0), seed=args.seed,
                        progress=False)  # fmt: skip


def ms_per_step(episodes) -> float:
    """Median CPU ms per control step over ``episodes``."""
    return 1e3 * float(np.median(np.concatenate([e.plan_cpu_times for e in episodes])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=["distil", "gradient"], default="distil")
    parser.add_argument("--rounds", type=int, default=None, help="distil: DAgger rounds (default learn_policy's)")
    parser.add_argument("--episodes", type=int, default=None, help="distil: imagined episodes per round")
    parser.add_argument("--steps", type=int, default=None, help="distil: steps per imagined episode")
    parser.add_argument("--iterations", type=int, default=300, help="gradient only")
    parser.add_argument("--envs", type=int, default=64, help="gradient only")
    parser.add_argument("--horizon", type=int, default=32, help="gradient only")
    parser.add_argument("--lr", type=float, default=2e-3, help="gradient only")
    parser.add_argument("--starts", choices=["task", "mix", "all"], default="mix", help="gradient only")
    parser.add_argument("--energy-weight", type=float, default=0.0, help="gradient only")
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--seed", type=int, default=0, help="seed of the policy's learning")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--mpc-seeds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = make_models("swingup", ["hybrid (euler)"])["hybrid (euler)"]
    c0 = time.process_time()
    learned = learn(model, args)
    learn_s = time.process_time() - c0
    env = make_env("physwm/CartPole-v0", "swingup")
    eps = [run_episode(learned.freeze(), env, "swingup", seed=s) for s in range(args.seeds)]
    ms = ms_per_step(eps)
    summary = {k: [round(v, 4) for v in vals[-3:]] for k, vals in learned.history.items() if vals}
    print(f"{vars(args)}\n  learned in {learn_s:.0f} s CPU (history, last values: {summary})\n"
          f"  policy: {sum(e.success for e in eps)}/{len(eps)} swing-ups, mean return "
          f"{np.mean([e.ret for e in eps]):.1f}, {ms:.3f} ms CPU per control step (median)", flush=True)
    if args.mpc_seeds:
        name, options = DEFAULT_DISTIL_PLANNER
        planner = make_planner(name, model, get_task("swingup").cost, **options,
                               **default_planner_options(env, "swingup"))  # fmt: skip
        run_episode(planner, env, "swingup", seed=0, steps=2)  # compile outside the timing
        mpc = [run_episode(planner, env, "swingup", seed=s) for s in range(args.mpc_seeds)]
        mpc_ms = ms_per_step(mpc)
        print(f"  MPC ({name} {options}, same model): {sum(e.success for e in mpc)}/{len(mpc)} swing-ups, "
              f"{mpc_ms:.2f} ms CPU per control step (median); MPC / policy time = {mpc_ms / ms:.0f}x")


if __name__ == "__main__":
    main()
