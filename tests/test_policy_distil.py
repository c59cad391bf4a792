"""Distilling a planner into a policy on imagined states (``learn_policy(method="distil")``, DAgger on the
world model): the claim it exists for at a small scale, on CartPole-v1's own equations, and its argument
checks. ``bench/policy_swingup.py`` measures the swing-up it was built for (friction CartPole, fitted hybrid)."""

import numpy as np
import pytest
import torch

from physwm.control import NeuralPolicy, learn_policy, make_env, run_episode
from physwm.control.distil import wide_starts
from physwm.models import build

#: small and eager (no compile in a unit test): 2 rounds of 2 imagined episodes of 40 steps
SMALL = {"rounds": 2, "episodes": 2, "steps": 40, "updates": 300, "planner_options": {"fused": False}}


def test_distilled_policy_imitates_the_planner_and_balances_the_true_cartpole():
    """iLQR on the explicit model labels the states of imagined episodes; the regressed policy then holds the
    true CartPole-v1 up for all 500 steps (an untrained policy falls within 60 steps)."""
    model = build("explicit", integrator="euler")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    learned = learn_policy(model, "balance", method="distil", distil_options=SMALL, seed=0, progress=False)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    h = learned.history
    assert learned.method == "distil" and len(h["labels"]) == 2 and h["labels"][-1] > h["labels"][0] >= 40
    assert h["loss"][-1] < 0.05, h  # the policy fits the planner's controls (in half-ranges, squared)
    assert h["loss"][0] < 0.5 * h["imitation"][0], h  # the regression halves the untrained policy's error
    env = make_env("CartPole-v1", task="balance")
    steps = [len(run_episode(learned.freeze(), env, "balance", seed=s).controls) for s in range(3)]
    torch.manual_seed(0)
    untrained = NeuralPolicy("cartpole", scale=model.state_norm.std).freeze()
    steps0 = [len(run_episode(untrained, env, "balance", seed=s).controls) for s in range(3)]
    assert min(steps) == 500 and max(steps0) < 60, (steps, steps0)


def test_distil_checks_its_arguments_and_wide_starts_cover_every_angle():
    model = build("explicit", integrator="euler")
    with pytest.raises(ValueError, match="wide"):
        learn_policy(model, method="distil", distil_options={"wide": 1.5}, progress=False)
    with pytest.raises(ValueError, match="planner"):
        learn_policy(model, method="distil", distil_options={"planner": "astar"}, progress=False)
    x = wide_starts(model, type(model.field), 2000, torch.Generator().manual_seed(0))
    assert x.shape == (2000, 4)
    theta = x[:, 2].numpy()
    assert theta.min() < -3.0 and theta.max() > 3.0 and np.histogram(theta, 4)[0].min() > 400
    assert float(x[:, 0].abs().max()) <= 2.0  # mean 0 +- 2 std (an untrained model's normaliser: std 1)
