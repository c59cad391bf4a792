"""physwm.adapt (few-shot adaptation to a changed system) and the online AdaptiveController (issue 11)."""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest
import torch

import physwm
from physwm import FRICTION_PARAMS, adapt, build, collect
from physwm.control import CEM, AdaptiveController, get_task, run_episode
from physwm.envs import make_env
from physwm.evaluate import UnidentifiableWarning, rollout_rmse
from physwm.train.adapt import held_out_tail

CHANGED = {
    "heavier_pole": {"masspole": 0.2},
    "longer_pole": {"length": 0.75},
    "more_friction": {"cart_viscous": 0.3, "cart_coulomb": 0.3, "pole_damping": 0.015},
}
START = dict(start_low=[-0.5, -0.5, math.pi - 1, -1.0], start_high=[0.5, 0.5, math.pi + 1, 1.0])


def _data(params, episodes, steps, seed):
    env = make_env("physwm/CartPole-v0", None, params, terminate=False)
    return collect(env, physwm.make_policy("uniform", force_mag=5.0), episodes, steps, seed, progress=False, **START)


@pytest.fixture(scope="module")
def original():
    return _data(FRICTION_PARAMS, 2, 200, 0)


def _trained(name, original, **options):
    """A model that knows the original system exactly (its constants the truth, a hybrid's residual zero),
    normalised on the original system's data: what a long fit converges to, without the fit."""
    return _normalise(build(name, FRICTION_PARAMS, **options), original)


def _normalise(model, data):
    s, c = data.states.float(), data.controls.float()
    model.fit_normalization(s, c)
    return model


@pytest.mark.parametrize("split", list(CHANGED))
@pytest.mark.parametrize("family", ["explicit", "hybrid"])
def test_constants_within_2_percent_after_100_transitions(original, split, family):
    truth = FRICTION_PARAMS.replace(**CHANGED[split])
    model = _trained(family, original)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnidentifiableWarning)
        adapted = adapt(model, _data(truth, 1, 100, 100))
    a = adapted.adaptation
    assert a.mode == "constants" and a.transitions == 100 and a.horizon == 1
    for name, value in a.constants.items():
        t = getattr(truth, name)
        assert abs(value - t) <= 0.02 * t, (name, value, t)
        assert a.low[name] <= value <= a.high[name] and math.isfinite(a.std[name])
    assert a.loss_after < 1e-2 * a.loss_before
    for k, v in model.state_dict().items():  # the original is untouched
        assert torch.equal(v, before[k]), k


def test_adapted_hybrid_beats_fixed_and_fine_tuned_mlp_after_30_transitions(original):
    truth = FRICTION_PARAMS.replace(masspole=0.2, length=0.75)
    hybrid = _trained("hybrid", original)
    mlp = _normalise(build("mlp"), original)
    physwm.fit(mlp, original, progress=False, steps=300, seed=0)
    few, test = _data(truth, 1, 30, 100), _data(truth, 2, 150, 200)
    adapted = adapt(hybrid, few)
    tuned = adapt(mlp, few, steps=30)
    assert tuned.adaptation.mode == "fine-tune" and tuned.adaptation.loss_after < tuned.adaptation.loss_before
    e_fixed, e_adapted = rollout_rmse(hybrid, test, 100), rollout_rmse(adapted, test, 100)
    e_mlp = rollout_rmse(tuned, test, 100)
    assert e_adapted < 0.05 * e_fixed, (e_adapted, e_fixed)
    assert e_adapted < 0.05 * e_mlp, (e_adapted, e_mlp)


def test_constants_and_residual_and_subset(original):
    truth = FRICTION_PARAMS.replace(masspole=0.2)
    hybrid = _trained("hybrid", original)
    few = _data(truth, 1, 30, 100)
    only = adapt(hybrid, few, params=["masspole"])
    assert list(only.adaptation.constants) == ["masspole"]
    assert abs(only.adaptation.constants["masspole"] - 0.2) < 0.01
    assert only.field.physics.identified()["length"] == pytest.approx(hybrid.field.physics.identified()["length"])
    tuned = adapt(hybrid, few, residual="tune", steps=20, validation=None)  # always keep the tuning
    assert tuned.adaptation.mode == "constants+residual"
    assert tuned.adaptation.horizon == 10 and tuned.adaptation.loss_after < 0.01 * tuned.adaptation.loss_before
    changed = [k for k, v in tuned.field.residual.state_dict().items()
               if not torch.equal(v, hybrid.field.residual.state_dict()[k])]  # fmt: skip
    assert changed  # the residual moved
    with pytest.raises(ValueError, match="valid"):
        adapt(hybrid, few, params=["mass_of_the_moon"])
    with pytest.raises(ValueError, match="residual"):
        adapt(hybrid, few, residual="thaw")


