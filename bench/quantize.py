"""Benchmark: int8 quantisation of an implicit model (issue 15): planning speed and accuracy cost.

Setting: the default ``mlp`` (``build("mlp")``: 5-128-128-128-4 SiLU), fitted on CartPole-v1 random data
(``--episodes`` episodes, ``--epochs`` epochs, the default ``fit``), then :func:`physwm.quantize` d. Planning:
CEM on the balance task (population 500, horizon 30, 5 iterations, as ``bench/plan.py``), the float and
the int8 model alternating in ``--rounds`` rounds of ``--steps`` closed-loop control steps on gymnasium's
CartPole-v1, so load from other processes hits both alike; reported: median CPU ms per control step of each
and their ratio (float / int8: above 1 means int8 is faster). Accuracy: the RMSE after 50 open-loop steps
(in units of the training data's state spread) on 50-step windows of random +-10 N pushes on
CartPole-v1's physics without termination, for both models, and the change.

``--mode static``: ``physwm.quantize(model, calibration=...)``, static int8 (FX graph mode under torch's
current engine, activations calibrated on up to 4096 training transitions, int8 between layers where a
kernel exists); ``--activation relu`` fits the MLP with ReLU (fbgemm fuses Linear+ReLU in int8; it has no
int8 SiLU); ``--population`` sets CEM's (the batch of every model call). ``bench/quantize_static.py`` times
the networks alone and per layer.

Measured on a loaded 2-core machine (AMD EPYC, AVX2, no VNNI; CPU time): ``--mode static --activation relu
--population 4096 --steps 10 --rounds 2``: float32 1027 ms, int8 594 ms per control step, 1.73x; 50-step
RMSE float32 8.50, int8 4.24 state spreads (both models leave the data's region over 50 pushed steps: the
number says int8 is not worse, not that it is accurate). The same at ``--population 500``: 153 vs 162 ms,
0.94x (at CEM's usual population the network is too small a part of a planning step for int8 to pay).

Run: ``python bench/quantize.py`` (a minute or two) or ``python bench/quantize.py --quick``.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

import physwm
from physwm.control import CEM, make_env
from physwm.data import collect, make_policy
from physwm.models import build
from physwm.systems.cartpole import balance_cost, balance_terminal_cost


def plan_times(planner: CEM, env, steps: int, seed: int) -> list[float]:
    """CPU seconds (``time.process_time``: steadier than the wall clock on a shared machine) of each of ``steps``
    planning calls in closed loop on ``env``."""
    planner.reset()
    env.reset(seed=seed)
    times = []
    for _ in range(steps):
        t0 = time.process_time()
        u = planner.act(np.asarray(env.unwrapped.state, dtype=np.float64))
        times.append(time.process_time() - t0)
        _, _, terminated, truncated, _ = env.step(int(float(u[0]) > 0))
        if terminated or truncated:
            env.reset(seed=seed)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--mode", choices=["dynamic", "static"], default="dynamic")
    parser.add_argument("--activation", default="silu", help="the MLP's (default: build('mlp')'s silu)")
    parser.add_argument("--population", type=int, default=500, help="CEM's population")
    parser.add_argument("--quick", action="store_true", help="40 episodes, 5 epochs, 2 rounds of 15 steps")
    args = parser.parse_args()
    if args.quick:
        args.episodes, args.epochs, args.steps, args.rounds = 40, 5, 15, 2
    torch.set_num_threads(args.threads)
    data = collect(gym.make("CartPole-v1"), make_policy("random"), episodes=args.episodes, max_steps=500, seed=0,
                   progress=False).to(torch.float32)
    train, val = data.split((0.8, 0.2), seed=0)
    model = build("mlp", activation=args.activation)
    physwm.fit(model, train, val, epochs=args.epochs, progress=False)
    model.eval()
    if args.mode == "static":
        ok = torch.isfinite(train.states[:, :-1]).all(-1) & torch.isfinite(train.controls).all(-1)
        q = physwm.quantize(model, calibration=(train.states[:, :-1][ok][:4096], train.controls[ok][:4096]))
    else:
        q = physwm.quantize(model)
    env = gym.make("physwm/CartPole-v0", terminate=False, integrator="euler", max_episode_steps=60)
    w = collect(env, make_policy("random"), episodes=32, max_steps=50, seed=5, progress=False).to(torch.float32)
    w = w.windows(50)
    finite = train.states[torch.isfinite(train.states).all(-1)]
    spread = finite.std(0)
    err = {}
    with torch.no_grad():
        for name, m in (("float32", model), ("int8", q)):
            pred = m.rollout(w["states"][:, 0], w["controls"])
            err[name] = float(((pred[:, -1] - w["states"][:, -1]) / spread).pow(2).mean().sqrt())
    terminal = balance_terminal_cost(physwm.systems.DEFAULT_SYSTEM.Params())
    planners = {
        name: CEM(m, balance_cost, bounds=(-10.0, 10.0), horizon=30, population=args.population,
                  elites=max(2, args.population // 10), iterations=5,
                  alpha=0.1, terminal_cost=terminal, action_levels=(-10.0, 10.0), seed=0)
        for name, m in (("float32", model), ("int8", q))
    }
    cart = make_env("CartPole-v1", task="balance")
    times: dict[str, list[float]] = {k: [] for k in planners}
    for r in range(args.rounds):
        for name, planner in planners.items():
            times[name] += plan_times(planner, cart, args.steps, seed=r)
    med = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
    print(f"threads={args.threads}, {args.mode} int8, {args.activation} MLP, {args.rounds} rounds x {args.steps} CEM "
          f"steps (population {args.population}, horizon 30, 5 iterations)")
    print(f"  median CPU ms per control step: float32 {med['float32']:.2f}, int8 {med['int8']:.2f}; "
          f"speed-up float32/int8 = {med['float32'] / med['int8']:.2f}x")
    print(f"  50-step RMSE (state-spread units): float32 {err['float32']:.4f}, int8 {err['int8']:.4f}; "
          f"change {err['int8'] - err['float32']:+.4f} ({100 * (err['int8'] / err['float32'] - 1):+.1f}%)")


if __name__ == "__main__":
    main()
