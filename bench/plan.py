"""Benchmark: MPC planning per planner and world model: ms per control step, model evaluations, success.

Part 1, the table (``--part table``): every planner of ``physwm.control.PLANNERS`` with its default settings
(``cem``: population 500, 5 iterations, 50 elites; ``mppi``: population 500, 1 iteration; ``ilqr``: 5
iterations, 5 step sizes; ``shooting``: 4 restarts x 10 Adam steps; ``cem_gd``: CEM population 100 x 3
iterations, then 5 Adam steps), and ``ilqr_rt``, iLQR with real-time iterations (``warm_iterations=1``: one
iteration per control step after the first, along the previous step's shifted prediction, no open-loop
rollout), plans with every model on both tasks, over ``--seeds`` seeds (default 10):

* balance: gymnasium ``CartPole-v1`` (two discrete forces +-10 N; 500 steps, horizon 30, LQR terminal
  cost); success = 500 steps without termination;
* swing-up: the CartPole with friction (``physwm/CartPole-v0``, continuous force +-10 N, no termination,
  350 steps, horizon 40, from hanging); success = upright from some time <= 5 s to the end.

Models (``bench/planning_models.py``): ``explicit`` (the environment's own equations and constants, Euler
at 20 ms), ``hybrid`` (the default ``build("hybrid")``: RK4, CartPole-v1 physics with learnable constants
plus a 32x32 tanh residual), ``mlp`` and ``ensemble`` (5 Gaussian MLPs), the learned ones fitted to data
of the task's environment. Planners pick compiled rollouts for the ODE models (explicit, hybrid) by
default; each planner is warmed up (compiled) before its episodes and the first call is reported apart.

Reported per row: median and 95th-percentile milliseconds per control step (wall clock, every step of
every seed; and the median of this process's CPU time per step, which other processes on a shared machine
inflate far less), model evaluations per control step (one per predicted or differentiated transition, see
``physwm.control.dynamics``), successes out of the seeds, and the first call's seconds. Then the issue's
two checks: the default hybrid swings up at < 20 ms per step in >= 9/10 seeds with some planner, and a
gradient planner balances as often as CEM with >= 10x fewer model evaluations per step.

Part 2, the peer (``--part peer``): CEM latency against mbrl-lib 0.2.0's CEM on CartPole-v1 balance, the
same model and cost (population 500, horizon 30, 5 iterations, 50 elites, alpha 0.1), 100 steps x 2
rounds alternating so load hits both alike. mbrl-lib's ``TrajectoryOptimizerAgent`` with its
``CEMOptimizer`` is instantiated through Hydra as mbrl-lib does and evaluates candidates with the physwm
model's (eager) ``rollout`` through ``set_trajectory_eval_fn`` (reward = -cost), so ``physwm eager``
against ``mbrl-lib`` isolates the optimiser; ``physwm`` is physwm's default (compiled rollouts). mbrl-lib
declares old pins (gymnasium 0.26, hydra-core 1.0); it imports and runs with ``pip install --no-deps
mbrl==0.2.0`` plus ``hydra-core>=1.3,<1.4 omegaconf termcolor imageio``; without it the part is skipped.

Timings are taken with one torch thread (set here, as the caller) on whatever machine runs this: on a shared
machine they are noisy (report medians, re-time on a quiet one).

Run: ``python bench/plan.py`` (hours on a loaded 2-core machine: 48 rows x 10 episodes), ``--quick`` for a
smoke run, or select ``--tasks``, ``--models``, ``--planners``, ``--seeds``, ``--part``; ``--budget S`` starts
no new row of a task after S seconds on that task (the rows left out are listed); ``--out FILE`` writes the
table as Markdown, e.g. ``python bench/plan.py --part table --out data/reference/planning_speed.md --overwrite``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch
from planning_models import ENV_IDS, make_models

import physwm
from physwm.control import CEM, PLANNERS, default_planner_options, get_task, make_env, make_planner, planning_study
from physwm.files import atomic_write_text
from physwm.models import ODEModel, build
from physwm.systems.cartpole import balance_cost, balance_terminal_cost

MODELS = ("explicit", "hybrid", "mlp", "ensemble")
POP, HORIZON, ITERS, ELITES, ALPHA = 500, 30, 5, 50, 0.1
#: table rows: every planner by name with its defaults, and variants: name -> (planner, options)
VARIANTS = {**{name: (name, {}) for name in PLANNERS}, "ilqr_rt": ("ilqr", {"warm_iterations": 1})}


# --- part 1: the table ---------------------------------------------------------------------------------


def table(tasks, models, planners, seeds, quick: bool, budget: float = float("inf")) -> tuple[list[dict], list]:
    """The rows run, and the (task, model, planner) left out because a task's time ``budget`` (s) ran out."""
    rows, skipped = [], []
    for task in tasks:
        print(f"\n== {task} on {ENV_IDS[task]} ==", flush=True)
        t_start = time.perf_counter()
        env = make_env(ENV_IDS[task], task)
        t = get_task(task)
        start = np.array([0.0, 0.0, np.pi, 0.0]) if task == "swingup" else np.zeros(4)
        for name, model in make_models(task, models, quick).items():
            for variant in planners:
                if time.perf_counter() - t_start > budget:
                    skipped.append((task, name, variant))
                    continue
                planner, opts = VARIANTS[variant]
                opts = dict(opts)
                if quick and planner in ("cem", "mppi"):
                    opts.update(population=100, iterations=2)
                p = make_planner(planner, model, t.cost, **{**default_planner_options(env, t), **opts})
                t0 = time.perf_counter()
                p.act(start)  # compiles this planner's kernels (shown on stderr) where the model compiles
                first = time.perf_counter() - t0
                study = planning_study({name: model}, ENV_IDS[task], task, seeds=seeds, planner=planner,
                                       planner_options=opts, progress=False)
                eps = study.episodes[name]
                ms = 1e3 * np.concatenate([e.plan_times for e in eps])
                cpu = 1e3 * np.concatenate([e.plan_cpu_times for e in eps])
                ev = np.concatenate([e.model_evaluations for e in eps])
                row = {"task": task, "model": name, "planner": variant, "fused": p.dynamics.fused,
                       "ms_median": float(np.median(ms)), "ms_p95": float(np.percentile(ms, 95)),
                       "cpu_ms_median": float(np.median(cpu)),
                       "evals": float(np.median(ev)), "success": sum(e.success for e in eps), "seeds": len(eps),
                       "first_s": first}
                rows.append(row)
                print(f"{task:<8} {name:<9} {variant:<9} {'fused' if row['fused'] else 'eager':<6} "
                      f"{row['ms_median']:>8.1f} {row['ms_p95']:>8.1f} {row['cpu_ms_median']:>8.1f} "
                      f"{row['evals']:>9.0f} "
                      f"{row['success']:>3}/{row['seeds']:<3} {first:>8.1f}", flush=True)
        env.close()
    return rows, skipped


