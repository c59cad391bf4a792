"""Training options of the hybrid literature: APHYNITY's penalty normalisation and adaptive multiplier, losses
in the data's units, per-group learning rates for physical constants."""

import pytest
import torch
from torch import nn

from physwm import FitConfig, build, fit, load_checkpoint, save_checkpoint
from physwm.integrators import RK4
from physwm.models import HybridField, ODEModel
from physwm.systems import DampedPendulum, DampedPendulumParams
from physwm.train.fit import constants_params


class Constant(nn.Module):
    """A residual that outputs a fixed vector (for exact penalty values)."""

    def __init__(self, value):
        super().__init__()
        self.value = nn.Parameter(torch.tensor(value, dtype=torch.float64))

    def forward(self, x, u):
        return self.value.expand(*x.shape[:-1], -1)


def _batch(B=4, H=3):
    g = torch.Generator().manual_seed(0)
    return {"states": torch.randn(B, H + 1, 2, generator=g, dtype=torch.float64),
            "controls": torch.zeros(B, H, 0, dtype=torch.float64)}


@torch.no_grad()
def test_penalty_norms():
    physics = DampedPendulum().double()
    x = torch.tensor([[3.0, 4.0], [0.6, 0.8]], dtype=torch.float64)
    u = torch.zeros(2, 0, dtype=torch.float64)
    field = HybridField(physics, Constant([1.0, 2.0]), penalty=0.5, penalty_norm="state")
    # APHYNITY's l2_normalized: (||r|| / (||x|| + 1e-5))^2, averaged: ||r||^2 = 5, ||x|| = 5 and 1
    expected = (5 / (5 + 1e-5) ** 2 + 5 / (1 + 1e-5) ** 2) / 2
    assert float(field.residual_norm_sq(x, u)) == pytest.approx(expected, rel=1e-12)
    reg, metrics = field.regularization(x, u)
    assert float(reg) == pytest.approx(0.5 * expected, rel=1e-12) and "multiplier" not in metrics
    physical = HybridField(physics, Constant([1.0, 2.0]), penalty=1.0, penalty_norm="physical")
    assert float(physical.residual_norm_sq(x, u)) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="unknown penalty_norm 'l3'"):
        HybridField(physics, Constant([1.0, 2.0]), penalty_norm="l3")
    with pytest.raises(ValueError, match="multiplier_rate"):
        HybridField(physics, Constant([1.0, 2.0]), multiplier_rate=-1.0)


def test_adaptive_multiplier_grows_with_the_trajectory_loss_in_data_units():
    physics = DampedPendulum(DampedPendulumParams(alpha=0.0)).double()
    field = HybridField(physics, Constant([0.1, -0.2]), penalty=1.0, penalty_norm="state", multiplier_rate=2.0)
    model = ODEModel(field, "rk4", 0.5).double()
    model.delta_norm.std.fill_(0.5)  # so the normalised and the data-unit losses differ by a factor 4
    batch = _batch()
    assert float(field.multiplier) == 1.0
    loss, metrics = model.loss(batch)
    pred = model.rollout(batch["states"][:, 0], batch["controls"])[:, 1:]
    mse_data = float((pred - batch["states"][:, 1:]).pow(2).mean())
    assert metrics["mse_data"] == pytest.approx(mse_data, rel=1e-12)
    assert metrics["mse"] == pytest.approx(mse_data / 0.25, rel=1e-12)  # normalised: / delta_std^2
    assert metrics["multiplier"] == 1.0  # this loss used lambda = 1 ...
    assert float(field.multiplier) == pytest.approx(1.0 + 2.0 * mse_data, rel=1e-12)  # ... then lambda grew
    r = field.residual_norm_sq(batch["states"][:, :-1], batch["controls"])
    assert float(loss) == pytest.approx(metrics["mse"] + float(r) / 1.0, rel=1e-12)
    lam = float(field.multiplier)
    loss2, metrics2 = model.loss(batch)
    assert metrics2["multiplier"] == lam and float(loss2) == pytest.approx(metrics2["mse"] + float(r) / lam, rel=1e-12)
    # not in evaluation mode or without gradients
    model.eval()
    model.loss(batch)
    model.train()
    with torch.no_grad():
        model.loss(batch)
    assert float(field.multiplier) == pytest.approx(lam + 2.0 * mse_data, rel=1e-12)


