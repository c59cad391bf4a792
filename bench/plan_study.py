"""Closed-loop planning study: success rates of CEM with several world models over seeds.

Part 1, balance (the "world models" issue's check): CEM with the explicit model (CartPole-v1's own
equations, Euler at 20 ms) controls gymnasium ``CartPole-v1`` for 500 steps, population 500, horizon 30,
5 iterations, 50 elites, warm start, from 20 seeded starts. Success = 500 steps without termination.

Part 2, swing-up on the CartPole with friction (``physwm/CartPole-v0``, ``FRICTION_PARAMS``, no
termination; start hanging, uniformly within +-0.05 of ``[0, 0, pi, 0]``): success = upright
(``|theta| <= 12 deg`` wrapped, ``|x| <= 2.4 m``) from some time <= 5 s to the end of the 7 s episode.
Models:

* ``explicit``: the true equations and constants (Euler at 20 ms; the env integrates RK4 x 10);
* ``nominal``: CartPole-v1's frictionless equations (what one knows without identification);
* ``hybrid``: ``build("hybrid", integrator="euler")`` (nominal physics with learnable constants plus an
  acceleration residual network) fitted to data of the friction CartPole;
* ``mlp``: ``build("mlp")``, a purely learned model, fitted to the same data.

Training data: 40 episodes x 100 steps of uniform random forces from starts spread over the whole
circle of angles, collected from the true env with ``physwm.data.collect``; one-step loss, 40 epochs.

Run: ``python bench/plan_study.py`` (a few minutes on 2 cores), ``--seeds N`` for part 2's seeds
(default 5), ``--balance-seeds`` for part 1's (default 20), ``--quick`` for a smoke run.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

import physwm
from physwm.control import planning_study
from physwm.data import collect, make_policy
from physwm.envs import FRICTION_PARAMS
from physwm.models import ODEModel, build
from physwm.train import fit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--balance-seeds", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=5, help="swing-up seeds per model (default 5)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 seeds each, small planners")
    args = ap.parse_args()
    torch.set_num_threads(1)
    small = {"population": 100, "iterations": 3, "elites": 10} if args.quick else {}
    if args.quick:
        args.balance_seeds, args.seeds = 2, 2
    t0 = time.perf_counter()

    print("== balance: CEM on gymnasium CartPole-v1 with the explicit model ==")
    explicit_v1 = ODEModel(physwm.CartPole(), integrator="euler")
    study = planning_study({"explicit": explicit_v1}, "CartPole-v1", "balance", seeds=range(args.balance_seeds),
                           planner="cem", planner_options={"population": 500, "iterations": 5, "elites": 50,
                                                           **small})
    print(study.table())
    failed = [e.seed for e in study.episodes["explicit"] if not e.success]
    print(f"failed seeds: {failed or 'none'}; max |x| over episodes: "
          f"{max(np.abs(e.states[:, 0]).max() for e in study.episodes['explicit']):.2f} m\n")

    print("== swing-up: CEM on the CartPole with friction (physwm/CartPole-v0) ==")
    env = gym.make("physwm/CartPole-v0", params=FRICTION_PARAMS, terminate=False, max_episode_steps=100)
    data = collect(env, make_policy("uniform"), episodes=40 if not args.quick else 10, max_steps=100, seed=0,
                   start_low=[-1.0, -1.0, -np.pi, -3.0], start_high=[1.0, 1.0, np.pi, 3.0], progress=False)
    env.close()
    data = data.to(torch.float32)
    train, val = data.split((0.8, 0.2), seed=0)
    models = {
        "explicit": ODEModel(physwm.CartPole(FRICTION_PARAMS), integrator="euler"),
        "nominal": ODEModel(physwm.CartPole(), integrator="euler"),
    }
    for name, model in (("hybrid", build("hybrid", integrator="euler", seed=0)), ("mlp", build("mlp", seed=0))):
        h = fit(model, train, val, horizon=1, epochs=40 if not args.quick else 5, batch_size=128, lr=3e-3,
                progress=False)
        print(f"{name}: {h.message}; best val 10-step RMSE (normalised) {h.best_val_error:.4g}")
        models[name] = model.eval()
    print("hybrid identified:", {k: round(v, 4) for k, v in models["hybrid"].field.physics.identified().items()},
          "(true:", {k: v for k, v in FRICTION_PARAMS.to_dict().items() if k in
                     ("cart_viscous", "cart_coulomb", "pole_damping")}, ")")
    study2 = planning_study(models, "physwm/CartPole-v0", "swingup", seeds=range(args.seeds), planner="cem",
                            planner_options={"population": 500, "iterations": 5, "elites": 50, **small})
    print(study2.table())
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
