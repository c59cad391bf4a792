"""The defaults are good: plain ``fit(model, data)`` reaches the model's best, and says when it cannot.

The data protocol is ``bench/recipes.py``'s (CartPole truths inside the hybrid's physics family, 1,000
near-upright transitions under uniform random forces, 16 held-out episodes scored by their 100-step
open-loop RMSE); ``BEST_RMSE100`` holds the best rmse@100 that benchmark's grid of settings reached on each
truth (``python bench/recipes.py``; the grid and its output are in its docstring and the report).
"""

import math
import warnings

import pytest
import torch

from physwm import RK4, CartPole, CartPoleParams, FitConfig, Trajectories, fit
from physwm.evaluate import UnidentifiableWarning, identifiability, identified_constants, rollout_rmse
from physwm.models import MODEL_NAMES, RECIPES, build, family_of, recipe_for
from physwm.systems.cartpole import THETA_THRESHOLD, X_THRESHOLD
from physwm.train import gauss_newton_constants

TRUTHS = {
    "heavier_longer_viscous": {"masspole": 0.25, "length": 0.7, "cart_viscous": 1.2, "pole_damping": 0.004},
    "coulomb": {"cart_coulomb": 0.5},
    "pole_damping": {"pole_damping": 0.01},
}
# The float32 rollouts of the hybrid with the true constants reach an rmse@100 of about 1.2e-6 (the bench's
# "floor"): below 1e-5, differences between settings are round-off amplified over 100 steps, not accuracy.
ROUND_OFF = 1e-5
# Best rmse@100 of bench/recipes.py's grid (9 settings) on each truth, 1,000 transitions (all at round-off:
# the true constants' rollouts reach 1.19e-6, 1.42e-6 and 1.46e-6).
BEST_RMSE100 = {
    "heavier_longer_viscous": 1.173e-06,  # recipe + horizon 10; default 1.518e-06
    "coulomb": 1.407e-06,  # default (recipe)
    "pole_damping": 1.364e-06,  # default (recipe)
}


