"""Metrics against hand-computed values; divergent models; bad input."""

import math

import numpy as np
import pytest
import torch

from physwm import CartPole, CartPoleParams
from physwm.data import Trajectories
from physwm.evaluate import (
    calibration_error,
    energy_error,
    eval_windows,
    evaluate,
    gaussian_nll,
    interval_coverage,
    mse_per_dim,
    one_step_errors,
    parameter_error,
    rmse_vs_horizon,
    state_scale,
    valid_prediction_time,
)
from physwm.models import ODEModel, WorldModel, build


class Drift(WorldModel):
    """x_{t+1} = x_t + c (a model with a known constant per-step error against a system at rest)."""

    def __init__(self, c, nan_after=None):
        super().__init__(4, 1, 0.02)
        self.register_buffer("c", torch.tensor(c, dtype=torch.float32))
        self.nan_after = nan_after
        self.steps = 0

    def step(self, x, u):
        return x + self.c.to(x.dtype)

    def rollout(self, x0, u):
        out = super().rollout(x0, u)
        if self.nan_after is not None:
            out[:, self.nan_after + 1 :] = float("nan")
        return out


class Gaussian(WorldModel):
    """Predicts x + offset with a given std (a probabilistic model with known calibration)."""

    def __init__(self, offset, std):
        super().__init__(4, 1, 0.02)
        self.offset, self.std = offset, std

    def step(self, x, u):
        return x + self.offset

    def predict(self, x, u):
        return x + self.offset, torch.full_like(x, self.std)


def _rest(B=3, T=10, dtype=torch.float64):
    """A system at rest: every state zero, zero force."""
    return {"states": torch.zeros(B, T + 1, 4, dtype=dtype), "controls": torch.zeros(B, T, 1, dtype=dtype)}


def test_mse_per_dim_hand_values():
    true = torch.zeros(2, 3)
    pred = torch.tensor([[1.0, 2.0, 0.0], [3.0, 0.0, -1.0]])
    # dims: (1 + 9)/2 = 5, (4 + 0)/2 = 2, (0 + 1)/2 = 0.5
    assert mse_per_dim(pred, true).tolist() == [5.0, 2.0, 0.5]
    # in units of scale (2, 1, 0.5): divide by scale^2 -> 1.25, 2, 2
    assert mse_per_dim(pred, true, scale=[2.0, 1.0, 0.5]).tolist() == [1.25, 2.0, 2.0]
    # NaN predictions are infinitely wrong, never dropped
    pred[0, 1] = float("nan")
    out = mse_per_dim(pred, true)
    assert out[1] == math.inf and out[0] == 5.0


def test_rmse_vs_horizon_hand_values():
    B, T = 2, 4
    true = torch.zeros(B, T + 1, 2)
    pred = torch.zeros(B, T + 1, 2)
    t = torch.arange(T + 1, dtype=torch.float32)
    pred[0, :, 0] = t  # error t in dim 0 for window 0
    pred[1, :, 1] = 2 * t  # error 2t in dim 1 for window 1
    # at horizon h: squared errors h^2 (w0, d0), 4h^2 (w1, d1), zeros elsewhere; mean over 4 = 5h^2/4
    r = rmse_vs_horizon(pred, true, horizons=[1, 2, 4])
    torch.testing.assert_close(r, torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64) * math.sqrt(5 / 4))
    per_dim = rmse_vs_horizon(pred, true, horizons=[2], per_dim=True)
    # dim 0: sqrt((4 + 0) / 2), dim 1: sqrt((0 + 16) / 2)
    torch.testing.assert_close(per_dim, torch.tensor([[math.sqrt(2), math.sqrt(8)]], dtype=torch.float64))
    with pytest.raises(ValueError, match="outside 1..4"):
        rmse_vs_horizon(pred, true, horizons=[5])


def test_valid_prediction_time_hand_values_and_nan():
    T = 6
    true = torch.zeros(3, T + 1, 2)
    pred = torch.zeros(3, T + 1, 2)
    # normalised error at step t (scale 1): window 0: 0.1 t in both dims -> RMS 0.1 t; passes 0.25 at t = 3
    pred[0, :, :] = 0.1 * torch.arange(T + 1, dtype=torch.float32)[:, None]
    # window 1 never passes the threshold
    pred[1, :, 0] = 0.01
    # window 2: fine until a NaN at step 4 (divergent model)
    pred[2, 4:, 1] = float("nan")
    vpt = valid_prediction_time(pred, true, scale=[1.0, 1.0], threshold=0.25)
    assert vpt.tolist() == [2, T, 3]
    assert vpt.dtype == torch.int64
    # threshold exactly at an error value does not pass (strictly greater)
    assert valid_prediction_time(pred[:1], true[:1], scale=1.0, threshold=0.3 + 1e-6).tolist() == [3]
    with pytest.raises(ValueError, match="threshold"):
        valid_prediction_time(pred, true, scale=1.0, threshold=0.0)


