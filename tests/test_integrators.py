"""Integrators: convergence order, zero-order hold, adaptive/adjoint, and errors that name the problem."""

import math

import numpy as np
import pytest
import torch

from physwm import (
    RK4,
    Adaptive,
    ButcherTableau,
    CartPole,
    CartPoleParams,
    Euler,
    ExplicitRK,
    SemiImplicitEuler,
)
from physwm.integrators import get_integrator
from physwm.systems.base import VectorField

X0 = torch.tensor([[0.0, 0.5, 2.0, -1.0], [0.2, -0.3, 0.6, 2.0]], dtype=torch.float64)
FIELD = CartPole(CartPoleParams(cart_viscous=0.1, pole_damping=0.005))


def _final_state(integrator, h, t_end=1.0):
    steps = round(t_end / h)
    u = torch.full((2, steps, 1), 1.5, dtype=torch.float64)
    return integrator.rollout(FIELD, X0, u, h)[:, -1]


def _reference(t_end=1.0):
    u = torch.full((2, 1, 1), 1.5, dtype=torch.float64)
    return Adaptive("dopri5", rtol=1e-13, atol=1e-13).rollout(FIELD, X0, u, t_end)[:, -1]


@pytest.mark.parametrize(
    "integrator,order,steps",
    [
        (Euler(), 1, [0.01, 0.005, 0.0025, 0.00125]),
        (SemiImplicitEuler(), 1, [0.01, 0.005, 0.0025, 0.00125]),
        (RK4(), 4, [0.1, 0.05, 0.025, 0.0125]),
    ],
)
def test_convergence_order(integrator, order, steps):
    """Fit log(error) against log(h) (diffrax's test_ode_order) and compare with the declared order."""
    ref = _reference()
    errors = [float((_final_state(integrator, h) - ref).abs().max()) for h in steps]
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert abs(slope - order) < 0.15, (slope, errors)
    assert integrator.order == order


def test_substeps_equal_smaller_control_period():
    u = torch.randn(2, 10, 1, dtype=torch.float64)
    coarse = RK4(substeps=4).rollout(FIELD, X0, u, 0.04)
    fine = RK4().rollout(FIELD, X0, u.repeat_interleave(4, dim=1), 0.01)[:, ::4]
    torch.testing.assert_close(coarse, fine, rtol=0, atol=1e-13)


def test_zero_order_hold_for_adaptive():
    """A control that jumps between periods: adaptive must hold it within each period, like RK4 does."""
    u = torch.tensor([10.0, -10.0, 10.0, -10.0], dtype=torch.float64).reshape(1, 4, 1).repeat(2, 1, 1)
    ad = Adaptive(rtol=1e-12, atol=1e-12).rollout(FIELD, X0, u, 0.05)
    rk = RK4(substeps=200).rollout(FIELD, X0, u, 0.05)
    torch.testing.assert_close(ad, rk, rtol=0, atol=1e-9)


def test_adjoint_gradients_match_backprop():
    field = CartPole(CartPoleParams(cart_viscous=0.1), learnable=("length", "cart_viscous")).double()
    u = torch.randn(2, 3, 1, dtype=torch.float64, requires_grad=True)
    grads = []
    for adjoint in (False, True):
        field.zero_grad()
        u.grad = None
        out = Adaptive(rtol=1e-10, atol=1e-10, adjoint=adjoint).rollout(field, X0, u, 0.05)
        out.pow(2).sum().backward()
        grads.append([u.grad.clone()] + [p.grad.clone() for p in field.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)
    assert all(g.abs().sum() > 0 for g in grads[1])


def test_rollout_shapes_and_first_entry():
    u = torch.zeros(2, 7, 1)
    out = Euler().rollout(CartPole(), X0.float(), u, 0.02)
    assert out.shape == (2, 8, 4) and out.dtype == torch.float32
    assert torch.equal(out[:, 0], X0.float())


def test_butcher_tableau_checks_itself():
    with pytest.raises(ValueError, match="sum to 1"):
        ButcherTableau(c=(0.0, 1.0), a=((), (1.0,)), b=(0.5, 0.6), order=2)
    with pytest.raises(ValueError, match="c\\[1\\]"):
        ButcherTableau(c=(0.0, 0.5), a=((), (1.0,)), b=(0.5, 0.5), order=2)
    heun = ExplicitRK(ButcherTableau(c=(0.0, 1.0), a=((), (1.0,)), b=(0.5, 0.5), order=2))
    ref = _reference()
    steps = [0.02, 0.01, 0.005]
    errs = [float((_final_state(heun, h) - ref).abs().max()) for h in steps]
    assert abs(np.polyfit(np.log(steps), np.log(errs), 1)[0] - 2) < 0.15


@pytest.mark.parametrize("dt", [0.0, -0.02, math.nan, math.inf])
def test_bad_dt(dt):
    with pytest.raises(ValueError, match="dt must be a positive"):
        Euler().step(CartPole(), X0, torch.zeros(2, 1, dtype=torch.float64), dt)


def test_bad_shapes_and_non_finite():
    f = CartPole()
    with pytest.raises(ValueError, match=r"x0 must have shape \[B, 4\]"):
        RK4().rollout(f, torch.zeros(4), torch.zeros(1, 3, 1), 0.02)
    with pytest.raises(ValueError, match=r"u must have shape \[B=2, T, 1\]"):
        RK4().rollout(f, X0, torch.zeros(2, 3), 0.02)
    bad = X0.clone()
    bad[0, 2] = math.nan
    with pytest.raises(ValueError, match="x0 contains NaN"):
        RK4().rollout(f, bad, torch.zeros(2, 3, 1, dtype=torch.float64), 0.02)
    with pytest.raises(ValueError, match="u contains NaN"):
        RK4().rollout(f, X0, torch.full((2, 3, 1), math.inf, dtype=torch.float64), 0.02)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="unknown integrator 'rk5'.*rk4"):
        get_integrator("rk5")
    with pytest.raises(ValueError, match="unknown adaptive method.*dopri5"):
        Adaptive("dopri9")
    with pytest.raises(ValueError, match="substeps"):
        RK4(substeps=0)
    assert isinstance(get_integrator("semi-implicit-euler"), SemiImplicitEuler)
    assert get_integrator("rk4", substeps=3).substeps == 3
    assert isinstance(get_integrator("bosh3"), Adaptive)