def test_residual_tuning_is_kept_only_when_it_predicts_held_out_transitions(original):
    hybrid = _trained("hybrid", original)  # exact physics, zero residual
    test = _data(FRICTION_PARAMS, 2, 100, 7)
    # a change within the constants' reach: tuning the residual on 24 transitions fits them, not the change
    few = _data(FRICTION_PARAMS.replace(masspole=0.2), 1, 30, 100)
    tuned = adapt(hybrid, few, residual="tune")
    v = tuned.adaptation.validation
    assert tuned.adaptation.mode == "constants" and not v["tuned"] < 0.9 * v["frozen"], v
    trained = hybrid.field.residual.state_dict()
    assert all(torch.equal(w, trained[k]) for k, w in tuned.field.residual.state_dict().items())
    assert "rejected" in tuned.adaptation.summary()
    # a residual that learned an effect the system does not have (a bias): only tuning removes it
    biased = copy.deepcopy(hybrid)
    with torch.no_grad():
        [m for m in biased.field.residual.modules() if isinstance(m, torch.nn.Linear)][-1].bias.add_(0.05)
    few = _data(FRICTION_PARAMS, 1, 100, 100)
    kept = adapt(biased, few, residual="tune")
    v = kept.adaptation.validation
    assert kept.adaptation.mode == "constants+residual" and v["tuned"] < 0.9 * v["frozen"], v
    always = adapt(biased, few, residual="tune", validation=None)  # then tuned again on all 100 transitions
    e_kept, e_always = rollout_rmse(kept, test, 50), rollout_rmse(always, test, 50)
    assert e_kept == pytest.approx(e_always, rel=1e-6)
    assert e_kept < 0.5 * rollout_rmse(adapt(biased, few), test, 50)
    for bad in (0.0, 1.0, float("nan")):
        with pytest.raises(ValueError, match="validation"):
            adapt(hybrid, few, residual="tune", validation=bad)


def test_held_out_tail_holds_out_the_end_of_each_episode():
    lengths = torch.tensor([10, 5, 0])
    s = torch.arange(3 * 11, dtype=torch.float64).reshape(3, 11, 1)  # state = a running index
    c = torch.zeros(3, 10, 1, dtype=torch.float64)
    fit, held = held_out_tail(s, c, lengths, 0.2, None)
    assert held["states"][:, 0, 0].tolist() == [8.0, 9.0, 11.0 + 4]  # the last 2 of 10 and the last 1 of 5
    assert fit["states"].shape[1] == 4 + 1  # windows as long as the shortest head (4 transitions) allows
    ends = fit["states"][:, -1, 0]  # no fit window reaches into a held-out transition
    assert bool(((ends <= 8) | ((ends >= 11) & (ends <= 11 + 4))).all())
    assert held_out_tail(s, c, torch.tensor([1, 1, 0]), 0.2, None) is None  # nothing left to fit on
    s, c = torch.arange(51, dtype=torch.float64).reshape(1, 51, 1), torch.zeros(1, 50, 1, dtype=torch.float64)
    fit, held = held_out_tail(s, c, torch.tensor([50]), 0.2, None)  # a tail of 10 one-step windows
    assert held["states"][:, 0, 0].tolist() == [40.0 + k for k in range(10)]
    assert fit["states"].shape == (31, 11, 1) and float(fit["states"][:, -1].max()) == 40.0