def test_energy_error_hand_values():
    true = torch.zeros(2, 3, 2)
    pred = torch.zeros(2, 3, 2)
    pred[0, 1] = torch.tensor([1.0, 1.0])  # energy (sum) error 2 at step 1, window 0
    pred[1, 2] = torch.tensor([0.0, 3.0])  # energy error 3 at step 2, window 1

    e = energy_error(pred, true, lambda x: x.sum(-1))
    torch.testing.assert_close(e, torch.tensor([0.0, math.sqrt(2.0), math.sqrt(4.5)], dtype=torch.float64))


def test_energy_error_is_drift_for_a_conservative_system():
    # RK4 on the frictionless CartPole with zero force conserves energy closely; explicit Euler does not
    # (its energy grows on an oscillation), so its energy error is its drift and grows with time.
    f = CartPole()
    x0 = torch.tensor([[0.0, 0.0, 2.0, 0.0]], dtype=torch.float64)
    u = torch.zeros(1, 50, 1, dtype=torch.float64)
    true = ODEModel(f, "rk4").double().rollout(x0, u)
    assert energy_error(true, true, f.energy).max() == 0
    euler = ODEModel(f, "euler").double().rollout(x0, u)
    e = energy_error(euler, true, f.energy)
    drift = (f.energy(euler[0]) - f.energy(true[0])).abs()
    torch.testing.assert_close(e, drift)  # one window: the RMSE is the absolute drift
    assert e[0] == 0 and e[-1] > 1e-3 and e[-1] > e[10]


def test_parameter_error():
    err = parameter_error({"length": 0.55, "cart_viscous": 0.02}, CartPoleParams(length=0.5))
    assert err["length"] == pytest.approx(0.1)  # relative
    assert err["cart_viscous"] == pytest.approx(0.02)  # absolute: the true value is 0
    with pytest.raises(ValueError, match="no true value"):
        parameter_error({"nonsense": 1.0}, CartPoleParams())


def test_gaussian_nll_and_coverage_hand_values():
    mean = torch.zeros(3, 1)
    var = torch.ones(3, 1)
    target = torch.tensor([[0.5], [1.0], [2.0]])
    expected = np.mean([0.5 * (math.log(2 * math.pi) + z**2) for z in (0.5, 1.0, 2.0)])
    assert float(gaussian_nll(mean, var, target)) == pytest.approx(expected)
    # in units of scale 2: mean 0, var 1/4, target / 2
    expected2 = np.mean([0.5 * (math.log(2 * math.pi / 4) + (z / 2) ** 2 * 4) for z in (0.5, 1.0, 2.0)])
    assert float(gaussian_nll(mean, var, target, scale=2.0)) == pytest.approx(expected2)
    cov = interval_coverage(mean, var, target, levels=(0.5, 0.9, 0.95))
    # z_0.5 = 0.674: only 0.5 inside; z_0.9 = 1.645: 0.5, 1.0 inside; z_0.95 = 1.96: still 2 of 3
    assert cov == {0.5: pytest.approx(1 / 3), 0.9: pytest.approx(2 / 3), 0.95: pytest.approx(2 / 3)}
    assert calibration_error(cov) == pytest.approx((abs(1 / 3 - 0.5) + abs(2 / 3 - 0.9) + abs(2 / 3 - 0.95)) / 3)
    with pytest.raises(ValueError, match="positive"):
        gaussian_nll(mean, -var, target)


def test_evaluate_hand_values_drift_model():
    data = _rest(B=4, T=10)
    scale = torch.tensor([0.5, 1.0, 1.0, 1.0], dtype=torch.float64)
    model = Drift([0.1, 0.0, 0.0, 0.0])
    r = evaluate(model, data, horizons=[1, 5, 10], scale=scale, threshold=0.35)
    # the prediction h steps ahead is off by 0.1 h in x: normalised error 0.2 h in dim 0, RMS over 4 dims 0.1 h
    for h in (1, 5, 10):
        assert r[f"rmse@{h}"] == pytest.approx(0.1 * h, rel=1e-6)
        assert r[f"rmse@{h}[0]"] == pytest.approx(0.1 * h, rel=1e-6)  # physical units, dim 0
        assert r[f"rmse@{h}[1]"] == 0.0
    assert r["one_step_mse[0]"] == pytest.approx(0.01, rel=1e-6)
    assert r["one_step_mse_norm[0]"] == pytest.approx(0.04, rel=1e-6)
    assert r["one_step_mse_norm"] == pytest.approx(0.01, rel=1e-6)
    # the error 0.1 t passes 0.35 first at t = 4: 3 valid steps
    assert r["vpt_steps"] == 3.0
    assert r["vpt_s"] == pytest.approx(r["vpt_steps"] * 0.02)
    assert r["vpt_censored"] == 0.0
    assert r["windows"] == 4
    assert "nll" not in r  # deterministic: no uncertainty metrics