def checks(rows: list[dict]) -> None:
    print("\nchecks:")
    hyb = [r for r in rows if r["task"] == "swingup" and r["model"] == "hybrid"]
    for r in hyb:
        ok = r["cpu_ms_median"] < 20 and r["success"] >= 0.9 * r["seeds"]
        print(f"  hybrid (RK4) swing-up with {r['planner']:<9}: {r['cpu_ms_median']:.1f} ms/step CPU (median; wall "
              f"{r['ms_median']:.1f} ms, inflated by other processes on a shared machine), "
              f"{r['success']}/{r['seeds']} -> {'met' if ok else 'not met'} (target < 20 ms CPU on one thread, >= 90%)")
    for model in sorted({r["model"] for r in rows}):
        cem = [r for r in rows if r["task"] == "balance" and r["model"] == model and r["planner"] == "cem"]
        if not cem:
            continue
        for r in rows:
            if r["task"] == "balance" and r["model"] == model and r["planner"] in ("ilqr", "ilqr_rt", "shooting",
                                                                                   "cem_gd"):
                ratio = cem[0]["evals"] / max(r["evals"], 1)
                same = r["success"] >= cem[0]["success"]
                print(f"  balance, {model:<9} {r['planner']:<9}: {ratio:5.1f}x fewer model evaluations per step "
                      f"than CEM, success {r['success']}/{r['seeds']} vs CEM {cem[0]['success']}/{cem[0]['seeds']}"
                      f" -> {'met' if ratio >= 10 and same else 'not met'} (target >= 10x at the same success); "
                      f"CEM / {r['planner']} ms per step (median, same run) "
                      f"{cem[0]['ms_median'] / r['ms_median']:.2f}x wall, "
                      f"{cem[0]['cpu_ms_median'] / max(r['cpu_ms_median'], 1e-9):.2f}x CPU")


