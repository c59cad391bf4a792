"""Noisy data (issue 12): observation and process noise in collect and the environments, the .npz schema,
and identification by multiple shooting (fit(obs_noise=...))."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from physwm.data import ObservationNoise, ProcessNoise, Trajectories, collect, make_policy
from physwm.envs import FRICTION_PARAMS
from physwm.evaluate import learnable_constants
from physwm.models import build
from physwm.train import FitConfig, estimate_obs_noise, fit, shooting_constants

PI = math.pi
HANGING = dict(start_low=[-0.5, -0.5, PI - 1, -1.0], start_high=[0.5, 0.5, PI + 1, 1.0])


def _env():
    return gym.make("physwm/CartPole-v0", params=FRICTION_PARAMS, terminate=False)


def _collect(seed, episodes=4, steps=30, **kw):
    policy = make_policy("uniform", force_mag=5.0)
    return collect(_env(), policy, episodes, steps, seed, progress=False, **HANGING, **kw)


# --- collection -----------------------------------------------------------------------------------


def test_observation_noise_is_seeded_and_keeps_the_clean_states():
    clean = _collect(3)
    a = _collect(3, obs_noise=ObservationNoise(0.01, relative=True))
    b = _collect(3, obs_noise=ObservationNoise(0.01, relative=True))
    c = _collect(4, obs_noise=ObservationNoise(0.01, relative=True))
    assert torch.equal(a.states, b.states)  # bitwise: same seed, same noise
    assert not torch.equal(a.states, clean.states)
    assert torch.equal(a.clean_states, clean.states) and torch.equal(a.controls, clean.controls)
    assert clean.clean_states is None and clean.obs_noise is None
    spread = clean.valid_states().std(0, unbiased=False).numpy()
    np.testing.assert_allclose(a.obs_noise, 0.01 * spread, rtol=1e-12)
    err = (a.valid_states() - clean.valid_states()).numpy()
    np.testing.assert_allclose(err.std(0), a.obs_noise, rtol=0.2)  # 124 draws per dimension
    assert not torch.equal(c.states[:, 0], a.states[:, 0])
    # absolute stds, one per state
    d = _collect(3, obs_noise=[0.0, 0.1, 0.0, 0.2])
    diff = (d.valid_states() - clean.valid_states()).numpy()
    assert (diff[:, [0, 2]] == 0).all() and diff[:, 1].std() > 0.05 and diff[:, 3].std() > 0.1
    assert d.meta["noise"]["obs_std"] == [0.0, 0.1, 0.0, 0.2]


def test_process_noise_disturbs_forces_and_jitters_constants_reproducibly():
    clean = _collect(1)
    noisy = _collect(1, process_noise=ProcessNoise(force_std=1.0))
    again = _collect(1, process_noise=ProcessNoise(force_std=1.0))
    assert torch.equal(noisy.states, again.states)
    assert torch.equal(noisy.controls, clean.controls)  # the commanded controls are recorded
    assert not torch.allclose(noisy.states, clean.states)
    single = collect(_env(), make_policy("uniform", force_mag=5.0), 4, 30, 1, progress=False, vector=False,
                     process_noise=ProcessNoise(force_std=1.0), **HANGING)  # fmt: skip
    assert torch.equal(single.states, noisy.states)  # one at a time or on the vector env: the same data
    jit = _collect(1, process_noise=ProcessNoise(param_jitter={"length": 0.1}))
    lengths = [p["length"] for p in jit.meta["noise"]["episode_params"]]
    assert len(set(lengths)) == 4 and all(abs(v / 0.5 - 1) < 0.5 for v in lengths)
    assert jit.meta["noise"]["episode_params"][0]["masspole"] == FRICTION_PARAMS.masspole
    assert torch.equal(jit.states, _collect(1, process_noise=ProcessNoise(param_jitter={"length": 0.1})).states)
    assert not torch.allclose(jit.states, clean.states)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(obs_noise=-0.1), "obs_noise must be >= 0"),
        (dict(obs_noise=float("nan")), "obs_noise must be finite"),
        (dict(obs_noise=[0.1, 0.1, 0.1]), r"obs_noise must be a number or 4 numbers"),
        (dict(obs_noise=ObservationNoise([0.1, 0.2], relative=True)), "obs_noise std must be a number or 4"),
        (dict(process_noise=ProcessNoise(param_jitter={"lenght": 0.1})), r"unknown constants \['lenght'\]"),
    ],
)
def test_bad_noise_is_a_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _collect(0, **kwargs)


def test_bad_noise_descriptions_and_fit_options_are_refused():
    with pytest.raises(ValueError, match="force_std must be >= 0"):
        ProcessNoise(force_std=-1.0)
    with pytest.raises(ValueError, match="param_jitter must be finite"):
        ProcessNoise(param_jitter=float("nan"))
    with pytest.raises(ValueError, match="obs_noise std must be >= 0"):
        ObservationNoise([0.1, -0.1])
    with pytest.raises(ValueError, match="obs_noise must be None, 'estimate'"):
        FitConfig(obs_noise="guess")
    with pytest.raises(ValueError, match="obs_noise must be finite"):
        FitConfig(obs_noise=[0.1, float("nan")])
    with pytest.raises(ValueError, match="obs_noise must be a number or 4 numbers"):
        fit(build("explicit"), _collect(0), obs_noise=[0.1, 0.1], progress=False)
    with pytest.raises(ValueError, match="obs_noise must be >= 0"):
        gym.make("physwm/CartPole-v0", obs_noise=-1.0)


def test_env_observation_noise_leaves_the_state_exact():
    env = gym.make("physwm/CartPole-v0", obs_noise=[0.0, 0.0, 0.1, 0.0])
    obs, _ = env.reset(seed=0)
    obs2, _ = gym.make("physwm/CartPole-v0", obs_noise=[0.0, 0.0, 0.1, 0.0]).reset(seed=0)
    state = env.unwrapped.state
    assert obs[0] == np.float32(state[0]) and abs(obs[2] - state[2]) > 1e-4 and np.array_equal(obs, obs2)


def test_noisy_data_round_trips_through_npz_and_version_1_files_still_load(tmp_path):
    a = _collect(2, obs_noise=ObservationNoise(0.01, relative=True))
    a.save(tmp_path / "noisy.npz")
    b = Trajectories.load(tmp_path / "noisy.npz")
    assert torch.equal(a.states, b.states) and torch.equal(a.clean_states, b.clean_states)
    np.testing.assert_array_equal(a.obs_noise, b.obs_noise)
    assert torch.equal(b[1:3].clean_states, a.clean_states[1:3]) and b.head(35).clean_states is not None
    with np.load(tmp_path / "noisy.npz") as z:
        assert int(z["physwm_schema"]) == 2
        arrays = {k: z[k] for k in z.files if k != "clean_states"}
    arrays["physwm_schema"] = np.asarray(1)
    np.savez(tmp_path / "v1.npz", **arrays)
    old = Trajectories.load(tmp_path / "v1.npz")
    assert old.clean_states is None and torch.equal(old.states, a.states)
    with pytest.raises(ValueError, match="clean_states must have the shape"):
        Trajectories(a.states, a.controls, a.lengths, dt=a.dt, clean_states=a.states[:, :3])


# --- identification -------------------------------------------------------------------------------


def _noisy_friction(seed):
    """The default study's friction task: 50 episodes of 100 steps (5,000 transitions), 1% observation noise."""
    policy = make_policy("uniform", force_mag=5.0)
    return collect(_env(), policy, 50, 100, seed, progress=False, obs_noise=ObservationNoise(0.01, relative=True),
                   **HANGING)  # fmt: skip


