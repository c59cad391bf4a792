"""Vector environments: N physwm environments in one batch behave as N single ones (gymnasium's vector API)."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import physwm
from physwm import collect, make_policy
from physwm.envs import make_env
from physwm.integrators import compile_available
from physwm.systems import BUILTIN_SYSTEMS, SYSTEMS
from physwm.vector_envs import FUSED_MIN_ENVS, VECTOR_ENV_CLASSES, SystemVectorEnv

ENV_ID = "physwm/CartPole-v0"
FRICTION = physwm.FRICTION_PARAMS


def make_vec(n=4, **kwargs):
    return gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point", **kwargs)


def test_every_system_with_an_environment_has_a_registered_vector_environment():
    for name in BUILTIN_SYSTEMS:  # (user systems other tests register have their own limits; see below)
        system = SYSTEMS[name]
        if system.env_id is None:
            continue
        envs = gym.make_vec(system.env_id, num_envs=3, vectorization_mode="vector_entry_point")
        assert isinstance(envs, VECTOR_ENV_CLASSES[name]) and envs.system is system
        n, m = system.state_dim, system.control_dim
        assert envs.observation_space.shape == (3, n) and envs.action_space.shape == (3, m)
        assert envs.single_observation_space == gym.make(system.env_id).observation_space
        assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
        assert envs.max_episode_steps == 500  # the registered time limit
        obs, _ = envs.reset(seed=0)
        assert obs.shape == (3, n) and obs.dtype == np.float32 and envs.observation_space.contains(obs)


def test_seeded_starts_are_the_single_environments_successive_starts():
    envs = make_vec(5, params=FRICTION)
    envs.reset(seed=7)
    single = gym.make(ENV_ID, params=FRICTION)
    starts = []
    for i in range(5):
        single.reset(seed=7 if i == 0 else None)
        starts.append(single.unwrapped.state.copy())
    assert np.array_equal(envs.unwrapped.state, np.array(starts))
    # check_reset_seed_determinism: the same seed, the same observations; another seed, others
    a, _ = envs.reset(seed=3)
    b, _ = envs.reset(seed=3)
    c, _ = envs.reset(seed=4)
    assert data_equivalence(a, b) and not np.array_equal(a, c)


@pytest.mark.filterwarnings("ignore:.*already returned terminated")
@pytest.mark.parametrize("terminate", [False, True])
def test_steps_are_those_of_n_single_environments_bit_for_bit(terminate):
    N, T = 6, 40
    envs = make_vec(N, params=FRICTION, terminate=terminate, autoreset_mode=AutoresetMode.DISABLED)
    singles = [gym.make(ENV_ID, params=FRICTION, terminate=terminate) for _ in range(N)]
    rng = np.random.default_rng(0)
    starts = rng.uniform(-0.2, 0.2, size=(N, 4))
    obs, _ = envs.reset(options={"state": starts})
    for e, s in zip(singles, starts):
        e.reset(options={"state": s})
    ended = np.zeros(N, dtype=bool)  # past termination the single env's reward is 0 (stepping on is undefined)
    for _ in range(T):
        actions = rng.uniform(-15, 15, size=(N, 1)).astype(np.float32)  # beyond the bound: clipped
        obs, rew, term, trunc, info = envs.step(actions)
        out = [e.step(a) for e, a in zip(singles, actions)]
        assert np.array_equal(envs.unwrapped.state, np.array([e.unwrapped.state for e in singles]))
        assert np.array_equal(obs, np.array([o[0] for o in out]))
        assert np.array_equal(rew[~ended], np.array([o[1] for o in out])[~ended])
        assert np.array_equal(term, np.array([o[2] for o in out]))
        ended |= term
        assert np.array_equal(info["control"], np.array([o[4]["control"] for o in out]))
        assert np.array_equal(info["force"], np.array([o[4]["force"] for o in out]))
        assert not trunc.any()
    assert (np.abs(info["control"]) <= 10.0).all()
    if terminate:
        assert term.any()  # pushed hard for 0.8 s, some poles fell: termination was exercised


def test_next_step_autoreset_matches_gymnasiums_sync_vector_env():
    """Against SyncVectorEnv of single physwm environments (gymnasium's reference vectoriser), next-step
    autoreset: same observations, rewards, flags and info masks; reset environments are given the same
    start on both sides (their generators differ by design)."""
    N, T, limit = 5, 70, 15
    kw = dict(params=FRICTION, terminate=True, max_episode_steps=limit)
    ours = make_vec(N, **kw)
    sync = SyncVectorEnv([lambda: gym.make(ENV_ID, **kw) for _ in range(N)])
    ours.reset(seed=1)
    sync.reset(seed=1)
    for i, e in enumerate(sync.envs):
        e.unwrapped.state = ours.unwrapped.state[i].copy()
    rng = np.random.default_rng(1)
    saw_term = saw_trunc = saw_reset = False
    for _ in range(T):
        actions = rng.uniform(-10, 10, size=(N, 1)).astype(np.float32)
        o1, r1, te1, tr1, i1 = ours.step(actions)
        o2, r2, te2, tr2, i2 = sync.step(actions)
        resetting = ~i1["_control"]  # environments reset in this step instead of stepped
        assert np.array_equal(resetting, ~i2.get("_control", np.zeros(N, bool)))
        assert np.array_equal(r1, r2) and np.array_equal(te1, te2) and np.array_equal(tr1, tr2)
        assert np.array_equal(o1[~resetting], o2[~resetting])
        assert (r1[resetting] == 0).all() and not te1[resetting].any() and not tr1[resetting].any()
        assert (np.abs(ours.unwrapped.state[resetting]) <= 0.05).all()  # a fresh start from the reset box
        for i in np.flatnonzero(resetting):
            sync.envs[i].unwrapped.state = ours.unwrapped.state[i].copy()
        saw_term |= te1.any()
        saw_trunc |= tr1.any()
        saw_reset |= resetting.any()
    assert saw_term and saw_trunc and saw_reset


def test_same_step_autoreset_returns_the_final_observation_and_a_new_start():
    envs = make_vec(3, params=FRICTION, terminate=False, max_episode_steps=4, autoreset_mode="SameStep")
    envs.reset(seed=0)
    for _ in range(3):
        _, _, _, trunc, info = envs.step(np.zeros((3, 1), np.float32))
        assert not trunc.any() and "final_obs" not in info
    before = envs.unwrapped.state.copy()
    expected = envs.unwrapped.integrator.step(envs.unwrapped.field, torch.from_numpy(before), torch.zeros(3, 1), 0.02)
    obs, rew, term, trunc, info = envs.step(np.zeros((3, 1), np.float32))
    assert trunc.all() and info["_final_obs"].all() and (rew == 1).all()
    np.testing.assert_array_equal(info["final_obs"], expected.numpy().astype(np.float32))
    assert (np.abs(obs) <= 0.05).all() and (envs.unwrapped.steps == 0).all()  # already restarted


def test_disabled_autoreset_and_reset_mask():
    envs = make_vec(3, params=FRICTION, terminate=False, autoreset_mode=AutoresetMode.DISABLED)
    envs.reset(seed=0)
    for _ in range(5):
        envs.step(np.ones((3, 1), np.float32))
    before = envs.unwrapped.state.copy()
    mask = np.array([False, True, False])
    envs.reset(options={"reset_mask": mask, "state": [0.0, 0.0, 3.0, 0.0]})
    assert np.array_equal(envs.unwrapped.state[~mask], before[~mask])
    assert np.array_equal(envs.unwrapped.state[1], [0.0, 0.0, 3.0, 0.0])
    assert envs.unwrapped.steps.tolist() == [5, 0, 5]


def test_step_determinism_and_returned_arrays_are_not_reused():
    envs = make_vec(4, params=FRICTION, terminate=False)
    a = [envs.reset(seed=11)[0]] + [envs.step(np.full((4, 1), 2.0, np.float32))[0] for _ in range(3)]
    b = [envs.reset(seed=11)[0]] + [envs.step(np.full((4, 1), 2.0, np.float32))[0] for _ in range(3)]
    assert all(data_equivalence(x, y) for x, y in zip(a, b))
    assert all(x is not y and not np.shares_memory(x, a[-1]) for x, y in zip(a[:-1], a[1:]))


def test_bad_actions_and_options_are_clear_errors():
    envs = make_vec(3)
    with pytest.raises(RuntimeError, match="reset"):
        envs.step(np.zeros((3, 1)))
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(3, 1\)"):
        envs.step(np.zeros((2, 1)))
    with pytest.raises(ValueError, match="finite"):
        envs.step(np.array([[0.0], [np.nan], [0.0]]))
    with pytest.raises(ValueError, match="valid"):
        envs.reset(options={"bogus": 1})
    with pytest.raises(ValueError, match="reset_mask"):
        envs.reset(options={"reset_mask": [1, 0, 1]})
    with pytest.raises(ValueError, match="autoreset_mode"):
        make_vec(2, autoreset_mode="sometimes")
    with pytest.raises(ValueError, match="num_envs"):
        VECTOR_ENV_CLASSES["cartpole"](num_envs=0)
    assert envs.step(np.zeros(3))[0].shape == (3, 4)  # [N] is accepted for a single control


def test_fused_default_depends_on_the_batch_size():
    small = VECTOR_ENV_CLASSES["cartpole"](num_envs=FUSED_MIN_ENVS - 1)
    big = VECTOR_ENV_CLASSES["cartpole"](num_envs=FUSED_MIN_ENVS)
    assert not small.fused and big.fused == compile_available()


@pytest.mark.compiles
def test_the_compiled_step_agrees_with_the_eager_one_to_round_off():
    # Euler without friction: the cheapest step to compile; the same code path as any integrator
    kw = dict(params=physwm.CartPoleParams(), integrator="euler", terminate=False, max_episode_steps=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no compiler: the eager fallback, same numbers
        fused = make_vec(8, fused=True, **kw)
        eager = make_vec(8, fused=False, **kw)
        fused.reset(seed=2)
        eager.reset(seed=2)
        assert fused.unwrapped.fused and not eager.unwrapped.fused
        assert fused.unwrapped.fused_step.compiled == compile_available()
        rng = np.random.default_rng(2)
        for _ in range(30):
            a = rng.uniform(-10, 10, size=(8, 1)).astype(np.float32)
            fused.step(a)
            eager.step(a)
    np.testing.assert_allclose(fused.unwrapped.state, eager.unwrapped.state, rtol=1e-10, atol=1e-10)
    assert np.abs(eager.unwrapped.state).max() > 0.1  # it moved


def test_collect_on_the_vector_env_is_bit_for_bit_the_single_env_collection():
    env = make_env(params="friction", task="balance")  # terminates: episodes of different lengths
    for policy in ("random", make_policy("lqr", noise_std=4.0)):
        a = collect(env, policy, episodes=5, max_steps=40, seed=3, vector=False, progress=False)
        b = collect(env, policy, episodes=5, max_steps=40, seed=3, progress=False)
        assert torch.equal(a.lengths, b.lengths) and a.meta == b.meta
        assert torch.equal(a.states.nan_to_num(7.0), b.states.nan_to_num(7.0))
        assert torch.equal(a.controls.nan_to_num(7.0), b.controls.nan_to_num(7.0))
        if policy == "random":
            assert 0 < int(b.lengths.min()) < 40  # some episodes terminated early
    box = dict(start_low=-0.3, start_high=0.3)
    a = collect(env, "uniform", episodes=4, max_steps=20, seed=0, vector=False, progress=False, **box)
    b = collect(env, "uniform", episodes=4, max_steps=20, seed=0, progress=False, **box)
    assert torch.equal(a.states.nan_to_num(7.0), b.states.nan_to_num(7.0))


def test_collect_keeps_user_wrappers_on_the_single_path():
    class Doubled(gym.ActionWrapper):
        def action(self, action):
            return np.asarray(action) * 2.0

    env = Doubled(make_env(params="friction", terminate=False))
    data = collect(env, lambda s, rng: 1.0, episodes=3, max_steps=5, seed=0, progress=False)
    assert torch.equal(data.controls, torch.full((3, 5, 1), 2.0, dtype=torch.float64))  # the wrapper acted
    with pytest.raises(ValueError, match="vector=True"):
        collect(env, "uniform", episodes=3, max_steps=5, seed=0, vector=True, progress=False)


def test_a_user_system_gets_a_vector_environment():
    from physwm.vector_envs import vector_env_class

    cls = vector_env_class(SYSTEMS["cartpole"])
    assert issubclass(cls, SystemVectorEnv) and cls.__name__ == "CartPoleVectorEnv"


@pytest.mark.parametrize("name", sorted(n for n, s in SYSTEMS.items() if s.env_id))
def test_every_systems_vector_env_steps_as_its_single_envs_bit_for_bit(name):
    # Pendulum (a speed limit and angle wrapping applied per sub-step), the autonomous damped pendulum
    # (controls of width 0), the acrobot (ClassicRK4): the vector step is each single step
    system = SYSTEMS[name]
    N, m = 5, system.control_dim
    envs = gym.make_vec(system.env_id, num_envs=N, vectorization_mode="vector_entry_point", fused=False)
    singles = [gym.make(system.env_id) for _ in range(N)]
    envs.reset(seed=11)
    for i, e in enumerate(singles):
        e.reset(seed=11 if i == 0 else None)
    # successive draws of one generator on the single side, in one reset on the vector side
    single_starts = [singles[0].unwrapped.state.copy()]
    for _ in range(N - 1):
        singles[0].reset()
        single_starts.append(singles[0].unwrapped.state.copy())
    assert np.array_equal(envs.unwrapped.state, np.array(single_starts))
    for e, s in zip(singles, single_starts):
        e.reset(options={"state": s})
    rng = np.random.default_rng(1)
    for _ in range(15):
        actions = rng.uniform(-1, 1, size=(N, m)).astype(np.float32)
        _, rew, term, _, info = envs.step(actions)
        out = [e.step(a) for e, a in zip(singles, actions)]
        assert np.array_equal(envs.unwrapped.state, np.array([e.unwrapped.state for e in singles]))
        assert np.array_equal(rew, np.array([o[1] for o in out]))
        assert np.array_equal(info["control"], np.array([o[4]["control"] for o in out]).reshape(N, m))
    assert np.abs(envs.unwrapped.state - np.array(single_starts)).max() > 1e-3  # it moved


def test_radius_starts_on_the_vector_env_and_in_collect():
    env_id = SYSTEMS["damped_pendulum"].env_id
    envs = gym.make_vec(env_id, num_envs=4, vectorization_mode="vector_entry_point")
    envs.reset(seed=0, options={"radius": (1.0, 2.0)})
    r = np.linalg.norm(envs.unwrapped.state, axis=1)
    assert ((r >= 1.0) & (r <= 2.0)).all()
    with pytest.raises(ValueError, match="not several"):
        envs.reset(options={"radius": (1.0, 2.0), "low": -1.0, "high": 1.0})
    with pytest.raises(ValueError, match="radius"):
        envs.reset(options={"radius": (2.0, 1.0)})
    env = gym.make(env_id)
    a = collect(env, "none", episodes=3, max_steps=10, seed=2, start_radius=(1.0, 2.0), vector=False, progress=False)
    b = collect(env, "none", episodes=3, max_steps=10, seed=2, start_radius=(1.0, 2.0), progress=False)
    assert torch.equal(a.states, b.states) and a.meta == b.meta
    r0 = a.states[:, 0].norm(dim=-1)
    assert ((r0 >= 1.0) & (r0 <= 2.0)).all()