def test_bad_input_is_a_clear_error(original):
    model = _trained("explicit", original)
    few = _data(FRICTION_PARAMS, 1, 30, 100)
    with pytest.raises(ValueError, match="cannot determine 6 constants"):
        adapt(model, few.head(3))
    bad = {"states": torch.zeros(1, 11, 2, dtype=torch.float64), "controls": torch.zeros(1, 10, 1)}
    with pytest.raises(ValueError, match="state_dim"):
        adapt(model, bad)
    s = few.states.clone()
    s[0, 5, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        adapt(model, {"states": s, "controls": few.controls})
    with pytest.raises(TypeError, match="Trajectories"):
        adapt(model, [1, 2, 3])


def _window(params, transitions, seed):
    d = _data(params, 1, transitions, seed)
    return d.states[0].numpy(), d.controls[0].numpy()


def test_online_reidentification_converges_and_keeps_constants_when_ill_conditioned(original):
    model = _trained("explicit", original)
    planner = CEM(model, get_task("balance").cost, bounds=(-10.0, 10.0), population=16, iterations=1, fused=False)
    ctl = AdaptiveController(planner, every=10, window=50)
    s, c = _window(FRICTION_PARAMS.replace(masspole=0.2), 50, 3)
    for t in range(50):
        ctl.observe(s[t], c[t], s[t + 1])
    for _ in range(3):
        entry = ctl.reidentify()
    assert abs(model.field.identified()["masspole"] - 0.2) < 0.004
    assert entry["loss_after"] <= entry["loss_before"] and entry["cpu_ms"] > 0
    # a cart at rest, pole upright, no force: nothing is pinned down -> warn, keep every constant
    ctl.reset()
    assert model.field.identified()["masspole"] == pytest.approx(0.1, rel=1e-6)
    for _ in range(20):
        ctl.observe(np.zeros(4), np.zeros(1), np.zeros(4))
    before = model.field.identified()
    with pytest.warns(UnidentifiableWarning, match="keeping their previous values"):
        entry = ctl.reidentify()
    assert model.field.identified() == before and not entry["updated"] and len(entry["kept"]) == 6
    with pytest.raises(ValueError, match="NaN"):
        ctl.observe(np.array([0.0, np.nan, 0.0, 0.0]), np.zeros(1), np.zeros(4))
    with pytest.raises(ValueError, match="size 4"):
        ctl.observe(np.zeros(3), np.zeros(1), np.zeros(4))
    ctl.reset()
    with pytest.raises(ValueError, match="min_transitions"):
        ctl.reidentify()


def test_online_reidentification_trims_transitions_the_model_cannot_represent(original):
    """Three of 50 transitions knocked off (a bump the model class has no term for): trimmed, the constants are the
    truth; without trimming they pull the friction constants far off (cart_viscous 0.1 -> 0.007)."""
    model = _trained("explicit", original)
    planner = CEM(model, get_task("balance").cost, bounds=(-10.0, 10.0), population=16, iterations=1, fused=False)
    truth = FRICTION_PARAMS.replace(masspole=0.2)
    s, c = _window(truth, 50, 3)
    bumped = s[1:].copy()
    bumped[[5, 20, 35], 3] += 0.05  # rad/s
    errors = {}
    for trim in (3.0, None):
        ctl = AdaptiveController(planner, every=10, window=50, trim=trim)
        for t in range(50):
            ctl.observe(s[t], c[t], bumped[t])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnidentifiableWarning)
            for _ in range(4):
                entry = ctl.reidentify()
        errors[trim] = max(abs(v / getattr(truth, k) - 1) for k, v in entry["constants"].items())
        assert entry["trimmed"] == (3 if trim else 0)
        ctl.reset()
    assert errors[3.0] < 0.01 and errors[None] > 0.3, errors


def test_adaptive_controller_needs_constants_and_runs_in_run_episode(original):
    mlp = build("mlp")
    with pytest.raises(ValueError, match="no learnable physical constants"):
        AdaptiveController(CEM(mlp, get_task("balance").cost, bounds=(-10.0, 10.0), population=8))
    model = _trained("explicit", original)
    env = make_env("physwm/CartPole-v0", "balance", FRICTION_PARAMS.replace(masspole=0.2))
    planner = CEM(model, get_task("balance").cost, bounds=(-10.0, 10.0), population=64, iterations=2, fused=False,
                  horizon=15)  # fmt: skip
    ctl = AdaptiveController(planner, every=10, window=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnidentifiableWarning)
        ep = run_episode(ctl, env, "balance", seed=0, steps=40)
    assert ep.steps == 40 and not ep.terminated
    steps = [h["step"] for h in ctl.history]
    assert steps[0] == 12  # as soon as the window holds min_transitions = 2 * 6 constants
    for prev, gap in zip(ctl.history, np.diff(steps)):  # the next step while the estimate moves, else 10 later
        moving = prev["loss_after"] < 0.5 * prev["loss_before"] and prev["loss_before"] > 1e-6
        assert gap == (1 if moving else 10), (prev, gap)
    assert 1 in np.diff(steps)  # the heavier pole moves the first estimates: follow-ups happened
    assert model.field.identified()["masspole"] == pytest.approx(0.2, rel=0.02)
    ctl.reset()
    slow = AdaptiveController(planner, every=10, window=30, follow_up=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnidentifiableWarning)
        run_episode(slow, env, "balance", seed=0, steps=40)
    assert [h["step"] for h in slow.history] == [12, 22, 32]  # follow_up=0: every 10 steps only
    with pytest.raises(ValueError, match="follow_up"):
        AdaptiveController(planner, follow_up=1.0)
    assert ep.model_evaluations.shape == (40,)