def _errors(model):
    truth = FRICTION_PARAMS.to_dict()
    return {k: float(getattr(mod.params, k).detach()) / truth[k] - 1 for _, mod, k in learnable_constants(model)}


def test_noise_estimate_and_shooting_recover_the_noise_and_beat_the_one_step_fit():
    data = _noisy_friction(0)
    rough = estimate_obs_noise(data, 4)
    assert abs(rough[0] / data.obs_noise[0] - 1) < 0.1  # the positions: smooth at dt, well estimated
    model = build("explicit")
    plain = fit(model, data, obs_noise=0, progress=False, diagnose=False)
    assert plain.stop_reason != "shooting"
    one_step = _errors(model)
    out = shooting_constants(model.double(), data, data.obs_noise, horizon=20)
    np.testing.assert_allclose(out["residual_std"], data.obs_noise, rtol=0.05)  # the model now fits: noise left
    shooting = _errors(model)
    assert max(map(abs, one_step.values())) > 0.03  # the one-step loss is off (cart_viscous +4.5%)
    assert max(map(abs, shooting.values())) < 0.02


@pytest.mark.parametrize("seed", range(5))
def test_fit_with_estimated_noise_identifies_cartpole_constants_within_3_percent(seed):
    data = _noisy_friction(seed)
    explicit = build("explicit")
    h = fit(explicit, data, obs_noise="estimate", progress=False, diagnose=False)
    assert h.stop_reason == "shooting" and h.prefit["method"] == "multiple shooting"
    errors = _errors(explicit)
    assert set(errors) == {"length", "masspole", "masscart", "cart_viscous", "cart_coulomb", "pole_damping"}
    assert max(map(abs, errors.values())) < 0.03, errors
    np.testing.assert_allclose(h.prefit["obs_noise"], data.obs_noise, rtol=0.1)  # the noise, estimated
    hybrid = build("hybrid")
    h = fit(hybrid, data, obs_noise="estimate", epochs=1, progress=False, diagnose=False)  # obs_noise read too
    assert h.prefit["method"] == "multiple shooting" and not h.polish  # no polish on noisy data
    errors = _errors(hybrid)
    assert max(map(abs, errors.values())) < 0.03, errors


