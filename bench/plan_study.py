"""Closed-loop planning study: success rates of CEM with several world models over seeds.

Part 1, balance (the planning issue's check): CEM with the explicit model (CartPole-v1's own
equations, Euler at 20 ms) controls gymnasium ``CartPole-v1`` for 500 steps, population 500, horizon 30,
5 iterations, 50 elites, warm start, from 20 seeded starts. Success = 500 steps without termination.
The hybrid and the MLP, fitted to 200 random-policy episodes of CartPole-v1, plan the same task over
``--seeds`` seeds.

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

Run: ``python bench/plan_study.py --out data/reference/planning.md --overwrite`` (the committed table;
several minutes on 2 cores), ``--seeds N`` for the learned models' and part 2's seeds (default 5),
``--balance-seeds`` for the explicit model's balance seeds (default 20), ``--quick`` for a smoke run.
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
    ap.add_argument("--out", default=None, help="also write the success-rate table as Markdown to this file")
    ap.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
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
    v1 = collect(gym.make("CartPole-v1"), make_policy("random"), episodes=200 if not args.quick else 20,
                 max_steps=500, seed=0, progress=False).to(torch.float32)
    v1_train, v1_val = v1.split((0.8, 0.2), seed=0)
    learned_v1 = {}
    for name, model in (("hybrid", build("hybrid", integrator="euler", seed=0)), ("mlp", build("mlp", seed=0))):
        h = fit(model, v1_train, v1_val, horizon=1, epochs=40 if not args.quick else 5, batch_size=128, lr=3e-3,
                progress=False)
        print(f"{name} (CartPole-v1 data): {h.message}")
        learned_v1[name] = model.eval()
    study_learned = planning_study(learned_v1, "CartPole-v1", "balance", seeds=range(args.seeds), planner="cem",
                                   planner_options={"population": 500, "iterations": 5, "elites": 50, **small})
    print(study_learned.table())

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
    total = time.perf_counter() - t0
    print(f"\ntotal {total:.0f} s")
    if args.out:
        _write_markdown(args.out, [study, study_learned, study2], total, args.overwrite)
        print(f"wrote {args.out}")


def _write_markdown(path, studies, seconds: float, overwrite: bool) -> None:
    from physwm.files import atomic_write_text

    lines = [
        "# Planning with world models: closed-loop success rates",
        "",
        f"physwm {physwm.__version__}; regenerate with `python bench/plan_study.py --out {path} --overwrite` "
        f"({seconds:.0f} s here, 2 cores). CEM, population 500, horizon 30, 5 iterations, 50 elites, warm start. "
        "See the script's docstring for the tasks, the models and their training data.",
        "",
        "| task | environment | model | success | return (mean +- sd) | planning ms/step (mean, p95) |",
        "|---|---|---|---|---|---|",
    ]
    for st in studies:
        for name, s in st.summary().items():
            n = s["episodes"]
            lines.append(f"| {st.task} | {st.env_id} | {name} | {s['success_rate'] * n:.0f}/{n} | "
                         f"{s['return_mean']:.1f} +- {s['return_std']:.1f} | "
                         f"{s['plan_ms_mean']:.1f}, {s['plan_ms_p95']:.1f} |")
    atomic_write_text(path, "\n".join(lines) + "\n", overwrite=overwrite)


if __name__ == "__main__":
    main()
