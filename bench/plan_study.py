"""Closed-loop planning study: success rates of every planner with several world models over seeds.

Planners: ``cem`` (population 500, horizon from the task, 5 iterations, 50 elites, warm start; the table's
original rows), ``mppi`` (population 500, 1 iteration), and the gradient-based ones with their defaults:
``ilqr`` (5 iterations, 5 step sizes), ``ilqr_rt`` (iLQR with real-time iterations: ``warm_iterations=1``),
``shooting`` (4 restarts x 10 Adam steps) and ``cem_gd`` (CEM 100 x 3 iterations, then 5 Adam steps). ODE
models are planned on compiled rollouts (the default where a C++ compiler is found).

Part 1, balance (the planning issue's check): the explicit model (CartPole-v1's own equations, Euler at
20 ms) controls gymnasium ``CartPole-v1`` for 500 steps, horizon 30, from ``--balance-seeds`` seeded starts.
Success = 500 steps without termination. The hybrid (``build("hybrid", integrator="euler")``) and the MLP,
fitted to 200 random-policy episodes of CartPole-v1, plan the same task over ``--seeds`` seeds.

Part 2, swing-up on the CartPole with friction (``physwm/CartPole-v0``, ``FRICTION_PARAMS``, no termination;
start hanging, uniformly within +-0.05 of ``[0, 0, pi, 0]``, horizon 40): success = upright (``|theta| <= 12
deg`` wrapped, ``|x| <= 2.4 m``) from some time <= 5 s to the end of the 7 s episode. Models:

* ``explicit``: the true equations and constants (Euler at 20 ms; the env integrates RK4 x 10);
* ``nominal``: CartPole-v1's frictionless equations (what one knows without identification);
* ``hybrid (euler)``: nominal physics with learnable constants plus an acceleration residual network,
  fitted to data of the friction CartPole;
* ``mlp``: ``build("mlp")``, a purely learned model, fitted to the same data.

Learned policy (both parts): a policy learned in imagination on the ``hybrid (euler)`` model of the task
(:func:`physwm.control.learn_policy`: analytic gradients for balance, iLQR distilled on imagined states for
the swing-up; ``POLICY_OPTIONS`` per task), never trained on the true environment, run on the same seeds
(:func:`physwm.control.policy_study`; planner column ``policy``).

Training data and fits: ``bench/planning_models.py`` (40 episodes x 100 steps of uniform random forces from
starts spread over the whole circle of angles; one-step loss, 40 epochs).

Run: ``python bench/plan_study.py --out data/reference/planning.md --overwrite`` (the committed table;
about an hour on a loaded 2-core machine), ``--seeds N`` for the learned models' and part 2's seeds (default
5), ``--balance-seeds`` for the explicit model's balance seeds (default 20), ``--planners`` to select,
``--quick`` for a smoke run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from planning_models import make_models

import physwm
from physwm.control import learn_policy, planning_study, policy_study

#: table row name -> (planner, options); QUICK_OPTIONS: the smoke run's
PLANNER_OPTIONS = {"cem": ("cem", {"population": 500, "iterations": 5, "elites": 50}), "mppi": ("mppi", {}),
                   "ilqr": ("ilqr", {}), "ilqr_rt": ("ilqr", {"warm_iterations": 1}), "shooting": ("shooting", {}),
                   "cem_gd": ("cem_gd", {})}
QUICK_OPTIONS = {"cem": ("cem", {"population": 100, "iterations": 3, "elites": 10}),
                 "mppi": ("mppi", {"population": 100}), "ilqr": ("ilqr", {"iterations": 2}),
                 "ilqr_rt": ("ilqr", {"iterations": 2, "warm_iterations": 1}),
                 "shooting": ("shooting", {"restarts": 2, "iterations": 3}),
                 "cem_gd": ("cem_gd", {"population": 30, "gd_iterations": 2})}
#: learn_policy options of the learned-policy row per task (--quick: a tenth of the iterations, one short
#: DAgger round); swing-up: iLQR distilled on imagined states (analytic gradients stay at 0/10 there)
POLICY_OPTIONS = {"balance": {"iterations": 100, "envs": 64, "horizon": 32},
                  "swingup": {"method": "distil"}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--balance-seeds", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=5, help="swing-up seeds per model (default 5)")
    ap.add_argument("--planners", nargs="+", choices=list(PLANNER_OPTIONS), default=list(PLANNER_OPTIONS))
    ap.add_argument("--no-policy", dest="policy", action="store_false", help="leave out the learned-policy rows")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 seeds each, small planners")
    ap.add_argument("--out", default=None, help="also write the success-rate table as Markdown to this file")
    ap.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = ap.parse_args()
    torch.set_num_threads(1)
    options = QUICK_OPTIONS if args.quick else PLANNER_OPTIONS
    if args.quick:
        args.balance_seeds, args.seeds = 2, 2
    t0 = time.perf_counter()
    studies = []

    def run(models, env_id, task, seeds):
        for row in args.planners:
            planner, opts = options[row]
            study = planning_study(models, env_id, task, seeds=range(seeds), planner=planner, planner_options=opts)
            print(f"[{row}]\n{study.table()}", flush=True)
            studies.append((row, study))

    def run_policy(model, env_id, task, seeds):
        opts = dict(POLICY_OPTIONS[task])
        if args.quick and opts.get("method") == "distil":
            opts["distil_options"] = {"rounds": 1, "episodes": 2, "steps": 50}
        elif args.quick:
            opts["iterations"] = max(1, opts["iterations"] // 10)
        learned = learn_policy(model, task, seed=0, progress=False, **opts)
        print(f"learned policy ({task}): {opts} in {learned.seconds:.0f} s", flush=True)
        study = policy_study({"hybrid (euler) policy": learned.freeze()}, env_id, task, seeds=range(seeds),
                             progress=False)
        print(study.table(), flush=True)
        studies.append(("policy", study))

    print("== balance on gymnasium CartPole-v1 with the explicit model ==")
    run(make_models("balance", ["explicit"]), "CartPole-v1", "balance", args.balance_seeds)
    explicit = [st for row, st in studies if row == "cem"]
    for st in explicit:
        failed = [e.seed for e in st.episodes["explicit"] if not e.success]
        print(f"cem: failed seeds: {failed or 'none'}; max |x| over episodes: "
              f"{max(np.abs(e.states[:, 0]).max() for e in st.episodes['explicit']):.2f} m\n")
    balance = make_models("balance", ["hybrid (euler)", "mlp"], args.quick)
    run(balance, "CartPole-v1", "balance", args.seeds)
    if args.policy:
        run_policy(balance["hybrid (euler)"], "CartPole-v1", "balance", args.seeds)

    print("== swing-up on the CartPole with friction (physwm/CartPole-v0) ==")
    models = make_models("swingup", ["explicit", "nominal", "hybrid (euler)", "mlp"], args.quick)
    found = models["hybrid (euler)"].field.physics.identified()
    print("hybrid identified:", {k: round(v, 4) for k, v in found.items()})
    run(models, "physwm/CartPole-v0", "swingup", args.seeds)
    if args.policy:
        run_policy(models["hybrid (euler)"], "physwm/CartPole-v0", "swingup", args.seeds)
    total = time.perf_counter() - t0
    print(f"\ntotal {total:.0f} s")
    if args.out:
        _write_markdown(args.out, studies, total, args.overwrite)
        print(f"wrote {args.out}")


def _write_markdown(path, studies, seconds: float, overwrite: bool) -> None:
    from physwm.files import atomic_write_text

    lines = [
        "# Planning with world models: closed-loop success rates",
        "",
        f"physwm {physwm.__version__}; regenerate with `python bench/plan_study.py --out {path} --overwrite` "
        f"({seconds:.0f} s here, 2 cores shared with other jobs: the timings are noisy). Planners: CEM (population "
        "500, horizon 30 for balance and 40 for swing-up, 5 iterations, 50 elites, warm start) and the "
        "gradient-based ones with their defaults (iLQR 5 iterations; ilqr_rt: iLQR with one real-time iteration "
        "per step after the first, `warm_iterations=1`; shooting 4 restarts x 10 Adam steps; "
        "cem_gd: CEM 100 x 3, then 5 Adam steps), MPPI (population 500, 1 iteration); planner `policy`: a policy "
        "learned in imagination on the hybrid (euler) model (no search; its time is one forward pass). ODE models "
        "(explicit, nominal, hybrid) plan on compiled rollouts. Model evaluations: predicted plus differentiated "
        "transitions per control step. See the script's docstring for the tasks, the models and their training data.",
        "",
        "| task | environment | model | planner | success | return (mean +- sd) | planning ms/step (mean, p95) "
        "| model evaluations/step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    order = {name: i for i, name in enumerate([*PLANNER_OPTIONS, "policy"])}
    for row, st in sorted(studies, key=lambda rs: (rs[1].task != "balance", order[rs[0]])):
        for name, s in st.summary().items():
            n = s["episodes"]
            lines.append(f"| {st.task} | {st.env_id} | {name} | {row} | {s['success_rate'] * n:.0f}/{n} | "
                         f"{s['return_mean']:.1f} +- {s['return_std']:.1f} | "
                         f"{s['plan_ms_mean']:.1f}, {s['plan_ms_p95']:.1f} | {s['evals_per_step']:.0f} |")
    atomic_write_text(path, "\n".join(lines) + "\n", overwrite=overwrite)


if __name__ == "__main__":
    main()