def test_semi_implicit_needs_declared_positions():
    class Bare(VectorField):
        state_dim, control_dim = 2, 1

        def forward(self, x, u):
            return torch.stack((x[..., 1], -x[..., 0] + u[..., 0]), -1)

    with pytest.raises(ValueError, match="position_index and velocity_index"):
        SemiImplicitEuler().step(Bare(), torch.zeros(1, 2), torch.zeros(1, 1), 0.1)
    # with them declared it is symplectic: a harmonic oscillator's energy stays bounded over many periods
    Bare.position_index, Bare.velocity_index = (0,), (1,)
    x = SemiImplicitEuler().rollout(Bare(), torch.tensor([[1.0, 0.0]], dtype=torch.float64),
                                    torch.zeros(1, 5000, 1, dtype=torch.float64), 0.05)
    e = 0.5 * (x**2).sum(-1)
    assert (e - 0.5).abs().max() < 0.03
    xe = Euler().rollout(Bare(), torch.tensor([[1.0, 0.0]], dtype=torch.float64),
                         torch.zeros(1, 5000, 1, dtype=torch.float64), 0.05)
    assert 0.5 * (xe[0, -1] ** 2).sum() > 10  # plain Euler gains energy: the two really differ


class _Spring(VectorField):
    """dx/dt = v, dv/dt = -x + u; counts calls of forward and of bind_controls."""

    state_dim, control_dim = 2, 1
    position_index, velocity_index = (0,), (1,)

    def __init__(self):
        super().__init__()
        self.forward_calls, self.bound = 0, []

    def forward(self, x, u):
        self.forward_calls += 1
        return torch.stack((x[..., 1], -x[..., 0] + u[..., 0]), -1)

    def bind_controls(self, u):
        self.bound.append(u)
        return lambda x, t: torch.stack((x[..., 1], -x[..., 0] + u[:, t, 0]), -1)


@pytest.mark.parametrize("integrator", [Euler(), SemiImplicitEuler(), RK4(substeps=2)])
def test_fixed_step_rollouts_use_the_bound_field(integrator):
    """bind_controls is called once per rollout with u in the state's dtype, and forward never; the
    result equals stepping the unbound field period by period."""
    field = _Spring()
    x0 = torch.tensor([[1.0, 0.0], [0.3, -0.2]], dtype=torch.float64)
    u = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]], dtype=torch.float32)[..., None]
    out = integrator.rollout(field, x0, u, 0.1)
    assert field.forward_calls == 0 and len(field.bound) == 1 and field.bound[0].dtype == torch.float64
    states = [x0]
    for t in range(3):
        states.append(integrator.step(field, states[-1], u[:, t].double(), 0.1))
    assert field.forward_calls > 0
    torch.testing.assert_close(out, torch.stack(states, 1), rtol=0, atol=1e-15)


def test_adaptive_rollouts_do_not_bind():
    field = _Spring()
    x0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    Adaptive(rtol=1e-6, atol=1e-8).rollout(field, x0, torch.ones(1, 2, 1, dtype=torch.float64), 0.1)
    assert not field.bound and field.forward_calls > 0
