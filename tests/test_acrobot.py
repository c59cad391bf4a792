"""Acrobot physics: exact against gymnasium's Acrobot-v1 (RK4, wrapping, bounds), energy, damping, termination."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from physwm.control import get_task
from physwm.envs import env_info, make_env, to_action
from physwm.integrators import RK4, ClassicRK4
from physwm.systems import Acrobot, AcrobotParams
from physwm.systems.acrobot import tip_height


def _gym_rollout(seed: int, steps: int = 200, wide: bool = False):
    """States (gymnasium's internal float64), torques, rewards and terminations of a random-action run;
    ``wide``: a start far from hanging (any angle, fast), so the angles wrap and the motion is chaotic."""
    env = gym.make("Acrobot-v1").unwrapped
    env.reset(seed=seed, options={"low": -3.0, "high": 3.0} if wide else None)
    if wide:
        env.state = env.state.astype(np.float64) * np.array([1.0, 1.0, 3.0, 3.0])
    rng = np.random.default_rng(seed)
    states, torques, rewards, ends = [np.array(env.state, dtype=np.float64)], [], [], []
    for _ in range(steps):
        a = int(rng.integers(3))
        _, r, terminated, _, _ = env.step(a)  # stepping on past termination is defined for the dynamics
        states.append(np.array(env.state, dtype=np.float64))
        torques.append([env.AVAIL_TORQUE[a]])
        rewards.append(r)
        ends.append(terminated)
    env.close()
    return np.stack(states), np.array(torques, dtype=np.float64), np.array(rewards), np.array(ends)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reproduces_acrobot_v1_to_round_off(seed):
    states, torques, _, _ = _gym_rollout(seed)
    x0 = torch.tensor(states[:1])
    u = torch.tensor(torques).reshape(1, -1, 1)
    ours = ClassicRK4().rollout(Acrobot(), x0, u, 0.2)[0].numpy()
    assert np.max(np.abs(ours - states)) <= 1e-9
    assert np.abs(states[:, 3]).max() > 2.0  # the links did swing
    # physwm's own RK4 is the same method, rounded differently: it agrees to round-off here too
    assert np.max(np.abs(RK4().rollout(Acrobot(), x0, u, 0.2)[0].numpy() - states)) <= 1e-9


@pytest.mark.parametrize("seed", [0, 1])
def test_reproduces_wrapping_and_bounds_over_the_top(seed):
    states, torques, _, _ = _gym_rollout(seed, steps=100, wide=True)
    ours = ClassicRK4().rollout(Acrobot(), torch.tensor(states[:1]), torch.tensor(torques)[None], 0.2)[0].numpy()
    assert np.max(np.abs(ours - states)) <= 1e-9
    assert (np.abs(np.diff(states[:, :2], axis=0)) > math.pi).sum() > 5  # the angles wrapped, many times
    assert np.abs(states[:, :2]).max() <= math.pi


def test_physwm_env_matches_acrobot_v1_rewards_and_termination():
    env = gym.make("Acrobot-v1")
    info = env_info(env)
    assert info.system is Acrobot and info.levels == (-1.0, 0.0, 1.0) and info.dt == 0.2
    assert to_action(info, [0.4])[0] == 1 and to_action(info, [-0.6])[0] == 0 and to_action(info, [0.6])[0] == 2
    states, torques, rewards, ends = _gym_rollout(4, steps=120, wide=True)
    ours = gym.make("physwm/Acrobot-v0", params=AcrobotParams()).unwrapped
    ours.reset(options={"state": states[0]})
    assert repr(ours.integrator) == "ClassicRK4(substeps=1)"
    for t in range(120):
        ours._steps_beyond_terminated = None
        _, r, terminated, _, _ = ours.step(torques[t].astype(np.float32))
        assert np.max(np.abs(ours.state - states[t + 1])) <= 1e-9
        assert (r, terminated) == (rewards[t], ends[t])
    assert ends.any() and not ends.all()  # both cases were checked


def test_energy_conserved_without_torque_and_damping_dissipates():
    x0 = torch.tensor([[1.0, -0.5, 0.0, 0.0], [0.3, 0.2, 1.0, -1.0]], dtype=torch.float64)
    u = torch.zeros(2, 50, 1, dtype=torch.float64)
    f = Acrobot(AcrobotParams(max_vel_1=1e9, max_vel_2=1e9))
    e = f.energy(RK4(substeps=40).rollout(f, x0, u, 0.2))
    assert (e - e[:, :1]).abs().max() < 1e-6
    d = Acrobot(AcrobotParams(damping_1=0.05, damping_2=0.05))
    e = d.energy(RK4(substeps=40).rollout(d, x0, u, 0.2))
    assert (e[:, 1:] - e[:, :-1]).max() <= 1e-9 and (e[:, -1] < e[:, 0] - 0.1).all()


def test_damping_terms_act_on_their_joints():
    x = torch.tensor([[0.0, 0.0, 1.0, 0.0]], dtype=torch.float64)  # link 1 turning, joint 2 at rest
    u = torch.zeros(1, 1, dtype=torch.float64)
    free = Acrobot()(x, u)
    b1 = Acrobot(AcrobotParams(damping_1=0.1))(x, u)
    assert b1[0, 2] < free[0, 2]  # damping at the pivot slows link 1
    # damping at the actuated joint is the same as a torque -b2 * dtheta2
    x2 = torch.tensor([[0.3, 0.2, 0.0, 2.0]], dtype=torch.float64)
    b2 = Acrobot(AcrobotParams(damping_2=0.1))(x2, u)
    torch.testing.assert_close(b2, Acrobot()(x2, torch.tensor([[-0.2]], dtype=torch.float64)), rtol=0, atol=1e-14)


def test_swingup_task_and_goal():
    task = get_task("swingup", "acrobot")
    assert task.terminal_success and task.steps == 500
    up = torch.tensor([[math.pi, 0.0, 0.0, 0.0]], dtype=torch.float64)
    hanging = torch.zeros(1, 4, dtype=torch.float64)
    assert float(tip_height(up)) == pytest.approx(2.0) and float(tip_height(hanging)) == pytest.approx(-2.0)
    u = torch.zeros(1, 1, dtype=torch.float64)
    assert float(task.cost(up, u)) == pytest.approx(0.0, abs=1e-12) and float(task.cost(hanging, u)) > 3.0
    assert task.success(up.numpy()) and not task.success(hanging.numpy())
    env = make_env("Acrobot-v1", "swingup")  # Acrobot-v1 ends episodes at the goal: it fits the task
    assert env.spec.max_episode_steps == 500
