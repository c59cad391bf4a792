"""Benchmark: MPC planning latency per control step, physwm's CEM against mbrl-lib 0.2.0's CEM.

Setting: gymnasium ``CartPole-v1`` (two forces, +-10 N), the balance task's cost
(:func:`physwm.control.balance_cost` plus its LQR terminal cost), CEM with population 500, horizon 30,
5 iterations, 50 elites (elite ratio 0.1), smoothing alpha 0.1, warm start by shifting the previous
plan. Every planner controls the *true* environment in closed loop for ``--steps`` steps from the same
seeded start; the time of each planning call is recorded (wall clock; ``cpu`` = process CPU time of the
same calls, which other jobs on a shared machine do not inflate). Reported: median, mean and 95th
percentile milliseconds per control step, and whether the pole stayed up.

Rows (models are physwm WorldModels; each is planned on by both optimisers where the peer is present):

* ``explicit (euler)``: ``ODEModel(CartPole(), "euler")``, CartPole-v1's own equations and integrator;
* ``explicit (rk4)``: the same equations with RK4 (4 field evaluations per step);
* ``hybrid (euler)`` / ``hybrid (rk4)``: ``physwm.models.build("hybrid")``, untrained (the residual
  network outputs 0 but is evaluated: a 5-32-32-2 tanh MLP per field evaluation);
* ``explicit (euler), fused`` / ``hybrid (euler), fused``: the same models rolled out by
  :func:`physwm.compiled_rollout` (``CEM(..., fused=True)``; compilation time reported separately;
  skipped with ``--no-fused``).

The peer is mbrl-lib 0.2.0's ``TrajectoryOptimizerAgent`` with its ``CEMOptimizer`` (truncated-normal
sampling, returns the best sequence found), instantiated through Hydra as mbrl-lib does (agent config
with ``"_recursive_": False``), evaluating candidate sequences with the *same* physwm model and cost
through ``set_trajectory_eval_fn`` (reward = -cost): the comparison isolates the optimiser. mbrl-lib
declares old pins (gymnasium 0.26, hydra-core 1.0); it imports and runs with
``pip install --no-deps mbrl==0.2.0`` plus ``hydra-core>=1.3,<1.4 omegaconf termcolor imageio``. If it
is not importable the peer rows are skipped. Each model's physwm and mbrl runs alternate in
``--rounds`` rounds so load from other processes hits both alike. Target: < 20 ms per step for the
explicit model on 2 cores.

Run: ``python bench/plan.py`` (about a minute plus compilation) or ``python bench/plan.py --quick``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import physwm
from physwm.control import CEM, make_env
from physwm.models import ODEModel, build
from physwm.systems.cartpole import balance_cost, balance_terminal_cost

POP, HORIZON, ITERS, ELITES, ALPHA = 500, 30, 5, 50, 0.1


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
    levels_mid = 0.0

    def trajectory_eval_fn(obs, actions):
        x0 = torch.as_tensor(obs, dtype=torch.float32).reshape(1, -1).expand(actions.shape[0], -1)
        u = torch.where(actions > levels_mid, 10.0, -10.0)  # the env's two forces, as physwm's action_levels
        with torch.no_grad():
            states = model.rollout(x0, u)
            return -(cost(states[:, 1:], u).sum(1) + terminal(states[:, -1]))

    agent.set_trajectory_eval_fn(trajectory_eval_fn)
    return agent


def run(policy, env, steps: int, seed: int, reset) -> tuple[np.ndarray, np.ndarray, bool]:
    """Closed loop on the true env; returns (wall ms per step, cpu ms per step, balanced)."""
    env.reset(seed=seed)
    reset()
    base = env.unwrapped
    wall, cpu = [], []
    ok = True
    for _ in range(steps):
        state = np.asarray(base.state, dtype=np.float64)
        t0, c0 = time.perf_counter(), time.process_time()
        u = policy(state)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        u = float(np.asarray(u.detach().numpy() if isinstance(u, torch.Tensor) else u).reshape(-1)[0])
        _, _, terminated, truncated, _ = env.step(int(u > 0))
        if terminated:
            ok = False
            break
    return 1e3 * np.asarray(wall), 1e3 * np.asarray(cpu), ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=100, help="control steps per round (default 100)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating physwm/peer rounds (default 2)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--no-fused", action="store_true", help="skip the compiled (fused) rollout row")
    ap.add_argument("--no-peer", action="store_true", help="skip mbrl-lib")
    ap.add_argument("--quick", action="store_true", help="smoke run: 20 steps, 1 round, explicit only, no fused")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.rounds, args.no_fused = 20, 1, True
    torch.set_num_threads(args.threads)
    has_peer, peer_info = (False, "disabled") if args.no_peer else peer_available()
    print(f"physwm {physwm.__version__}, torch {torch.__version__}, threads {torch.get_num_threads()}; "
          f"peer mbrl-lib: {peer_info if has_peer else 'not available (' + peer_info + ')'}")
    print(f"CEM population {POP}, horizon {HORIZON}, iterations {ITERS}, elites {ELITES}, alpha {ALPHA}; "
          f"CartPole-v1, {args.steps} steps x {args.rounds} rounds per row\n")

    models = {"explicit (euler)": ODEModel(physwm.CartPole(), integrator="euler")}
    if not args.quick:
        models["explicit (rk4)"] = ODEModel(physwm.CartPole(), integrator="rk4")
        models["hybrid (euler)"] = build("hybrid", integrator="euler").eval()
        models["hybrid (rk4)"] = build("hybrid").eval()
    terminal = balance_terminal_cost()
    env = make_env("CartPole-v1")
    header = f"{'model':<26} {'planner':<8} {'median ms':>10} {'mean ms':>8} {'p95 ms':>7} {'cpu ms':>7} {'up':>4}"
    print(header)
    print("-" * len(header))
    medians: dict[tuple[str, str], float] = {}

    def report(name, who, wall, cpu, ok):
        medians[(name, who)] = float(np.median(wall))
        print(f"{name:<26} {who:<8} {np.median(wall):>10.2f} {wall.mean():>8.2f} {np.percentile(wall, 95):>7.2f} "
              f"{np.median(cpu):>7.2f} {'yes' if all(ok) else 'NO':>4}", flush=True)

    rows = list(models.items())
    if not args.no_fused:
        rows.append(("explicit (euler), fused", models["explicit (euler)"]))
        rows.append(("hybrid (euler), fused", models["hybrid (euler)"]))
    for name, model in rows:
        fused = name.endswith("fused")
        planner = CEM(model, balance_cost, bounds=(-10.0, 10.0), horizon=HORIZON, population=POP, elites=ELITES,
                      iterations=ITERS, alpha=ALPHA, terminal_cost=terminal, action_levels=(-10.0, 10.0), seed=0,
                      fused=fused)
        if fused:
            t0 = time.perf_counter()
            planner.act(np.zeros(4))  # compiles for this batch size
            print(f"  (fused rollout: first call, compilation included, {time.perf_counter() - t0:.1f} s; "
                  f"{planner._rollout!r})")
        peer = make_peer(model, balance_cost, terminal) if has_peer and not fused else None
        results = {"physwm": ([], [], []), "mbrl": ([], [], [])}
        for r in range(args.rounds):
            w, c, ok = run(planner, env, args.steps, seed=r, reset=planner.reset)
            results["physwm"][0].append(w), results["physwm"][1].append(c), results["physwm"][2].append(ok)
            if peer is not None:
                w, c, ok = run(peer.act, env, args.steps, seed=r, reset=peer.reset)
                results["mbrl"][0].append(w), results["mbrl"][1].append(c), results["mbrl"][2].append(ok)
        for who, (w, c, ok) in results.items():
            if w:
                report(name, who, np.concatenate(w), np.concatenate(c), ok)
    env.close()

    print()
    for name in models:
        if (name, "mbrl") in medians:
            print(f"{name}: mbrl-lib / physwm median latency = "
                  f"{medians[(name, 'mbrl')] / medians[(name, 'physwm')]:.2f}x")
    for base in ("explicit (euler)", "hybrid (euler)"):
        if (f"{base}, fused", "physwm") in medians:
            print(f"fused / eager {base}: {medians[(f'{base}, fused', 'physwm')]:.2f} ms vs "
                  f"{medians[(base, 'physwm')]:.2f} ms")
    for name in ("explicit (euler)", "explicit (euler), fused", "hybrid (euler)", "hybrid (euler), fused"):
        if (name, "physwm") in medians:
            t = medians[(name, "physwm")]
            print(f"target < 20 ms per step, {name}: {t:.2f} ms -> {'met' if t < 20 else 'NOT met'}")


if __name__ == "__main__":
    main()