def test_evaluate_divergent_model_gives_inf_not_nan():
    model = Drift([0.0, 0.0, 0.0, 0.0], nan_after=3)
    r = evaluate(model, _rest(T=10), horizons=[2, 5], scale=1.0)
    assert r["rmse@2"] == 0.0
    assert r["rmse@5"] == math.inf
    assert r["vpt_steps"] == 3.0  # steps 1..3 exact, step 4 is NaN


def test_evaluate_exact_model_on_real_trajectories():
    # data from the frictionless CartPole integrated with RK4 = the explicit model itself: zero error
    f = CartPole()
    g = torch.Generator().manual_seed(0)
    x0 = (torch.rand(3, 4, generator=g, dtype=torch.float64) - 0.5) * 0.2
    u = (torch.rand(3, 30, 1, generator=g, dtype=torch.float64) - 0.5) * 20
    states = ODEModel(f, "rk4").double().rollout(x0, u)
    traj = Trajectories(states, u, dt=0.02)
    model = build("explicit", learnable=[]).double()
    r = evaluate(model, traj, horizons=[1, 10, 20], energy_fn=f.energy, true_params=CartPoleParams())
    assert max(r["rmse@1"], r["rmse@10"], r["rmse@20"]) < 1e-12
    assert r["energy_rmse@20"] < 1e-10
    assert r["vpt_steps"] == 20 and r["vpt_censored"] == 1.0
    assert r["windows"] == 3 * (30 - 20 + 1)  # every window of 20 steps inside the 3 episodes
    # a model with learnable constants reports its parameter error against the truth
    wrong = build("explicit", CartPoleParams(length=0.6), learnable=["length"]).double()
    r2 = evaluate(wrong, traj, horizons=[1], true_params=CartPoleParams())
    assert r2["param_err[length]"] == pytest.approx(0.2, rel=1e-6)
    assert r2["rmse@1"] > 1e-6


def test_uncertainty_metrics_of_a_probabilistic_model():
    data = _rest(B=50, T=2)
    r = evaluate(Gaussian(offset=0.1, std=0.1), data, horizons=[1], scale=1.0)
    # every target is exactly 1 std from the mean: inside the 90% (1.645) and 95% intervals, not the 50%
    assert r["coverage@0.5"] == 0.0 and r["coverage@0.9"] == 1.0 and r["coverage@0.95"] == 1.0
    assert r["nll"] == pytest.approx(0.5 * (math.log(2 * math.pi * 0.01) + 1.0), rel=1e-5)
    # a real ensemble gives finite values too
    ens = build("ensemble", members=2, member_options={"hidden": [8]})
    traj = Trajectories(torch.randn(2, 6, 4, dtype=torch.float64), torch.randn(2, 5, 1, dtype=torch.float64))
    ens.fit_normalization(traj.states.float(), traj.controls.float())
    re = evaluate(ens, traj, horizons=[1, 2])
    assert math.isfinite(re["nll"]) and 0.0 <= re["coverage@0.9"] <= 1.0


def test_state_scale_ignores_padding():
    s = torch.zeros(2, 4, 1, dtype=torch.float64)
    s[0, :, 0] = torch.tensor([1.0, -1.0, 1.0, -1.0])
    s[1, :2, 0] = torch.tensor([1.0, -1.0])
    s[1, 2:, 0] = float("nan")
    traj = Trajectories(s, torch.zeros(2, 3, 1, dtype=torch.float64), lengths=[3, 1])
    assert state_scale(traj).tolist() == [1.0]


def test_eval_windows_subsample_and_errors():
    traj = Trajectories(torch.randn(2, 21, 4, dtype=torch.float64), torch.randn(2, 20, 1, dtype=torch.float64))
    w = eval_windows(traj, 5, max_windows=7, seed=1)
    assert w["states"].shape == (7, 6, 4) and w["controls"].shape == (7, 5, 1)
    assert torch.equal(eval_windows(traj, 5, max_windows=7, seed=1)["states"], w["states"])  # seeded
    short = Trajectories(torch.randn(2, 21, 4, dtype=torch.float64), torch.randn(2, 20, 1, dtype=torch.float64),
                         lengths=[3, 4])  # fmt: skip
    with pytest.raises(ValueError, match="no evaluation window of 10 steps.*longest episode has 4"):
        eval_windows(short, 10)
    with pytest.raises(ValueError, match="fewer than the horizon"):
        eval_windows(_rest(T=3), 5)


def test_state_dim_mismatch_is_a_clear_error():
    from physwm.models import MLPModel

    model = MLPModel(3, 1, 0.02)
    with pytest.raises(ValueError, match="state_dim 3 but the data's states have 4"):
        evaluate(model, _rest(T=5), horizons=[1])
    with pytest.raises(ValueError, match="state_dim 3"):
        one_step_errors(model, _rest(T=5))


def test_evaluate_keeps_model_dtype_and_mode():
    model = build("mlp", hidden=[8])
    model.train()
    evaluate(model, _rest(T=3), horizons=[1, 3], scale=1.0)
    assert model.training and next(model.parameters()).dtype == torch.float32
