"""Benchmark: the claims of issue 15's model families, each against its peer family in the same run.

* ``gan``: the GAN, the MLP and the VAE (hidden [64, 64], 15 epochs of ``fit``, cosine schedule) on
  CartPole-v1 random data (40 episodes, split 0.6/0.2/0.2); one-step MSE on the test split (one-step-change
  units) and the RMSE after 10, 25 and 50 open-loop steps (state-spread units) of random +-10 N pushes on
  CartPole-v1's physics without termination (8 episodes; CartPole-v1's own random episodes last ~20 steps).
* ``pinn``: the plain MLP and the physics-informed MLP (hidden [64, 64], 300 ``fit`` steps) on the friction
  CartPole with the pole hanging (+-1 rad) under forces <= 5 N (12 episodes of 100 steps); one-step MSE
  under forces up to 15 N (out of distribution). PINN: the frictionless CartPole-v1 equations, weight 1.0,
  256 collocation pairs per step in 3x the data's box (angles: a turn beyond), outside the data's box.
* ``lagrangian``: the Neural ODE and the Lagrangian field (hidden [32, 32], Euler, 150 ``fit`` steps at lr
  1e-2) on 60 windows of 10 steps of frictionless full swings (|theta| < pi, |theta_dot| < 6, +-10 N);
  validation RMSE, and the true energy's error after 100 and 200 steps of 16 free swings (no force).

Run: ``python bench/families.py [gan|pinn|lagrangian ...]`` (all three by default; a few minutes).
"""

from __future__ import annotations

import argparse
import math
import time

import gymnasium as gym
import torch

import physwm
from physwm.data import Trajectories, collect, make_policy
from physwm.evaluate import energy_error
from physwm.integrators import RK4
from physwm.models import build
from physwm.systems import DEFAULT_SYSTEM
from physwm.train import fit


def one_step_mse(model, data: Trajectories) -> float:
    """Mean squared one-step error of ``model`` on ``data`` in units of the one-step change's spread."""
    w = data.windows(1)
    with torch.no_grad():
        pred = model.step(w["states"][:, 0], w["controls"][:, 0])
    return float(model.scaled_error(pred, w["states"][:, 1]).pow(2).mean())


def gan() -> None:
    data = collect(gym.make("CartPole-v1"), make_policy("random"), episodes=40, max_steps=200, seed=0,
                   progress=False).to(torch.float32)
    train, val, test = data.split((0.6, 0.2, 0.2), seed=0)
    env = gym.make("physwm/CartPole-v0", terminate=False, integrator="euler", max_episode_steps=60)
    w = collect(env, make_policy("random"), episodes=8, max_steps=50, seed=5, progress=False).to(torch.float32)
    w = w.windows(50)
    spread = train.states[torch.isfinite(train.states).all(-1)].std(0)
    print("gan: one-step MSE (change units) on CartPole-v1 random test data; RMSE (state-spread units) at 10/25/50")
    for name, opts in (("mlp", {}), ("gan", {"disc_hidden": [64]}), ("vae", {})):
        t0 = time.perf_counter()
        model = build(name, hidden=[64, 64], seed=0, **opts)
        fit(model, train, val, epochs=15, batch_size=128, lr=3e-3, lr_schedule="cosine", progress=False)
        model.eval()
        with torch.no_grad():
            pred = model.rollout(w["states"][:, 0], w["controls"])
        rmse = ((pred - w["states"]) / spread).pow(2).mean((0, 2)).sqrt()
        print(f"  {name:4s} one-step {one_step_mse(model, test):.4f}  rollout "
              f"{float(rmse[10]):.3f} / {float(rmse[25]):.3f} / {float(rmse[50]):.3f}  "
              f"finite {bool(torch.isfinite(pred).all())}  ({time.perf_counter() - t0:.0f} s)")


def friction_data(episodes: int, seed: int, force: float) -> Trajectories:
    low, high = [-0.5, -0.5, math.pi - 1, -1.0], [0.5, 0.5, math.pi + 1, 1.0]
    env = gym.make("physwm/CartPole-v0", params=physwm.FRICTION_PARAMS, terminate=False, max_episode_steps=100)
    data = collect(env, make_policy("uniform", force_mag=force), episodes=episodes, max_steps=100, seed=seed,
                   start_low=low, start_high=high, progress=False)
    return data.to(torch.float32)


def pinn() -> None:
    train, val, strong = friction_data(12, 0, 5.0), friction_data(3, 1, 5.0), friction_data(4, 2, 15.0)
    err = {}
    for name in ("mlp", "pinn_mlp"):
        model = build(name, hidden=[64, 64], seed=0)
        fit(model, train, val, steps=300, lr=3e-3, lr_schedule="cosine", grad_clip=10.0, progress=False)
        err[name] = one_step_mse(model.eval(), strong)
    print(f"pinn: one-step MSE under forces up to 15 N (trained <= 5 N), friction CartPole: mlp {err['mlp']:.4f}, "
          f"pinn_mlp {err['pinn_mlp']:.4f}; mlp / pinn_mlp = {err['mlp'] / err['pinn_mlp']:.1f}x")


def lagrangian() -> None:
    box = torch.tensor([0.5, 0.5, math.pi, 6.0], dtype=torch.float64)
    system = DEFAULT_SYSTEM().double()
    g = torch.Generator().manual_seed(4)
    x0 = (2 * torch.rand(60, 4, generator=g, dtype=torch.float64) - 1) * box
    u = (2 * torch.rand(60, 10, 1, generator=g, dtype=torch.float64) - 1) * 10
    with torch.no_grad():
        s = RK4(substeps=4).rollout(system, x0, u, 0.02).float()
    train, val = Trajectories(s[:50], u[:50].float(), dt=0.02), Trajectories(s[50:], u[50:].float(), dt=0.02)
    g = torch.Generator().manual_seed(5)
    x0 = (2 * torch.rand(16, 4, generator=g, dtype=torch.float64) - 1) * box
    u0 = torch.zeros(16, 200, 1, dtype=torch.float64)
    with torch.no_grad():
        true = RK4(substeps=4).rollout(system, x0, u0, 0.02)
    err = {}
    for name in ("node", "lagrangian"):
        model = build(name, hidden=[32, 32], integrator="euler", seed=0)
        h = fit(model, train, val, steps=150, lr=1e-2, lr_schedule="cosine", grad_clip=10.0, progress=False)
        with torch.no_grad():
            pred = model.rollout(x0.float(), u0.float()).double()
        e = energy_error(pred, true, system.energy)
        err[name] = float(e[-1])
        print(f"lagrangian: {name:10s} val RMSE {h.val_error[-1]:.4f}; energy error at 100 steps "
              f"{float(e[100]):.4f}, at 200 steps {float(e[200]):.4f}")
    print(f"  energy error at 200 steps, node / lagrangian = {err['node'] / err['lagrangian']:.0f}x")


def main() -> None:
    runs = {"gan": gan, "pinn": pinn, "lagrangian": lagrangian}
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="*", help=f"any of {list(runs)} (default: all)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    unknown = sorted(set(args.which) - set(runs))
    if unknown:
        parser.error(f"unknown {unknown}; valid: {list(runs)}")
    torch.set_num_threads(args.threads)
    for name in args.which or runs:
        runs[name]()


if __name__ == "__main__":
    main()
