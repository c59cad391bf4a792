"""Autonomous systems (control_dim = 0) everywhere: data, normalisers, fields, every model family, fit,
evaluate, plots."""

import math

import numpy as np
import pytest
import torch

import physwm
from physwm import build, fit
from physwm.data import Trajectories
from physwm.evaluate import evaluate
from physwm.integrators import RK4
from physwm.models import NeuralField, WorldModel
from physwm.models.base import Normalizer
from physwm.systems import DampedPendulum, DampedPendulumParams


@pytest.fixture(scope="module")
def pendulum_data():
    """APHYNITY-like data: 16 trajectories of 20 samples at 0.5 s, starts at radius U[1.3, 2.3)."""
    env = physwm.envs.make_env(system="damped_pendulum", max_episode_steps=20)
    data = physwm.collect(env, "random", episodes=16, max_steps=20, seed=0, progress=False, start_radius=(1.3, 2.3))
    return data.to(torch.float32).split((0.75, 0.25), seed=0)


def test_trajectories_without_controls(tmp_path):
    states = torch.randn(3, 6, 2, dtype=torch.float64)
    t = Trajectories(states, None, dt=0.5)
    assert t.controls.shape == (3, 5, 0) and t.control_dim == 0 and t.num_transitions == 15
    w = t.windows(2)
    assert w["states"].shape == (12, 3, 2) and w["controls"].shape == (12, 2, 0)
    back = Trajectories.load(t.save(tmp_path / "a.npz"))
    assert back.controls.shape == (3, 5, 0) and torch.equal(back.states, states)
    assert "2 transitions" not in t.summary() and "s0" in t.summary()
    data = physwm.data.EpisodeData({"states": states}, "train", 2, 0)  # a dict without controls
    assert data.controls.shape == (3, 5, 0)
    with pytest.raises(ValueError, match="'controls'"):
        physwm.data.EpisodeData({"states": states}, "train", 2, 1)


def test_normalizer_does_not_amplify_constant_inputs():
    n = Normalizer(3)
    v = torch.stack((torch.randn(100), torch.zeros(100), torch.full((100,), 2.0)), -1)
    n.fit(v)
    assert n.std[1:].tolist() == [1.0, 1.0] and n.mean[2] == 2.0  # centred, not divided by 1e-6
    assert n.normalize(torch.tensor([[0.0, 1.0, 3.0]]))[0, 1:].tolist() == [1.0, 1.0]
    empty = Normalizer(0).fit(torch.zeros(5, 7, 0))
    assert empty.normalize(torch.zeros(4, 0)).shape == (4, 0)
    # the workaround of the issue (a dummy zero control) no longer amplifies a later non-zero control 1e6x
    f = NeuralField(2, 1)
    f.fit_normalization(torch.randn(4, 11, 2), torch.zeros(4, 10, 1), 0.5)
    x = torch.randn(5, 2)
    change = (f(x, torch.ones(5, 1)) - f(x, torch.zeros(5, 1))).abs().max()
    assert change < 10 * f.out_norm.std.max()


def test_fields_and_models_accept_control_dim_zero():
    f = NeuralField(2, 0, hidden=(8,))
    x = torch.randn(4, 2)
    assert f(x, torch.zeros(4, 0)).shape == (4, 2)
    traj = RK4().rollout(f, x, torch.zeros(4, 6, 0), 0.5)
    assert traj.shape == (4, 7, 2)
    assert torch.allclose(traj[:, 1], RK4().step(f, x, torch.zeros(4, 0), 0.5))
    with pytest.raises(ValueError, match="control_dim an int >= 0"):
        NeuralField(2, -1)
    with pytest.raises(ValueError, match="control_dim an int >= 0"):
        WorldModel(2, -1, 0.5)


@pytest.mark.parametrize("name", ["explicit", "node", "hybrid", "mlp", "gaussian_mlp", "vae", "gru", "transformer",
                                  "ensemble"])