def simulate(params, episodes, steps, seed, terminate, force=10.0, low=None, high=None, substeps=1):
    """bench/recipes.py's batched CartPole episodes (RK4 with ``substeps`` per 20 ms step, uniform forces up
    to ``force`` N)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.full((4,), -0.05, dtype=torch.float64) if low is None else torch.tensor(low, dtype=torch.float64)
    high = torch.full((4,), 0.05, dtype=torch.float64) if high is None else torch.tensor(high, dtype=torch.float64)
    x0 = low + (high - low) * torch.rand(episodes, 4, generator=g, dtype=torch.float64)
    u = (torch.rand(episodes, steps, 1, generator=g, dtype=torch.float64) * 2 - 1) * force
    states = RK4(substeps=substeps).rollout(CartPole(params), x0, u, 0.02)
    lengths = torch.full((episodes,), steps, dtype=torch.int64)
    if terminate:
        failed = (states[:, 1:, 0].abs() > X_THRESHOLD) | (states[:, 1:, 2].abs() > THETA_THRESHOLD)
        lengths = torch.where(failed.any(1), failed.float().argmax(1) + 1, torch.full_like(lengths, steps))
        T = torch.arange(steps + 1)[None, :, None]
        states = torch.where(T <= lengths[:, None, None], states, torch.nan)
        u = torch.where(T[:, :-1] < lengths[:, None, None], u, torch.nan)
    return Trajectories(states, u, lengths, dt=0.02)


def in_family_data(truth, transitions=1000, substeps=1):
    """Training data and held-out episodes of a truth; ``substeps=1``: the hybrid's own integrator (RK4, one
    20 ms step), so the truth is inside its family to round-off (Coulomb friction's tanh(v / 0.01 m/s) is too
    stiff for one RK4 step to match finer integration: with 10 sub-steps it is not)."""
    params = CartPoleParams(**truth)
    train = simulate(params, episodes=max(40, transitions // 8), steps=200, seed=0, terminate=True, substeps=substeps)
    test = simulate(params, episodes=16, steps=100, seed=1, terminate=False, substeps=substeps)
    return train.head(transitions).to(torch.float32), test


def constants_error(found, truth):
    true = CartPoleParams(**truth).to_dict()
    return {
        k: abs(v - true[k]) / abs(true[k]) if true[k] != 0 else abs(v - true[k]) / CartPole.constants[k].scale
        for k, v in found.items()
    }


@pytest.mark.parametrize("name", list(TRUTHS))
def test_plain_fit_identifies_in_family_truths_and_is_as_accurate_as_the_best_setting(name):
    truth = TRUTHS[name]
    train, test = in_family_data(truth)
    model = build("hybrid")
    history = fit(model, train, progress=False)
    errors = constants_error(identified_constants(model), truth)
    assert set(errors) == set(CartPole.identify)
    assert max(errors.values()) < 0.01, errors  # every constant within 1% (zero truths: 1% of the scale)
    rmse = rollout_rmse(model, test, 100)
    # at least 90% of the best accuracy (1 / rmse) of the grid, errors below ROUND_OFF counting as equal
    assert rmse <= max(BEST_RMSE100[name] / 0.9, ROUND_OFF)
    assert history.converged and history.summary().startswith("converged")
    assert history.identifiability["unidentifiable"] == {}
    # the constants fitted first explain the data to round-off: no epoch of Adam is spent on them
    assert history.stop_reason == "explained" and history.epoch == [] and history.prefit["train_loss"] < 1e-10


def test_the_old_defaults_were_far_from_it():
    # what fit(model, data) did before the recipes (FitConfig()'s plain Adam): 5 orders of magnitude worse
    truth = TRUTHS["heavier_longer_viscous"]
    train, test = in_family_data(truth)
    model = build("hybrid")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnidentifiableWarning)
        fit(model, train, config=FitConfig(), progress=False)
    assert rollout_rmse(model, test, 100) > 1e4 * BEST_RMSE100["heavier_longer_viscous"]


def test_a_cart_that_hardly_moves_gets_a_warning_naming_its_friction():
    # a 100 kg cart pushed by at most 1 N under a swinging pole: it moves by millimetres at mm/s, so its
    # friction (0.1 N s/m viscous, 0.1 N Coulomb) changes the data by less than they can show
    truth = CartPoleParams(masscart=100.0, cart_viscous=0.1, cart_coulomb=0.1, pole_damping=0.005)
    pi = math.pi
    data = simulate(truth, episodes=10, steps=100, seed=0, terminate=False, force=1.0,
                    low=[0, 0, pi - 1, -1], high=[0, 0, pi + 1, 1]).to(torch.float32)  # fmt: skip
    model = build("explicit")
    with pytest.warns(UnidentifiableWarning, match=r"cannot pin down cart_viscous, cart_coulomb \(") as record:
        history = fit(model, data, progress=False)
    message = str(record[0].message)
    assert "the predictions barely depend on it" in message and "trades off against cart_viscous" in message
    report = history.identifiability
    assert set(report["unidentifiable"]) == {"cart_viscous", "cart_coulomb"}
    assert ["cart_viscous", "cart_coulomb", pytest.approx(-1.0, abs=0.01)] in [list(t) for t in report["trade_offs"]]
    i = report["names"].index("cart_viscous")
    assert report["high"][i] - report["low"][i] > 1.0  # an honest interval: ten times the true value wide
    j = report["names"].index("pole_damping")  # what the swinging pole does show is pinned down
    assert report["high"][j] - report["low"][j] < 1e-4
    assert "NOT IDENTIFIABLE" in history.summary()


def test_identifiability_of_well_excited_constants():
    truth = TRUTHS["heavier_longer_viscous"]
    train, _ = in_family_data(truth)
    model = build("explicit", system=CartPoleParams(**truth))
    w = train.windows(1)
    model.fit_normalization(w["states"], w["controls"])
    report = identifiability(model, train)
    assert report.identifiable and report.residual_rms < 1e-3
    assert report.names == list(CartPole.identify)
    for name, value in truth.items():
        low, high = report.interval(name)
        assert low <= value <= high and high - low < 0.1 * value
    assert report.eigenvalues == sorted(report.eigenvalues) and report.condition_number > 1.0
    # the pole's and the cart's mass trade off (both set the total mass that the force accelerates)
    assert [(a, b) for a, b, _ in report.trade_offs] == [("masspole", "masscart")]
    with pytest.raises(ValueError, match="unknown constant 'gravity'"):
        report.interval("gravity")
    with pytest.raises(ValueError, match="has no learnable physical constants"):
        identifiability(build("mlp"), train)


def test_gauss_newton_reaches_the_truth_and_respects_bounds():
    truth = TRUTHS["coulomb"]
    train, _ = in_family_data(truth, transitions=400)
    model = build("explicit", system=CartPoleParams(cart_viscous=0.3))  # starts with a friction that is absent
    w = train.windows(1)
    model.fit_normalization(w["states"], w["controls"])
    out = gauss_newton_constants(model, {"states": w["states"], "controls": w["controls"]}, 30)
    found = model.field.identified()
    assert out["loss_after"] < 1e-9 * out["loss_before"]
    assert found["cart_viscous"] >= 0.0 and found["cart_viscous"] < 1e-5  # on its bound, not below it
    assert found["cart_coulomb"] == pytest.approx(0.5, rel=1e-4)


def test_recipes_are_per_family_and_explicit_arguments_override_them():
    assert set(RECIPES) == set(MODEL_NAMES)  # every family build() knows has its recipe
    hybrid, mlp = build("hybrid"), build("mlp")
    assert family_of(hybrid) == "hybrid" and recipe_for(mlp) == RECIPES["mlp"]
    cfg = FitConfig.for_model(hybrid)
    assert cfg.constants_lr is not None and cfg.constants_lr > cfg.lr and cfg.prefit_steps > 0
    assert cfg.early_stopping is not None and cfg.steps is not None
    # an explicit epoch count or batch size means exactly that: the recipe's step budget is dropped
    old = FitConfig.for_model(hybrid, epochs=150, lr=1e-2, batch_size=64)
    assert (old.epochs, old.lr, old.batch_size, old.steps) == (150, 1e-2, 64, None)
    assert old.constants_lr == cfg.constants_lr  # what was not given stays the recipe's
    assert FitConfig.for_model(hybrid, steps=500, batch_size=64).steps == 500
    # a model built by hand is trained by the recipe its parameters call for
    assert family_of(build("explicit").field) == "explicit"
    from physwm.models import ODEModel

    assert family_of(ODEModel(CartPole(learnable=["length"]))) == "explicit"
    assert family_of(ODEModel(CartPole())) == "mlp"


def test_constants_lr_gives_the_constants_their_own_learning_rate():
    # Adam's first step moves every parameter with a gradient by its learning rate (to eps)
    truth = TRUTHS["pole_damping"]
    train, _ = in_family_data(truth, transitions=200)
    model = build("hybrid")
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    h = fit(model, train, config=FitConfig(epochs=1, batch_size=10_000, lr=1e-3, constants_lr=0.05, diagnose=False),
            progress=False)  # fmt: skip
    assert h.lr == [1e-3]  # the networks' rate (the first group's)
    moved = {k: (v.detach() - before[k]).abs().max().item() for k, v in model.named_parameters()}
    for name in ("length", "masspole", "masscart"):
        assert moved[f"field.physics.raw.{name}"] == pytest.approx(0.05, rel=1e-3)  # Adam: lr * g / (|g| + eps)
    networks = [v for k, v in moved.items() if ".raw." not in k]
    assert max(networks) == pytest.approx(1e-3, rel=1e-3)
    same = build("hybrid")
    fit(same, train, config=FitConfig(epochs=1, batch_size=10_000, lr=1e-3, diagnose=False), progress=False)
    assert (same.field.physics.raw["length"] - before["field.physics.raw.length"]).abs().item() == pytest.approx(
        1e-3, rel=1e-3
    )  # constants_lr=None: the constants share lr


def test_history_says_whether_training_converged():
    truth = TRUTHS["pole_damping"]
    train, _ = in_family_data(truth, transitions=200)
    capped = fit(build("mlp"), train, epochs=3, progress=False)
    assert capped.stop_reason == "epochs" and not capped.converged
    assert capped.summary().startswith("NOT converged")
    stopped = fit(build("mlp"), train, epochs=400, early_stopping=2, min_delta=0.5, progress=False)
    assert stopped.stop_reason == "early_stopping" and stopped.converged
    assert stopped.summary().startswith("converged (no improvement for the patience)")


def test_training_runs_when_the_constants_do_not_explain_the_data():
    # explained_loss=None: the networks are trained after the constants, even on data the physics explains
    train, _ = in_family_data(TRUTHS["pole_damping"], transitions=200)
    h = fit(build("hybrid"), train, explained_loss=None, steps=32, early_stopping=None, progress=False)
    assert h.stop_reason == "epochs" and len(h.epoch) == 2 and h.prefit["kept"] and "train_loss" not in h.prefit
    assert h.polish  # the polish runs after training
    # out of the family (10 RK4 sub-steps of Coulomb friction's stiff tanh: one step cannot match them), the
    # constants fitted first leave residuals far above explained_loss, so training goes on
    coarse, _ = in_family_data(TRUTHS["coulomb"], transitions=200, substeps=10)
    h = fit(build("hybrid"), coarse, steps=32, early_stopping=None, progress=False)
    assert h.prefit["train_loss"] > 1e3 * FitConfig.for_model(build("hybrid")).explained_loss
    assert h.stop_reason == "epochs" and len(h.epoch) == 2


def test_lbfgs_takes_one_learning_rate():
    hybrid = build("hybrid")
    assert FitConfig.for_model(hybrid, optimizer="lbfgs", lr=1.0).constants_lr is None  # the recipe's dropped
    with pytest.raises(ValueError, match="constants_lr is not supported with optimizer='lbfgs'"):
        FitConfig.for_model(hybrid, optimizer="lbfgs", lr=1.0, constants_lr=0.1)
    with pytest.raises(ValueError, match="explained_loss must be"):
        FitConfig(explained_loss=-1.0)
