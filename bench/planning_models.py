"""The planning benchmarks' world models: the true equations, and models fitted to data of each task's environment.

Shared by ``bench/plan.py`` and ``bench/plan_study.py`` (run as scripts from the repository root; this file
is imported from their directory).

* balance: gymnasium ``CartPole-v1``; training data 200 episodes of its random policy (up to 500 steps);
* swing-up: the CartPole with friction (``physwm/CartPole-v0``, ``FRICTION_PARAMS``, no termination);
  training data 40 episodes x 100 steps of uniform random forces from starts spread over the whole circle.

Every learned model is fitted one-step (``horizon=1``), 40 epochs, batch 128, learning rate 3e-3, seed 0, on
80% of the episodes (20% validation), in float32.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

import physwm
from physwm.data import collect, make_policy
from physwm.envs import FRICTION_PARAMS
from physwm.models import ODEModel, build
from physwm.train import fit

ENV_IDS = {"balance": "CartPole-v1", "swingup": "physwm/CartPole-v0"}
TRUE_PARAMS = {"balance": physwm.CartPoleParams(), "swingup": FRICTION_PARAMS}
#: name -> (build name, build options) of the learned models
LEARNED = {
    "hybrid": ("hybrid", {}),  # the default hybrid: RK4, learnable constants, 32x32 tanh residual
    "hybrid (euler)": ("hybrid", {"integrator": "euler"}),
    "mlp": ("mlp", {}),
    "ensemble": ("ensemble", {}),
}
MODEL_NAMES = ("explicit", "nominal", *LEARNED)


def task_data(task: str, quick: bool = False):
    """``(train, val)`` Trajectories (float32) of the task's environment (see the module docstring)."""
    if task == "balance":
        data = collect(gym.make("CartPole-v1"), make_policy("random"), episodes=20 if quick else 200,
                       max_steps=500, seed=0, progress=False)
    else:
        env = gym.make("physwm/CartPole-v0", params=FRICTION_PARAMS, terminate=False, max_episode_steps=100)
        data = collect(env, make_policy("uniform"), episodes=10 if quick else 40, max_steps=100, seed=0,
                       start_low=[-1.0, -1.0, -np.pi, -3.0], start_high=[1.0, 1.0, np.pi, 3.0], progress=False)
        env.close()
    return data.to(torch.float32).split((0.8, 0.2), seed=0)


def make_models(task: str, names, quick: bool = False, log=print) -> dict:
    """name -> model for ``task``: ``explicit`` (the environment's own equations and constants, Euler at 20 ms;
    CartPole-v1 integrates exactly so), ``nominal`` (CartPole-v1's frictionless equations) and the fitted
    models of :data:`LEARNED` (in eval mode)."""
    unknown = sorted(set(names) - set(MODEL_NAMES))
    if unknown:
        raise ValueError(f"unknown models {unknown}; valid: {list(MODEL_NAMES)}")
    models: dict = {}
    data = None
    for name in names:
        if name == "explicit":
            models[name] = ODEModel(physwm.CartPole(TRUE_PARAMS[task]), integrator="euler")
        elif name == "nominal":
            models[name] = ODEModel(physwm.CartPole(), integrator="euler")
        else:
            data = data or task_data(task, quick)
            family, options = LEARNED[name]
            model = build(family, seed=0, **options)
            h = fit(model, data[0], data[1], horizon=1, epochs=5 if quick else 40, batch_size=128, lr=3e-3,
                    progress=False)
            log(f"{name} ({task} data): {h.message}; best val 10-step RMSE (normalised) {h.best_val_error:.4g}")
            models[name] = model.eval()
    return models