def write_markdown(path: str, rows: list[dict], skipped: list, seconds: float, overwrite: bool) -> None:
    """The table as Markdown, with the command that made it and the machine's load."""
    command = "python " + " ".join(sys.argv)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    lines = [
        "# Planning speed: milliseconds and model evaluations per control step, success over seeds",
        "",
        f"physwm {physwm.__version__}, torch {torch.__version__}, one torch thread. Made by `{command}` in "
        f"{seconds:.0f} s on a 2-core machine shared with other jobs (load average at the end {load}): wall-clock "
        "times are inflated several-fold by the load; the CPU time of the planning process (`time.process_time` "
        "per plan call) is the steadier number. Re-time on a quiet machine with the same command. Tasks, models "
        "and planners: `bench/plan.py`'s docstring; `ilqr_rt` is `ilqr` with `warm_iterations=1`.",
        "",
        "| task | model | planner | path | ms/step wall (median) | ms/step wall (p95) | ms/step CPU (median) "
        "| model evaluations/step (median) | success | first call s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['task']} | {r['model']} | {r['planner']} | {'compiled' if r['fused'] else 'eager'} | "
                     f"{r['ms_median']:.1f} | {r['ms_p95']:.1f} | {r['cpu_ms_median']:.1f} | {r['evals']:,.0f} | "
                     f"{r['success']}/{r['seeds']} | {r['first_s']:.1f} |")
    if skipped:
        lines += ["", "Not run (the time budget ran out): " + "; ".join(" / ".join(s) for s in skipped) + "."]
    atomic_write_text(path, "\n".join(lines) + "\n", overwrite=overwrite)


# --- part 2: the peer ----------------------------------------------------------------------------------


def peer_available() -> tuple[bool, str]:
    try:
        import hydra  # noqa: F401
        import mbrl
        import mbrl.planning  # noqa: F401
        import omegaconf  # noqa: F401
    except Exception as err:  # ImportError, or an incompatible dependency failing at import
        return False, f"{type(err).__name__}: {err}"
    return True, getattr(mbrl, "__version__", "?")


def make_peer(model, cost, terminal):
    """mbrl-lib's CEM agent planning on a physwm model and cost (float32, as mbrl-lib samples)."""
    import hydra
    import omegaconf

    cfg = omegaconf.OmegaConf.create({
        "_target_": "mbrl.planning.TrajectoryOptimizerAgent",
        "_recursive_": False,
        "action_lb": [-10.0],
        "action_ub": [10.0],
        "planning_horizon": HORIZON,
        "replan_freq": 1,
        "verbose": False,
        "keep_last_solution": True,
        "optimizer_cfg": {
            "_target_": "mbrl.planning.CEMOptimizer",
            "num_iterations": ITERS,
            "elite_ratio": ELITES / POP,
            "population_size": POP,
            "alpha": ALPHA,
            "lower_bound": "???",
            "upper_bound": "???",
            "return_mean_elites": False,
            "device": "cpu",
            "clipped_normal": False,
        },
    })
    agent = hydra.utils.instantiate(cfg)

    def trajectory_eval_fn(obs, actions):
        x0 = torch.as_tensor(obs, dtype=torch.float32).reshape(1, -1).expand(actions.shape[0], -1)
        u = torch.where(actions > 0.0, 10.0, -10.0)  # the env's two forces, as physwm's action_levels
        with torch.no_grad():
            states = model.rollout(x0, u)
            return -(cost(states[:, 1:], u).sum(1) + terminal(states[:, -1]))

    agent.set_trajectory_eval_fn(trajectory_eval_fn)
    return agent


def run(policy, env, steps: int, seed: int, reset) -> tuple[np.ndarray, bool]:
    """Closed loop on the true env; returns (wall ms per step, balanced)."""
    env.reset(seed=seed)
    reset()
    base = env.unwrapped
    wall = []
    for _ in range(steps):
        state = np.asarray(base.state, dtype=np.float64)
        t0 = time.perf_counter()
        u = policy(state)
        wall.append(time.perf_counter() - t0)
        u = float(np.asarray(u.detach().numpy() if isinstance(u, torch.Tensor) else u).reshape(-1)[0])
        if env.step(int(u > 0))[2]:
            return 1e3 * np.asarray(wall), False
    return 1e3 * np.asarray(wall), True


