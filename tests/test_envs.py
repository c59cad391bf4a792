"""physwm/CartPole-v0: gymnasium API, exactness against CartPole-v1, reset options, no-termination swings."""

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import physwm
from physwm.envs import ENV_ID, FRICTION_PARAMS, CartPoleEnv
from physwm.systems.cartpole import cartpole_energy


def _energy(state, params):
    return float(cartpole_energy(torch.as_tensor(state, dtype=torch.float64), params))


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"terminate": False}, {"params": FRICTION_PARAMS}, {"integrator": "euler", "substeps": 1}],
)
def test_check_env_passes(kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # advice about unbounded / non-normalised Box spaces
        check_env(gym.make(ENV_ID, **kwargs).unwrapped)


def test_registered_with_cartpole_v1_time_limit():
    assert ENV_ID in gym.registry
    assert gym.registry[ENV_ID].max_episode_steps == 500
    env = gym.make(ENV_ID, integrator="euler", terminate=False, max_episode_steps=7)
    env.reset(seed=0)
    truncated = [env.step(np.zeros(1, np.float32))[3] for _ in range(7)]
    assert truncated == [False] * 6 + [True]


@pytest.mark.parametrize(
    ("integrator", "gym_integrator"), [("euler", "euler"), ("semi_implicit_euler", "semi-implicit euler")]
)
def test_reproduces_gymnasium_cartpole_v1(integrator, gym_integrator):
    ref = gym.make("CartPole-v1")
    ref.unwrapped.kinematics_integrator = gym_integrator
    env = gym.make(ENV_ID, params=physwm.CartPoleParams(), integrator=integrator, substeps=1, terminate=True)
    obs_ref, _ = ref.reset(seed=123)
    obs, _ = env.reset(seed=123)
    np.testing.assert_array_equal(obs, obs_ref)
    rng = np.random.default_rng(1)
    steps = 0
    for _episode in range(3):
        done = False
        while not done:
            a = int(rng.integers(2))
            obs_ref, r_ref, term_ref, _, _ = ref.step(a)
            obs, r, term, _, info = env.step(np.array([10.0 if a else -10.0], dtype=np.float32))
            assert env.unwrapped.state.dtype == np.float64
            assert np.abs(env.unwrapped.state - ref.unwrapped.state).max() <= 1e-12
            assert obs.dtype == np.float32 and np.array_equal(obs, obs_ref)
            assert (r, term) == (r_ref, term_ref) and info["force"] == (10.0 if a else -10.0)
            done = term_ref
            steps += 1
        ref.reset()
        env.reset(options={"state": ref.unwrapped.state})
    assert steps > 20


def test_rk4_differs_from_euler():
    """Guard for the test above: the integrator choice really changes the trajectory."""
    euler, rk4 = gym.make(ENV_ID, integrator="euler"), gym.make(ENV_ID, integrator="rk4")
    s0 = [0.0, 0.0, 0.1, 0.0]
    euler.reset(options={"state": s0})
    rk4.reset(options={"state": s0})
    for _ in range(5):
        euler.step([1.0])
        rk4.step([1.0])
    assert np.abs(euler.unwrapped.state - rk4.unwrapped.state).max() > 1e-4


def test_reset_state_option_and_bounds():
    env = gym.make(ENV_ID)
    s = [0.3, -0.2, 2.0, 1.5]
    obs, info = env.reset(seed=0, options={"state": s})
    assert np.array_equal(env.unwrapped.state, np.array(s)) and env.unwrapped.state.dtype == np.float64
    assert np.array_equal(obs, np.array(s, dtype=np.float32)) and obs.dtype == np.float32
    # same seed -> same default start; low/high as scalars and as 4-vectors
    a = env.reset(seed=5)[0]
    b = env.reset(seed=5)[0]
    assert np.array_equal(a, b) and np.all(np.abs(a) <= 0.05)
    env.reset(seed=1, options={"low": 1.0, "high": 2.0})
    assert np.all((env.unwrapped.state >= 1.0) & (env.unwrapped.state <= 2.0))
    low, high = np.array([0.0, 0.0, 3.0, -1.0]), np.array([0.0, 0.0, 3.1, 1.0])
    env.reset(seed=1, options={"low": low, "high": high})
    st = env.unwrapped.state
    assert st[0] == 0.0 and st[1] == 0.0 and 3.0 <= st[2] <= 3.1 and -1 <= st[3] <= 1


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"state": [0.0, 0.0, 0.1]}, "shape"),
        ({"state": [[0.0, 0.0, 0.1, 0.0]]}, "shape"),
        ({"state": 0.1}, "shape"),
        ({"state": [0.0, np.nan, 0.1, 0.0]}, "finite"),
        ({"state": [0.0, 0.0, np.inf, 0.0]}, "finite"),
        ({"state": ["a", 0, 0, 0]}, "numbers"),
        ({"state": [0.0] * 4, "low": -1.0}, "either"),
        ({"low": 1.0, "high": -1.0}, "<="),
        ({"start": [0.0] * 4}, "unknown reset options"),
    ],
)
def test_reset_bad_options_raise(options, match):
    env = CartPoleEnv()
    with pytest.raises(ValueError, match=match):
        env.reset(options=options)


