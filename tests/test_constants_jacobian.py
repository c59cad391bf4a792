"""``constants_jacobian``: one vmapped pass over the constants gives the one-by-one passes' numbers."""

import importlib

import pytest
import torch

from physwm import FRICTION_PARAMS, build, collect, make_policy
from physwm.envs import make_env
from physwm.evaluate import constants_jacobian

identifiability = importlib.import_module("physwm.evaluate.identifiability")


@pytest.fixture(scope="module")
def window():
    env = make_env("physwm/CartPole-v0", None, FRICTION_PARAMS.replace(length=0.75), terminate=False)
    d = collect(env, make_policy("uniform", force_mag=5.0), 1, 41, 3, progress=False)
    s = torch.stack([d.states[0, :40], d.states[0, 1:41]], 1).double()
    return s, d.controls[0, :40, None].double()


@pytest.mark.parametrize("name", ["explicit", "hybrid"])
def test_vmapped_jacobian_equals_the_one_by_one_passes(name, window, monkeypatch):
    model = build(name, FRICTION_PARAMS, seed=0).double().eval()
    model.fit_normalization(window[0].float(), window[1].float())
    model.double()
    with torch.no_grad():
        assert identifiability._vmapped_jacobian(model, identifiability.learnable_constants(model), *window) is not None
        J, r = constants_jacobian(model, *window)
        monkeypatch.setattr(identifiability, "_vmapped_jacobian", lambda *args: None)
        J1, r1 = constants_jacobian(model, *window)
    assert J.shape == (40 * 4, 6) and torch.equal(r, r1)
    assert torch.allclose(J, J1, rtol=1e-12, atol=1e-12 * float(J1.abs().max()))
    assert float(J.abs().max()) > 0


def test_a_model_that_vmap_cannot_run_falls_back(window, monkeypatch):
    model = build("explicit", FRICTION_PARAMS, seed=0).double().eval()
    model.fit_normalization(window[0].float(), window[1].float())
    model.double()
    system = model.field
    plain = system.dynamics

    def with_item(x, u, p):  # a value steering Python (as user code may): vmap cannot run it
        return plain(x, u, p) * (1.0 if float(x.sum()) < 1e9 else 0.0)

    monkeypatch.setattr(system, "dynamics", with_item)
    with torch.no_grad():
        consts = identifiability.learnable_constants(model)
        assert identifiability._vmapped_jacobian(model, consts, *window) is None
        J, r = constants_jacobian(model, *window)
    assert J.shape == (160, 6) and torch.isfinite(J).all() and float(J.abs().max()) > 0