# --- uncertainty along the horizon ----------------------------------------------------------------


class _RandomWalk(torch.nn.Module):
    """x' = x + u + N(0, std^2) as a probabilistic model's predict (std deliberately wrong)."""

    def __init__(self, std):
        super().__init__()
        self.std = std
        self.dummy = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))

    def predict(self, x, u):
        return x + u, torch.full_like(x, self.std)


def _walks(seed, B=400, H=20, std=0.1):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(B, H, 2, generator=g, dtype=torch.float64)
    x = torch.zeros(B, H + 1, 2, dtype=torch.float64)
    for t in range(H):
        x[:, t + 1] = x[:, t] + u[:, t] + std * torch.randn(B, 2, generator=g, dtype=torch.float64)
    return {"states": x, "controls": u}


def test_crps_matches_its_integral_and_the_ensemble_form():
    import scipy.integrate
    import scipy.stats

    from physwm.evaluate import ensemble_crps, gaussian_crps, sharpness

    m, v, y = 0.3, 0.7, 1.1
    ref = scipy.integrate.quad(lambda x: (scipy.stats.norm.cdf(x, m, v**0.5) - (x >= y)) ** 2, -30, 30, points=[y])[0]
    got = gaussian_crps(torch.tensor([[m]]), torch.tensor([[v]]), torch.tensor([[y]]))
    assert got == pytest.approx(ref, rel=1e-7)
    assert gaussian_crps(torch.tensor([[m]]), torch.tensor([[0.0]]), torch.tensor([[y]])) == pytest.approx(0.8)
    samples = torch.randn(4000, 1, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * v**0.5 + m
    assert ensemble_crps(samples, torch.tensor([[y]])) == pytest.approx(ref, rel=0.03)
    assert sharpness(torch.tensor([[4.0, 16.0]]), scale=[2.0, 2.0]) == pytest.approx((2.5) ** 0.5)


def test_recalibration_fixes_an_overconfident_model_along_the_horizon():
    from physwm.evaluate import Recalibration, rollout_calibration, trajectory_samples

    model = _RandomWalk(0.1 / 3)  # three times too confident
    samples = trajectory_samples(model, torch.zeros(3, 2, dtype=torch.float64),
                                 torch.ones(3, 5, 2, dtype=torch.float64), particles=4, seed=1)  # fmt: skip
    assert samples.shape == (4, 3, 6, 2)
    assert torch.allclose(samples.mean((0, 1))[-1], torch.full((2,), 5.0, dtype=torch.float64), atol=0.1)
    again = trajectory_samples(model, torch.zeros(3, 2, dtype=torch.float64),
                               torch.ones(3, 5, 2, dtype=torch.float64), particles=4, seed=1)  # fmt: skip
    assert torch.equal(samples, again)
    test = _walks(2)
    before = rollout_calibration(model, test, (1, 10, 20), particles=64, max_windows=None)
    assert all(before[h]["calibration_error"] > 0.3 for h in (1, 10, 20))
    assert before[10]["coverage@0.9"] < 0.6
    recal = Recalibration.fit(model, _walks(1), 20, particles=64, max_windows=None)
    np.testing.assert_allclose(recal.factors, 3.0, rtol=0.25)
    after = rollout_calibration(model, test, (1, 10, 20), particles=64, recalibration=recal, max_windows=None)
    assert all(after[h]["calibration_error"] < 0.05 for h in (1, 10, 20))
    assert after[10]["crps"] < before[10]["crps"] and after[10]["nll"] < before[10]["nll"]
    assert after[10]["sharpness"] > before[10]["sharpness"]
    assert Recalibration.from_dict(recal.to_dict()) == recal
    with pytest.raises(ValueError, match="factors must be positive"):
        Recalibration((1.0, -1.0))


def test_reliability_diagram_draws_one_curve_per_horizon():
    import matplotlib

    matplotlib.use("Agg")
    from physwm.plot import reliability_diagram

    curves = {"as trained": {1: {0.5: 0.2, 0.9: 0.5}, 10: {0.5: 0.1, 0.9: 0.3}}, "recalibrated": {1: {0.5: 0.5}}}
    fig = reliability_diagram(curves)
    axes = fig.axes
    assert len(axes) == 2 and len(axes[0].lines) == 3 and len(axes[1].lines) == 2
    np.testing.assert_allclose(axes[0].lines[2].get_ydata(), [0.1, 0.3])


def test_planners_judge_plans_on_the_recalibrated_spread():
    from physwm.control import CEM
    from physwm.evaluate import Recalibration
    from physwm.models import Ensemble

    members = [build("explicit", seed=0), build("explicit", seed=1)]
    with torch.no_grad():
        members[1].field.raw["length"].fill_(0.7 / members[1].field.constants["length"].scale)
    ens = Ensemble(members)

    def cost(x, u):
        return x[..., 2] ** 2  # the pole angle: sensitive to where each particle goes

    x0 = torch.tensor([0.0, 0.0, 0.3, 0.0])
    u = torch.linspace(-1, 1, 10).reshape(1, 10, 1).repeat(3, 1, 1) * torch.tensor([1.0, 0.0, -1.0])[:, None, None]
    kw = dict(bounds=(-10, 10), horizon=10, population=8, ensemble="ts", fused=False, progress=False)
    plain = CEM(ens, cost, **kw).evaluate(x0, u)
    same = CEM(ens, cost, recalibration=Recalibration((1.0,)), **kw).evaluate(x0, u)
    torch.testing.assert_close(same, plain)
    wide = CEM(ens, cost, recalibration=Recalibration((3.0,)), **kw).evaluate(x0, u)
    with torch.no_grad():
        trajs = ens.member_rollouts(x0.expand(3, -1), u)  # [2, 3, 11, 4]
        mean = trajs.mean(0)
        spread = mean + 3.0 * (trajs - mean)
        spread[:, :, 0] = trajs[:, :, 0]
        expected = cost(spread[:, :, 1:], None).sum(-1).mean(0)
    torch.testing.assert_close(wide, expected)
    assert (wide > plain).all()  # a wider spread of the angle costs more
    with pytest.raises(ValueError, match="recalibration needs ensemble='ts'"):
        CEM(ens, cost, bounds=(-10, 10), recalibration=Recalibration((1.0,)), progress=False)