def test_no_termination_follows_full_swing():
    """From near upright with no force the frictionless pole swings through the bottom and back up."""
    env = gym.make(ENV_ID, terminate=False, max_episode_steps=1000)
    params = env.unwrapped.params
    obs, _ = env.reset(options={"state": [0.0, 0.0, 0.2, 0.0]})
    e0 = _energy(env.unwrapped.state, params)
    p0 = params.total_mass * 0.0  # horizontal momentum at rest
    thetas = []
    for _ in range(300):
        obs, reward, terminated, truncated, _ = env.step(np.zeros(1, np.float32))
        assert not terminated and not truncated and reward == 1.0
        assert env.observation_space.contains(obs)
        thetas.append(env.unwrapped.state[2])
    thetas = np.array(thetas)
    assert thetas.max() > 2 * math.pi - 0.5  # came back up on the other side, theta not wrapped
    x, x_dot, theta, theta_dot = env.unwrapped.state
    momentum = params.total_mass * x_dot + params.polemass_length * theta_dot * math.cos(theta)
    assert abs(momentum - p0) < 1e-6  # no horizontal force: momentum conserved (RK4 error ~1e-7)
    assert abs(_energy(env.unwrapped.state, params) - e0) < 1e-4 * abs(e0)  # RK4, frictionless
    # the same start with termination ends early
    env_t = gym.make(ENV_ID, terminate=True)
    env_t.reset(options={"state": [0.0, 0.0, 0.2, 0.0]})
    steps = next(t for t in range(1, 50) if env_t.step(np.zeros(1, np.float32))[2])
    assert steps < 10


def test_friction_dissipates_energy():
    env = gym.make(ENV_ID, params=FRICTION_PARAMS, terminate=False)
    assert env.unwrapped.integrator.substeps == 10
    env.reset(options={"state": [0.0, 0.5, 1.0, 0.0]})
    energies = [_energy(env.unwrapped.state, FRICTION_PARAMS)]
    for _ in range(25):
        env.step(np.zeros(1, np.float32))
        energies.append(_energy(env.unwrapped.state, FRICTION_PARAMS))
    assert np.all(np.diff(energies) < 0)


def test_integrator_choice_and_errors():
    assert CartPoleEnv().integrator.substeps == 1
    assert CartPoleEnv(params=FRICTION_PARAMS, integrator="euler").integrator.substeps == 10
    assert CartPoleEnv(integrator="rk4", substeps=3).integrator.substeps == 3
    inst = physwm.RK4(substeps=4)
    assert CartPoleEnv(integrator=inst).integrator is inst
    assert type(CartPoleEnv(integrator="dopri5").integrator).__name__ == "Adaptive"
    with pytest.raises(ValueError, match=r"unknown integrator 'leapfrog'; valid: .*rk4"):
        CartPoleEnv(integrator="leapfrog")
    with pytest.raises(ValueError, match="substeps"):
        CartPoleEnv(integrator=inst, substeps=2)
    with pytest.raises(ValueError, match="substeps"):
        CartPoleEnv(integrator="rk4", substeps=0)


def test_actions_are_clipped_and_bad_actions_raise():
    env = CartPoleEnv(integrator="euler")
    s0 = [0.0, 0.0, 0.05, 0.0]
    env.reset(options={"state": s0})
    *_, info = env.step(np.array([250.0]))
    clipped = env.state.copy()
    assert info["force"] == 10.0
    env.reset(options={"state": s0})
    env.step(np.array([10.0], dtype=np.float32))
    assert np.array_equal(env.state, clipped)
    env.reset(options={"state": s0})
    assert env.step([-1e9])[4]["force"] == -10.0
    for bad, match in [([np.nan], "finite"), ([np.inf], "finite"), ([1.0, 2.0], "shape"), ("x", "force")]:
        with pytest.raises(ValueError, match=match):
            env.step(bad)
    with pytest.raises(RuntimeError, match="reset"):
        CartPoleEnv().step([0.0])


def test_observation_space_bounds():
    term, free = CartPoleEnv(terminate=True), CartPoleEnv(terminate=False)
    assert term.observation_space.high[2] == pytest.approx(2 * 12 * math.pi / 180)
    assert term.observation_space.high[0] == pytest.approx(4.8)
    assert np.all(np.isinf(free.observation_space.high)) and np.all(np.isinf(free.observation_space.low))
    assert term.action_space.shape == (1,) and term.action_space.high[0] == 10.0
    assert CartPoleEnv(params=physwm.CartPoleParams(force_mag=3.0)).action_space.high[0] == np.float32(3.0)