def test_every_family_fits_and_evaluates_an_autonomous_system(pendulum_data, name):
    train, val = pendulum_data
    nominal = DampedPendulumParams(omega0=1.2, alpha=0.0)  # physics-based models start 15% off, frictionless
    options = {"members": 2} if name == "ensemble" else {}
    model = build(name, nominal, **options)
    assert model.control_dim == 0
    history = fit(model, train, val, epochs=4, lr=3e-3 if name not in ("explicit", "hybrid") else 0.03,
                  progress=False)
    assert len(history.epoch) == 4 and not history.diverged
    assert set(history.metrics) >= {"mse", "mse_data"} and all(math.isfinite(v) for v in history.metrics["mse_data"])
    metrics = evaluate(model, val, horizons=[1, 10], true_params=DampedPendulum.Params())
    assert math.isfinite(metrics["rmse@10"]) and metrics["windows"] > 0
    pred = model.rollout(val.states[:2, 0], val.controls[:2])
    assert pred.shape == (2, 21, 2) and torch.isfinite(pred).all()
    if name in ("explicit", "hybrid"):
        # the identified constants move from the nominal ones towards APHYNITY's (omega0 = 1.047, alpha = 0.2)
        assert metrics["param_err[omega0]"] < (1.2 - 2 * math.pi / 6) / (2 * math.pi / 6)


def test_identification_of_aphynitys_constants(pendulum_data):
    train, val = pendulum_data
    # 10 RK4 sub-steps of 50 ms: the discretisation error is then far below the constants' (0.5 s steps bias them)
    model = build("explicit", DampedPendulumParams(omega0=1.2, alpha=0.0), substeps=10)
    fit(model, train, val, epochs=40, lr=0.05, batch_size=64, val_horizon=2, progress=False)
    ident = model.field.identified()
    assert ident["omega0"] == pytest.approx(2 * math.pi / 6, rel=1e-3)
    assert ident["alpha"] == pytest.approx(0.2, abs=1e-3)


def test_plots_of_an_autonomous_system(pendulum_data, tmp_path):
    train, val = pendulum_data
    fig = physwm.plot.phase_portrait(val.states[0], system="damped_pendulum", train=train.states)
    assert fig.axes[0].get_xlabel() == "pendulum angle θ from hanging (rad)"
    fig = physwm.plot.vector_field(np.linspace(-2, 2, 5), np.linspace(-2, 2, 4), np.zeros((4, 5, 2)),
                                   {"node": np.ones((4, 5, 2))}, system=DampedPendulum)
    assert fig.axes[0].get_ylabel() == "angular velocity dθ/dt (rad/s)"
    physwm.plot.save(fig, tmp_path / "field.png")
    assert (tmp_path / "field.png").is_file()


def test_lyapunov_exponent_of_known_linearisations():
    from physwm.evaluate import lyapunov_exponent
    from physwm.systems import Pendulum

    # near hanging, APHYNITY's pendulum is a damped oscillator: exponent -alpha / 2 = -0.1 1/s
    x0 = torch.tensor([[1e-3, 0.0], [0.0, -1e-3]], dtype=torch.float64)
    states = torch.cat((x0[:, None], x0[:, None]), 1)
    lam = lyapunov_exponent(DampedPendulum(), states, torch.zeros(2, 60, 0), 0.5, substeps=10)
    assert lam == pytest.approx(-0.1, abs=0.01)
    # near upright, gymnasium's pendulum falls at sqrt(3 g / (2 l)) = sqrt(15) 1/s; over T = 1 s the finite-time
    # exponent adds at most log(|(1, sqrt(15))| / 1) / T for the stretch of the unstable direction's norm
    up = torch.tensor([[1e-4, 0.0]], dtype=torch.float64)
    lam = lyapunov_exponent(Pendulum(), torch.stack((up, up), 1), torch.zeros(1, 20, 1), 0.05, substeps=10)
    assert math.sqrt(15.0) < lam < math.sqrt(15.0) + math.log(4.0)
