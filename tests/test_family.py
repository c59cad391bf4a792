"""Training across a family of systems: FamilyModel, ContextMLP, fit_family, adapt_context."""

from __future__ import annotations

import math

import pytest
import torch

import physwm
from physwm import FRICTION_PARAMS, build, collect
from physwm.data.noise import ProcessNoise
from physwm.envs import make_env
from physwm.models import ContextMLP, FamilyModel
from physwm.train import adapt_context, family_windows, fit_family, load_checkpoint, save_checkpoint

START = dict(start_low=[-0.5, -0.5, math.pi - 1, -1.0], start_high=[0.5, 0.5, math.pi + 1, 1.0])


def episodes(params, n: int, steps: int, seed: int, **kw):
    env = make_env("physwm/CartPole-v0", None, params, terminate=False)
    return collect(env, physwm.make_policy("uniform", force_mag=5.0), n, steps, seed, progress=False, **START, **kw)


def family_data(lengths, steps: int = 60, seed: int = 0, same_starts: bool = False) -> dict:
    """One episode per pole half-length; ``same_starts``: the same start and forces for every member, so only the
    dynamics tell them apart."""
    parts = [episodes(FRICTION_PARAMS.replace(length=v), 1, steps, seed + (0 if same_starts else i))
             for i, v in enumerate(lengths)]  # fmt: skip
    return {"states": torch.cat([p.states for p in parts]), "controls": torch.cat([p.controls for p in parts]),
            "lengths": torch.cat([p.lengths for p in parts]), "dt": parts[0].dt}  # fmt: skip


@pytest.fixture(scope="module")
def jittered():
    """Three episodes, each with its own pole length (ProcessNoise's per-episode jitter, recorded in meta)."""
    return episodes(FRICTION_PARAMS, 3, 60, 3, vector=False, process_noise=ProcessNoise(param_jitter={"length": 0.2}))


@pytest.fixture(scope="module")
def trained_family(jittered):
    model = FamilyModel(build("explicit", seed=0), ["length"], members=3)
    result = fit_family(model, jittered, steps=30, seed=0)
    return model, result


def test_per_trajectory_constants_recovered(jittered, trained_family):
    model, result = trained_family
    truth = [p["length"] for p in jittered.meta["noise"]["episode_params"]]
    assert max(truth) / min(truth) > 1.1  # the episodes really differ
    for got, want in zip(result.constants["length"], truth):
        assert abs(got / want - 1) < 0.02
    shared = model.base.field.identified()  # the shared constants, fitted on all episodes together
    assert abs(shared["masscart"] / FRICTION_PARAMS.masscart - 1) < 0.05
    assert abs(model.context()["length"] - sum(result.constants["length"]) / 3) < 1e-5  # current: the mean


def test_family_adaptation_changes_only_the_context(trained_family):
    model, _ = trained_family
    new = episodes(FRICTION_PARAMS.replace(length=0.8), 1, 30, 11)
    adapted = adapt_context(model, new)
    assert abs(adapted.context()["length"] / 0.8 - 1) < 0.02
    assert adapted.adaptation.loss_after < 0.05 * adapted.adaptation.loss_before
    before, after = model.state_dict(), adapted.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed == ["base.field.raw.length"]


def test_context_mlp_overfits_a_small_family_and_adapts_only_its_context():
    data = family_data([0.3, 0.8], steps=40, same_starts=True)  # the states alone cannot tell the members apart
    model = ContextMLP(4, 1, context_dim=2, members=2, hidden=(64, 64), seed=0)
    result = fit_family(model, data, [0, 1], steps=600, horizon=1, lr=3e-3, seed=0)
    assert result.losses[-1] < 0.02 * result.losses[0]
    w = family_windows(model, data, [0, 1], 1)
    with torch.no_grad():
        right = float(model.loss(w)[0])
        swapped = float(model.loss({**w, "member": 1 - w["member"]})[0])
    assert right < 0.05 and swapped > 50 * right  # the context carries what differs between the members
    one = {"states": data["states"][1:2, :31], "controls": data["controls"][1:2, :30]}
    adapted = adapt_context(model, one, steps=50)
    assert adapted.adaptation.loss_after < 0.5 * adapted.adaptation.loss_before
    before, after = model.state_dict(), adapted.state_dict()
    assert [k for k in before if not torch.equal(before[k], after[k])] == ["context"]