def test_adaptive_multiplier_is_saved_and_built(tmp_path):
    model = build("hybrid", "damped_pendulum", rows="all", penalty_norm="state", multiplier_rate=1.0)
    assert model.field.multiplier_rate == 1.0 and model.field.penalty_norm == "state"
    assert "field.multiplier" in model.state_dict()
    model.field.multiplier.fill_(7.5)
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "m.pt", model))
    assert float(loaded.field.multiplier) == 7.5
    assert "field.multiplier" not in build("hybrid").state_dict()  # a fixed penalty has no multiplier


def test_hybrid_with_adaptive_multiplier_trains():
    env_data = torch.Generator().manual_seed(1)
    x0 = torch.randn(8, 2, generator=env_data, dtype=torch.float64)
    truth = DampedPendulum().double()
    states = RK4(substeps=10).rollout(truth, x0, torch.zeros(8, 12, 0, dtype=torch.float64), 0.5).float()
    data = {"states": states, "controls": torch.zeros(8, 12, 0)}
    model = build("hybrid", DampedPendulumParams(alpha=0.0), rows="all", learnable=["omega0"], penalty_norm="state",
                  multiplier_rate=1.0, substeps=2)
    history = fit(model, data, epochs=8, lr=3e-3, horizon=2, val_horizon=2, progress=False)
    lams = history.metrics["multiplier"]
    assert lams[-1] > lams[0] >= 1.0 and all(b >= a for a, b in zip(lams, lams[1:]))
    assert history.train_loss[-1] < history.train_loss[0]


def test_constants_lr_puts_system_parameters_in_their_own_group():
    model = build("hybrid")
    consts = constants_params(model)
    assert {id(p) for p in consts} == {id(p) for p in model.field.physics.raw.values()}
    captured = {}

    def grab(epoch, history, m):
        captured["lr"] = history.lr[-1]
        return True

    data = {"states": torch.randn(3, 6, 4) * 0.1, "controls": torch.randn(3, 5, 1)}
    before = {k: v.detach().clone() for k, v in model.field.physics.raw.items()}
    cfg = FitConfig(epochs=1, lr=1e-4, constants_lr=0.1, batch_size=64)
    fit(model, data, config=cfg, progress=False, callback=grab)
    moved = max(float((model.field.physics.raw[k] - before[k]).abs()) for k in before)
    assert 0.05 < moved <= 0.1 + 1e-6  # one Adam step of about constants_lr in raw units
    assert captured["lr"] == 1e-4  # the networks' rate is the one reported
    explicit = build("explicit")
    fit(explicit, data, epochs=1, lr=1e-4, constants_lr=0.1, progress=False)  # constants only: one group
    with pytest.raises(ValueError, match="constants_lr is not supported with optimizer='lbfgs'"):
        FitConfig(optimizer="lbfgs", lr=1.0, constants_lr=0.1)
    with pytest.raises(ValueError, match="constants_lr"):
        FitConfig(constants_lr=-1.0)


def test_default_fit_keeps_one_parameter_group(tmp_path):
    """constants_lr=None (the default): the optimiser is the one of before (one group); else two groups."""
    data = {"states": torch.randn(3, 6, 4) * 0.1, "controls": torch.randn(3, 5, 1)}
    groups = {}
    for name, extra in (("default", {}), ("split", {"constants_lr": 0.03})):
        fit(build("hybrid"), data, epochs=1, checkpoint=tmp_path / f"{name}.pt", progress=False, **extra)
        _, state = load_checkpoint(tmp_path / f"{name}.pt")
        groups[name] = [(g["lr"], len(g["params"])) for g in state["training"]["optimizer"]["param_groups"]]
    n_constants = len(build("hybrid").field.physics.raw)
    assert groups["default"] == [(1e-3, groups["default"][0][1])] and len(groups["default"]) == 1
    assert groups["split"] == [(1e-3, groups["default"][0][1] - n_constants), (0.03, n_constants)]