def peer(steps: int, rounds: int) -> None:
    has_peer, info = peer_available()
    print(f"\n== CEM latency against mbrl-lib on CartPole-v1: {'mbrl-lib ' + info if has_peer else 'skipped, ' + info}")
    terminal = balance_terminal_cost()
    env = make_env("CartPole-v1")
    print(f"{'model':<18} {'planner':<13} {'median ms':>10} {'p95 ms':>7} {'up':>4}")
    for name, model in (("explicit (euler)", ODEModel(physwm.CartPole(), integrator="euler")),
                        ("hybrid (rk4)", build("hybrid").eval())):
        agents = {}
        for who, fused in (("physwm", None), ("physwm eager", False)):
            agents[who] = CEM(model, balance_cost, bounds=(-10.0, 10.0), horizon=HORIZON, population=POP, elites=ELITES,
                              iterations=ITERS, alpha=ALPHA, terminal_cost=terminal, action_levels=(-10.0, 10.0),
                              seed=0, fused=fused)
        agents["physwm"].act(np.zeros(4))  # compile first (shown on stderr)
        if has_peer:
            agents["mbrl-lib"] = make_peer(model, balance_cost, terminal)
        results = {who: ([], []) for who in agents}
        for r in range(rounds):
            for who, agent in agents.items():
                w, ok = run(agent.act, env, steps, seed=r, reset=agent.reset)
                results[who][0].append(w)
                results[who][1].append(ok)
        medians = {}
        for who, (w, ok) in results.items():
            w = np.concatenate(w)
            medians[who] = float(np.median(w))
            print(f"{name:<18} {who:<13} {medians[who]:>10.2f} {np.percentile(w, 95):>7.2f} "
                  f"{'yes' if all(ok) else 'NO':>4}", flush=True)
        if "mbrl-lib" in medians:
            print(f"  {name}: mbrl-lib / physwm eager = {medians['mbrl-lib'] / medians['physwm eager']:.2f}x "
                  "(the optimisers on the same rollouts)")
        print(f"  {name}: physwm eager / physwm (compiled) = {medians['physwm eager'] / medians['physwm']:.2f}x")
    env.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=("all", "table", "peer"), default="all")
    ap.add_argument("--tasks", nargs="+", choices=("balance", "swingup"), default=["balance", "swingup"])
    ap.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    ap.add_argument("--planners", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--seeds", type=int, default=10, help="episodes per row (default 10)")
    ap.add_argument("--steps", type=int, default=100, help="peer: control steps per round (default 100)")
    ap.add_argument("--rounds", type=int, default=2, help="peer: alternating rounds (default 2)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 seeds, small CEM/MPPI, 5-epoch fits")
    ap.add_argument("--budget", type=float, default=float("inf"),
                    help="table: start no new row of a task after this many s on it")
    ap.add_argument("--out", default=None, help="table: also write it as Markdown to this file")
    ap.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.steps, args.rounds = 2, 20, 1
    torch.set_num_threads(args.threads)
    print(f"physwm {physwm.__version__}, torch {torch.__version__}, threads {torch.get_num_threads()}; "
          "wall-clock timings (noisy on a shared machine)")
    if args.part in ("all", "table"):
        print(f"\n{'task':<8} {'model':<9} {'planner':<9} {'path':<6} {'ms med':>8} {'ms p95':>8} {'cpu med':>8} "
              f"{'evals':>9} "
              f"{'success':>7} {'first s':>8}")
        t0 = time.perf_counter()
        rows, skipped = table(args.tasks, args.models, args.planners, range(args.seeds), args.quick, args.budget)
        checks(rows)
        if skipped:
            print("not run (time budget): " + "; ".join(" / ".join(s) for s in skipped))
        if args.out:
            write_markdown(args.out, rows, skipped, time.perf_counter() - t0, args.overwrite)
            print(f"wrote {args.out}")
    if args.part in ("all", "peer"):
        peer(args.steps, args.rounds)


if __name__ == "__main__":
    main()
