"""Pendulum and DampedPendulum physics: exact against gymnasium's Pendulum-v1, energy, the speed limit."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import physwm
from physwm import RK4, SemiImplicitEuler
from physwm.envs import env_info, make_env, to_action
from physwm.systems import DampedPendulum, DampedPendulumParams, Pendulum, PendulumParams


def _gym_rollout(seed: int, steps: int = 200):
    """States (gymnasium's internal float64 [theta, theta_dot]), applied torques and rewards of a
    random-torque Pendulum-v1 run (torques beyond the bound are clipped by the environment)."""
    env = gym.make("Pendulum-v1").unwrapped
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    states, torques, rewards = [np.array(env.state, dtype=np.float64)], [], []
    for _ in range(steps):
        u = rng.uniform(-2.5, 2.5, size=1)  # float64: gymnasium then computes in float64 too
        _, r, _, _, _ = env.step(u)
        states.append(np.array(env.state, dtype=np.float64))
        torques.append(np.clip(u, -2.0, 2.0))
        rewards.append(r)
    env.close()
    return np.stack(states), np.stack(torques), np.array(rewards)


@pytest.mark.parametrize("seed", [1, 2, 6])  # seeds whose runs reach the speed limit
def test_reproduces_pendulum_v1_to_round_off(seed):
    states, torques, _ = _gym_rollout(seed)
    x0 = torch.tensor(states[:1])
    u = torch.tensor(torques).reshape(1, -1, 1)
    ours = SemiImplicitEuler().rollout(Pendulum(), x0, u, 0.05)[0].numpy()
    assert np.max(np.abs(ours - states)) <= 1e-9
    assert np.abs(states[:, 1]).max() == 8.0  # the speed limit was hit, so the constraint is tested too


def test_physwm_env_reproduces_pendulum_v1_rewards_and_starts():
    states, torques, rewards = _gym_rollout(3, steps=50)
    env = gym.make("physwm/Pendulum-v0", params=PendulumParams())
    obs, _ = env.reset(seed=3)
    assert np.array_equal(env.unwrapped.state, states[0])  # equal seeds, equal starts (gymnasium's draw)
    for t in range(50):
        _, r, terminated, truncated, info = env.step(torques[t].astype(np.float32))
        assert not terminated
        # float32 actions: gymnasium (NumPy) would compute 3 u / (m l^2) in float32; physwm in float64
        np.testing.assert_allclose(env.unwrapped.state, states[t + 1], rtol=0, atol=1e-5)
        assert r == pytest.approx(rewards[t], abs=1e-5)
    assert repr(env.unwrapped.integrator) == "SemiImplicitEuler(substeps=1)"


def test_env_info_reads_gymnasium_constants_and_to_action_reports_float32():
    env = gym.make("Pendulum-v1", g=9.81)
    info = env_info(env)
    assert info.system is Pendulum and info.params.gravity == 9.81 and info.params.max_torque == 2.0
    assert info.levels is None and info.low.tolist() == [-2.0] and info.dt == 0.05
    action, applied = to_action(info, [0.1])
    assert action.dtype == np.float32 and applied[0] == float(np.float32(0.1))  # what the env applies
    _, applied = to_action(info, [5.0])
    assert applied.tolist() == [2.0]


def test_speed_limit_constraint_and_energy():
    f = Pendulum()
    x = torch.tensor([[0.3, 9.0], [0.3, -12.0], [0.1, 1.0]], dtype=torch.float64)
    assert f.constrain(x)[:, 1].tolist() == [8.0, -8.0, 1.0]
    assert Pendulum(PendulumParams(max_speed=20.0)).constrain(x)[:, 1].tolist() == [9.0, -12.0, 1.0]
    # no torque, no damping, speed well below the limit: RK4 conserves the energy
    x0 = torch.tensor([[2.0, 0.0], [0.5, -2.0]], dtype=torch.float64)
    traj = RK4(substeps=10).rollout(f, x0, torch.zeros(2, 200, 1, dtype=torch.float64), 0.05)
    e = f.energy(traj)
    assert (e - e[:, :1]).abs().max() < 1e-7  # RK4's error at 5 ms sub-steps; E is 2 to 5 J
    assert traj[..., 1].abs().max() < 8.0  # the constraint never acted
    # damping removes energy; a torque along the velocity adds u * theta_dot
    damped = Pendulum(PendulumParams(damping=0.05))
    e = damped.energy(RK4(substeps=10).rollout(damped, x0, torch.zeros(2, 200, 1, dtype=torch.float64), 0.05))
    assert (e[:, 1:] - e[:, :-1]).max() <= 1e-12 and (e[:, -1] < e[:, 0] - 0.05).all()
    x1 = torch.tensor([[0.4, 1.5]], dtype=torch.float64, requires_grad=True)
    dx = f(x1, torch.tensor([[0.7]], dtype=torch.float64))
    (de,) = torch.autograd.grad(f.energy(x1).sum(), x1)
    assert float((de * dx.detach()).sum()) == pytest.approx(0.7 * 1.5, rel=1e-12)


def test_semi_implicit_euler_limits_the_velocity_before_it_moves_the_angle():
    f = Pendulum()
    x = torch.tensor([[0.0, 7.99]], dtype=torch.float64)
    u = torch.tensor([[2.0]], dtype=torch.float64)
    nxt = SemiImplicitEuler().step(f, x, u, 0.05)
    assert nxt[0, 1] == 8.0 and nxt[0, 0] == pytest.approx(8.0 * 0.05, abs=0)


def test_damped_pendulum_is_aphynitys_and_autonomous():
    f = DampedPendulum()
    p = f.params
    assert p.omega0 == pytest.approx(2 * math.pi / 6) and p.alpha == 0.2
    assert f.control_dim == 0 and f.state_dim == 2
    x = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    dx = f(x, torch.zeros(1, 0, dtype=torch.float64))
    assert dx[0].tolist() == pytest.approx([0.5, -p.omega0**2 * math.sin(1.0) - 0.2 * 0.5], rel=1e-15)
    # small oscillations at omega0 (frictionless): the period is T0 = 6 s
    g = DampedPendulum(DampedPendulumParams(alpha=0.0))
    traj = RK4(substeps=20).rollout(g, torch.tensor([[1e-3, 0.0]], dtype=torch.float64),
                                    torch.zeros(1, 12, 0, dtype=torch.float64), 0.5)
    assert traj[0, 12, 0] == pytest.approx(1e-3, rel=1e-5) and traj[0, 6, 0] == pytest.approx(-1e-3, rel=1e-5)
    # damping removes energy at the rate alpha theta_dot^2
    e = f.energy(RK4(substeps=50).rollout(f, x, torch.zeros(1, 20, 0, dtype=torch.float64), 0.5))
    assert (e[:, 1:] < e[:, :-1]).all()
    # learnable constants are identified by the base class's machinery
    h = DampedPendulum(learnable=("omega0", "alpha"))
    assert h.identified() == pytest.approx({"omega0": 2 * math.pi / 6, "alpha": 0.2})


def test_damped_pendulum_env_and_radius_starts():
    env = make_env(system="damped_pendulum")
    assert env_info(env).dt == 0.5 and env_info(env).control_dim == 0 and env.action_space.shape == (0,)
    env.reset(seed=0, options={"radius": (1.3, 2.3)})
    r = float(np.linalg.norm(env.unwrapped.state))
    assert 1.3 <= r < 2.3
    _, reward, terminated, truncated, info = env.step(np.zeros(0, np.float32))
    assert info["control"].shape == (0,) and not terminated
    expected = RK4(substeps=50).step(DampedPendulum(), torch.tensor(env.unwrapped.state), torch.zeros(0), 0.5)
    assert np.isfinite(expected.numpy()).all()
    data = physwm.collect(env, "random", episodes=3, max_steps=5, seed=0, progress=False, start_radius=(1.3, 2.3))
    radii = np.linalg.norm(data.states[:, 0].numpy(), axis=-1)
    assert data.control_dim == 0 and ((radii >= 1.3) & (radii < 2.3)).all()
    assert data.meta["policy"]["name"] == "none" and data.meta["start_radius"] == [1.3, 2.3]
    with pytest.raises(ValueError, match="radius"):
        env.reset(options={"radius": (2.0, 1.0)})
    with pytest.raises(ValueError, match="not several"):
        env.reset(options={"radius": (1.0, 2.0), "state": [0.0, 0.0]})