def test_save_load_round_trip(tmp_path, trained_family):
    model, _ = trained_family
    path = save_checkpoint(tmp_path / "family.pt", model)
    loaded, _ = load_checkpoint(path, FamilyModel(build("explicit"), ["length"], members=3))
    assert loaded.member_constants() == model.member_constants()
    x0, u = torch.zeros(2, 4), torch.ones(2, 5, 1)
    assert torch.equal(loaded.rollout(x0, u), model.rollout(x0, u))
    member = torch.tensor([0, 2])
    assert torch.equal(loaded.member_rollout(x0, u, member), model.member_rollout(x0, u, member))
    mlp = ContextMLP(4, 1, members=2, hidden=(8,))
    with torch.no_grad():
        mlp.member_context.normal_()
    path = save_checkpoint(tmp_path / "ctx.pt", mlp)
    back, _ = load_checkpoint(path, ContextMLP(4, 1, members=2, hidden=(8,)))
    assert torch.equal(back.member_context, mlp.member_context)
    with pytest.raises(ValueError, match="config differs"):
        load_checkpoint(path, ContextMLP(4, 1, members=3, hidden=(8,)))


def test_member_rollout_uses_each_members_constants():
    model = FamilyModel(build("explicit"), ["length"], members=2)
    with torch.no_grad():
        model.member_raw[:, 0] = torch.tensor([0.3, 0.9]) / 0.5  # raw = value / scale (scale 0.5 m)
    x0 = torch.tensor([[0.0, 0.0, 0.5, 0.0]] * 2)
    u = torch.zeros(2, 20, 1)
    out = model.member_rollout(x0, u, torch.tensor([1, 0]))
    for b, g in enumerate([1, 0]):
        model.set_context(g)
        assert torch.allclose(out[b], model.rollout(x0[b : b + 1], u[b : b + 1])[0])


def test_bad_inputs_are_clear_errors(jittered):
    model = FamilyModel(build("explicit"), ["length"], members=2)
    with pytest.raises(ValueError, match="members=None"):
        fit_family(model, jittered, steps=1)  # 3 episodes, 2 members, no member per episode
    with pytest.raises(ValueError, match=r"one member per episode: shape \[3\]"):
        fit_family(model, jittered, [0, 1], steps=1)
    with pytest.raises(ValueError, match=r"lie in \[0, 2\)"):
        fit_family(model, jittered, [0, 1, 2], steps=1)
    with pytest.raises(ValueError, match=r"members \[1\] have no window"):
        fit_family(model, jittered, [0, 0, 0], steps=1)
    with pytest.raises(TypeError, match="integer"):
        fit_family(model, jittered, torch.tensor([0.0, 1.0, 1.0]), steps=1)
    with pytest.raises(TypeError, match="FamilyModel or ContextMLP"):
        fit_family(build("explicit"), jittered, steps=1)
    with pytest.raises(ValueError, match="valid:.*length"):
        FamilyModel(build("explicit"), ["gravity"], members=2)
    with pytest.raises(ValueError, match="non-empty list"):
        FamilyModel(build("explicit"), "length", members=2)
    with pytest.raises(ValueError, match="members must be a positive int"):
        ContextMLP(4, 1, members=0)
    w = {k: v.float() for k, v in jittered.windows(2).items()}
    with pytest.raises(ValueError, match=r"member must have shape \[B="):
        model.loss({**w, "member": torch.zeros(3, dtype=torch.long)})
    with pytest.raises(ValueError, match="data has states of size 2"):
        adapt_context(model, {"states": torch.zeros(1, 5, 2), "controls": torch.zeros(1, 4, 1)})
