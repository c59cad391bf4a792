"""Learning a policy in imagination (issue 15): the policy's shape and bounds, its numpy snapshot, the
TD(lambda) targets, and the claim it exists for at a small scale: a policy trained only on a model's
rollouts balances the true CartPole-v1 far longer than a random one (``bench/policy.py`` measures it on the
hybrid: successes, return and time per control step against MPC)."""

import numpy as np
import pytest
import torch

from physwm.control import NeuralPolicy, learn_policy, make_env, policy_study, run_episode
from physwm.control.policy_learning import lambda_returns
from physwm.models import build


def test_neural_policy_stays_in_the_control_bounds_and_its_numpy_snapshot_matches():
    torch.manual_seed(0)
    policy = NeuralPolicy("cartpole", scale=[1.0, 2.0, 0.5, 3.0])
    x = torch.randn(64, 4, dtype=torch.float64) * 10
    with torch.no_grad():
        for p in policy.net.parameters():
            p.mul_(5.0)  # saturate the squashing
        u = policy.double()(x)
    assert u.shape == (64, 1) and float(u.abs().max()) <= 10.0 and float(u.abs().max()) > 9.0
    frozen = policy.freeze()
    np.testing.assert_allclose(frozen(x.numpy()), u.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(frozen(x[0].numpy()), u[0].numpy(), rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="scale"):
        NeuralPolicy("cartpole", scale=[1.0, 2.0])


def test_lambda_returns_are_discounted_costs_to_go():
    costs = torch.tensor([[1.0, 2.0, 3.0]])
    values = torch.tensor([[0.0, 10.0, 20.0, 4.0]])
    # lam = 1: Monte Carlo return bootstrapped by the last value
    g = lambda_returns(costs, values, gamma=0.5, lam=1.0)
    expected = [1 + 0.5 * 2 + 0.25 * 3 + 0.125 * 4, 2 + 0.5 * 3 + 0.25 * 4, 3 + 0.5 * 4]
    torch.testing.assert_close(g, torch.tensor([expected]))
    # lam = 0: one-step TD targets
    g = lambda_returns(costs, values, gamma=0.5, lam=0.0)
    torch.testing.assert_close(g, torch.tensor([[1 + 0.5 * 10, 2 + 0.5 * 20, 3 + 0.5 * 4]]))


def test_learn_policy_checks_its_arguments():
    model = build("mlp", hidden=[8])
    with pytest.raises(ValueError, match="method"):
        learn_policy(model, method="dreamer", iterations=1, progress=False)
    with pytest.raises(ValueError, match="iterations"):
        learn_policy(model, iterations=0, progress=False)
    with pytest.raises(TypeError, match="WorldModel"):
        learn_policy(torch.nn.Linear(4, 4), progress=False)


def test_policy_learned_in_imagination_balances_the_true_cartpole_far_longer_than_random():
    """Analytic gradients through CartPole-v1's own equations (the explicit model, Euler as CartPole-v1),
    60 short updates; evaluated on gymnasium's CartPole-v1 itself."""
    model = build("explicit", integrator="euler")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    learned = learn_policy(model, "balance", iterations=60, envs=32, horizon=16, seed=0, progress=False)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the model is not trained
    assert all(p.requires_grad for p in model.parameters())  # and left as it was
    cost = learned.history["cost"]
    assert len(cost) == 60 and np.mean(cost[-10:]) < 0.1 * np.mean(cost[:10])
    env = make_env("CartPole-v1", task="balance")
    policy = learned.freeze()
    rng = np.random.default_rng(0)
    learned_steps = [len(run_episode(policy, env, "balance", seed=s).controls) for s in range(3)]
    random_steps = [len(run_episode(lambda x: rng.uniform(-10, 10, 1), env, "balance", seed=s).controls)
                    for s in range(3)]
    assert min(learned_steps) >= 150 and max(random_steps) < 60, (learned_steps, random_steps)


def test_actor_critic_improves_on_imagined_returns_without_gradients_through_the_model():
    """PPO on imagined rollouts (no gradient through the model): the imagined cost falls and the policy
    balances the true CartPole-v1 several times longer than random pushes (about 20 steps)."""
    model = build("explicit", integrator="euler")
    learned = learn_policy(model, "balance", method="actor_critic", iterations=30, envs=32, horizon=16, seed=0,
                           progress=False)
    cost = learned.history["cost"]
    assert learned.method == "actor_critic" and np.mean(cost[-10:]) < 0.6 * np.mean(cost[:10]), cost
    assert all(p.grad is None for p in model.parameters())  # nothing was backpropagated into the model
    env = make_env("CartPole-v1", task="balance")
    steps = [len(run_episode(learned.freeze(), env, "balance", seed=s).controls) for s in range(3)]
    assert min(steps) >= 60, steps


def test_policy_study_runs_the_planning_studys_episodes_for_policies():
    """The same seeded episodes as run_episode, one per seed, in a PlanningStudy whose planner is "policy"."""
    def push_right(x):
        return np.array([10.0])

    study = policy_study({"push": push_right, "nothing": lambda x: np.zeros(1)}, "CartPole-v1", "balance",
                         seeds=[0, 1], progress=False)
    assert study.planner == "policy" and list(study.episodes) == ["push", "nothing"]
    env = make_env("CartPole-v1", task="balance")
    for s, ep in zip([0, 1], study.episodes["push"], strict=True):
        alone = run_episode(push_right, env, "balance", seed=s)
        np.testing.assert_array_equal(ep.states, alone.states)
        assert ep.seed == s and ep.model == "push" and ep.terminated and ep.steps < 60
    assert study.success_rate() == {"push": 0.0, "nothing": 0.0}
    assert "policy on CartPole-v1" in study.table()
    with pytest.raises(TypeError, match="planning_study"):
        policy_study({"model": build("mlp", hidden=[8])}, progress=False)
    with pytest.raises(ValueError, match="policies"):
        policy_study({}, progress=False)
