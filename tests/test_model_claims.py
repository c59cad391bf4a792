"""The world-model issue's claims, end to end through ``fit``: exact physics stays exact, constants are
identified, and the hybrid beats both the nominal physics and a Neural ODE where friction is missing."""

import gymnasium as gym
import pytest
import torch

from physwm import RK4, CartPole, CartPoleParams
from physwm.data import Trajectories, collect, make_policy
from physwm.models import ODEModel, build
from physwm.train import fit

TRUE = CartPoleParams(length=0.6, cart_viscous=0.3, cart_coulomb=0.2, pole_damping=0.01)
BOX = [1.0, 1.0, 0.3, 1.0]  # half-widths of start states: m, m/s, rad, rad/s


def _simulate(params: CartPoleParams, episodes: int, steps: int, seed: int) -> Trajectories:
    """Open-loop uniform-force episodes of the true system (RK4, 10 sub-steps), float64."""
    g = torch.Generator().manual_seed(seed)
    x0 = (2 * torch.rand(episodes, 4, generator=g, dtype=torch.float64) - 1) * torch.tensor(BOX, dtype=torch.float64)
    u = (2 * torch.rand(episodes, steps, 1, generator=g, dtype=torch.float64) - 1) * params.force_mag
    with torch.no_grad():
        states = RK4(substeps=10).rollout(CartPole(params), x0, u, params.tau)
    return Trajectories(states, u, dt=params.tau)


def _rollout_rmse(model, data: Trajectories) -> float:
    with torch.no_grad():
        pred = model.rollout(data.states[:, 0], data.controls)
    return float((pred - data.states).pow(2).mean().sqrt())


def test_hybrid_on_gymnasium_data_keeps_a_zero_residual_and_round_off_error():
    data = collect(gym.make("CartPole-v1"), make_policy("random"), episodes=30, max_steps=200, seed=0, progress=False)
    train, val, test = data.split((0.6, 0.2, 0.2), seed=0)
    model = build("hybrid", integrator="euler").double()  # gymnasium's own discretisation
    fit(model, train, val, epochs=3, lr=1e-3, batch_size=64, progress=False)
    w = test.windows(1)
    with torch.no_grad():
        x, u = w["states"][:, 0], w["controls"][:, 0]
        one_step = (model.step(x, u) - w["states"][:, 1]).pow(2).mean()
        residual = model.field.residual(x, u)
    assert float(residual.abs().max()) < 1e-12
    assert float(one_step) < 1e-24  # round-off of float64 states of size ~1
    assert w["states"].shape[0] > 100


def test_explicit_model_identifies_length_and_friction_within_two_percent():
    train = _simulate(TRUE, 40, 50, seed=0)  # 2,000 transitions
    model = build("explicit").double()  # learns length, both masses and the three friction terms
    fit(model, train, epochs=5, lr=1.0, optimizer="lbfgs", progress=False)
    found = model.field.identified()
    for name in ("length", "cart_viscous", "cart_coulomb", "pole_damping"):
        assert found[name] == pytest.approx(getattr(TRUE, name), rel=0.02), (name, found)


def test_hybrid_beats_nominal_physics_and_neural_ode_on_friction_data():
    train, val, test = _simulate(TRUE, 40, 50, 0), _simulate(TRUE, 10, 50, 1), _simulate(TRUE, 30, 50, 2)
    nominal = ODEModel(CartPole(), "rk4", 0.02).double()  # CartPole-v1 constants, no friction
    hybrid, node = build("hybrid").double(), build("node").double()
    fit(hybrid, train, val, epochs=20, lr=1e-2, lr_schedule="cosine", batch_size=64, progress=False)
    fit(node, train, val, epochs=20, lr=3e-3, batch_size=64, progress=False)
    errors = {name: _rollout_rmse(m, test) for name, m in [("nominal", nominal), ("hybrid", hybrid), ("node", node)]}
    assert errors["hybrid"] < errors["nominal"] / 10, errors
    assert errors["hybrid"] < errors["node"] / 5, errors
