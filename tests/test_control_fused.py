"""Planners pick compiled (fused) kernels for ODE models by default, fall back to eager silently, and the two
paths plan the same actions.

conftest.py makes the suite run as on a machine without a C++ compiler; the tests marked ``compiles`` use
the real one (a few kernels of the explicit Euler CartPole: tens of seconds on a cold inductor cache,
seconds on a warm one).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import physwm.control.dynamics as dynamics
from physwm import CartPole, CartPoleParams, Euler
from physwm.control import CEM, ILQR, PlanningModel, imagine, make_planner
from physwm.control.imagine import FUSED_MIN_TRANSITIONS
from physwm.integrators import (
    FusedRollout,
    compiled_feedback_rollout,
    compiled_jacobians,
    feedback_rollout,
    step_jacobians,
)
from physwm.integrators.compiled import compile_available as real_compile_available
from physwm.models import Ensemble, ODEModel, build
from physwm.systems.cartpole import balance_cost, balance_terminal_cost
from physwm.train.adapt import constant_paths, constant_raw

X0 = np.array([0.1, -0.2, 0.08, 0.3])


def explicit(params=None) -> ODEModel:
    return ODEModel(CartPole(params), integrator="euler")


def test_ode_models_are_planned_on_compiled_kernels_by_default(monkeypatch):
    monkeypatch.setattr(dynamics, "compile_available", lambda device="cpu": True)  # nothing compiles yet
    for name in ("explicit", "hybrid", "node"):
        assert CEM(build(name), balance_cost, bounds=(-10, 10)).dynamics.fused, name
    assert ILQR(explicit(), balance_cost, bounds=(-10, 10)).dynamics.fused
    assert not CEM(build("mlp"), balance_cost, bounds=(-10, 10)).dynamics.fused  # nothing to compile
    assert not CEM(build("explicit", integrator="dopri5"), balance_cost, bounds=(-10, 10)).dynamics.fused
    assert not CEM(explicit(), balance_cost, bounds=(-10, 10), fused=False).dynamics.fused  # the object decides
    ens = Ensemble([explicit(), explicit(CartPoleParams(length=0.6)), build("mlp")], bootstrap=False)
    ts = CEM(ens, balance_cost, bounds=(-10, 10), ensemble="ts")
    assert [d.fused for d in ts.member_dynamics] == [True, True, False]
    with pytest.raises(ValueError, match="fused=True needs an ODEModel .* not MLPModel"):
        CEM(build("mlp"), balance_cost, bounds=(-10, 10), fused=True)
    with pytest.raises(TypeError, match="fused must be None, True or False"):
        PlanningModel(explicit(), fused="yes")


def test_without_a_compiler_planning_runs_eagerly_without_a_word():
    # conftest.py: compile_available() is False here, as on a machine without a C++ compiler.
    assert not dynamics.compile_available()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would fail the test
        auto = CEM(explicit(), balance_cost, bounds=(-10, 10), horizon=10, population=50, iterations=2, seed=0)
        forced = CEM(explicit(), balance_cost, bounds=(-10, 10), horizon=10, population=50, iterations=2, seed=0,
                     fused=True)
        eager = CEM(explicit(), balance_cost, bounds=(-10, 10), horizon=10, population=50, iterations=2, seed=0,
                    fused=False)
        assert not auto.dynamics.fused and forced.dynamics.fused
        plans = [p.act(X0) for p in (auto, forced, eager)]
        rollout = forced.dynamics._kernel["rollout"]
        assert isinstance(rollout, FusedRollout) and not rollout.compiled  # asked for, ran eagerly
        ilqr_forced = ILQR(explicit(), balance_cost, bounds=(-10, 10), horizon=10, fused=True)
        ilqr_eager = ILQR(explicit(), balance_cost, bounds=(-10, 10), horizon=10, fused=False)
        ilqr_plans = [p.optimize(X0).clone() for p in (ilqr_forced, ilqr_eager)]
    assert torch.equal(plans[0], plans[2])
    torch.testing.assert_close(plans[1], plans[2], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ilqr_plans[0], ilqr_plans[1], rtol=1e-4, atol=1e-4)
    assert float(ilqr_plans[0].abs().max()) > 0.1  # the plan does something


def test_compiled_kernels_show_their_first_call(capsys):
    # backend="eager": dynamo traces the function (no C++), which goes through the same first-call path.
    rollout = FusedRollout(CartPole(), Euler(), 0.02, chunk=4, backend="eager")
    x0, u = torch.zeros(3, 4), torch.zeros(3, 6, 1)
    rollout(x0, u)
    err = capsys.readouterr().err
    assert "physwm: compiling the rollout of CartPole with Euler(substeps=1) (4 steps per kernel call) for batch " \
           "size 3" in err
    assert "physwm: compiled the rollout of CartPole" in err and rollout.kernel.compiles == 1
    rollout(x0, u)
    assert capsys.readouterr().err == ""  # once per batch size
    quiet = FusedRollout(CartPole(), Euler(), 0.02, chunk=4, backend="eager", progress=False)
    quiet(x0, u)
    assert capsys.readouterr().err == "" and quiet.compile_seconds > 0


def test_closed_loop_and_jacobian_kernels_match_the_eager_functions():
    field, euler = CartPole(CartPoleParams(cart_viscous=0.2, pole_damping=0.01)), Euler()
    g = torch.Generator().manual_seed(0)
    T = 11  # not a multiple of the chunk: the padding is discarded
    x_ref, u_ref = torch.randn(T, 4, generator=g) * 0.1, torch.randn(T, 1, generator=g)
    k, gains = torch.randn(T, 1, generator=g), torch.randn(T, 1, 4, generator=g)
    alpha = torch.tensor([[1.0], [0.5], [0.1]])
    low, high = torch.tensor([-1.0]), torch.tensor([1.0])
    x0 = torch.randn(3, 4, generator=g) * 0.1
    kernel = compiled_feedback_rollout(field, euler, 0.02, chunk=4, backend="eager", progress=False)
    assert compiled_feedback_rollout(field, euler, 0.02, chunk=4, backend="eager") is kernel
    states, controls = kernel(x0, x_ref, u_ref, k, gains, alpha, low, high)
    ref_states, ref_controls = feedback_rollout(lambda x, u: euler.step(field, x, u, 0.02), x0, x_ref, u_ref, k,
                                                gains, alpha, low, high)
    assert states.shape == (3, T + 1, 4) and controls.shape == (3, T, 1)
    torch.testing.assert_close(states, ref_states, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(controls, ref_controls, rtol=1e-6, atol=1e-6)
    assert controls.abs().max() == 1.0  # the bounds clip
    jac = compiled_jacobians(field, euler, 0.02, backend="eager", progress=False)
    for a, b in zip(jac(x_ref, u_ref), step_jacobians(lambda x, u: euler.step(field, x, u, 0.02), x_ref, u_ref)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.compiles
@pytest.mark.skipif(not real_compile_available(), reason="torch.compile's C++ backend needs a C++ compiler")
@pytest.mark.parametrize("planner", ["cem", "ilqr", "ilqr_rt"])
def test_fused_planning_is_automatic_and_gives_the_eager_actions(planner):
    # One explicit Euler CartPole with friction (continuous forces, so actions are compared as numbers).
    model = ODEModel(CartPole(CartPoleParams(cart_viscous=0.1, pole_damping=0.005), learnable=("masspole",)), "euler")
    opts = {"bounds": (-10.0, 10.0), "horizon": 16, "seed": 0, "progress": False}
    # CEM: the open-loop rollout kernel; iLQR: that one (batch 1), the Jacobians and the closed-loop rollout
    # (ilqr_rt: real-time iterations after the first step, the closed-loop kernel at one more batch size)
    opts.update({"cem": {"population": 64, "iterations": 3}, "ilqr": {"iterations": 3},
                 "ilqr_rt": {"iterations": 3, "warm_iterations": 1}}[planner])
    terminal = balance_terminal_cost()
    name = planner.removesuffix("_rt")
    fused = make_planner(name, model, balance_cost, terminal_cost=terminal, **opts)
    eager = make_planner(name, model, balance_cost, terminal_cost=terminal, fused=False, **opts)
    assert fused.dynamics.fused and not eager.dynamics.fused  # picked by default where a compiler is found
    x = X0.copy()
    for _ in range(3):
        a, b = fused.act(x), eager.act(x)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)  # float32 round-off, through a few iterations
        x = model.step(torch.as_tensor(x, dtype=torch.float32)[None], b[None])[0].detach().double().numpy()
    kernels = fused.dynamics._kernel
    assert kernels and all(k.compiled for k in kernels.values()), kernels
    # constants changed in place (as AdaptiveController re-identifies them) reach the compiled kernels too
    ((_, path, name),) = constant_paths(model)
    with torch.no_grad():
        constant_raw(model, path, name).mul_(3.0)
    torch.testing.assert_close(fused.act(x), eager.act(x), rtol=1e-4, atol=1e-4)


def test_imagine_compiles_only_where_it_pays(monkeypatch):
    model = explicit()
    starts = torch.zeros(4, 4)
    starts[:, 2] = 0.05

    def push(x):
        return torch.full((x.shape[0], 1), 1.0)

    monkeypatch.setattr(dynamics, "compile_available", lambda device="cpu": True)  # as if a compiler were here
    small = imagine(model, push, starts, 20)
    assert small.meta["fused"] is False  # 80 transitions: compiling would cost more than it saves
    assert FUSED_MIN_TRANSITIONS >= 100_000
    monkeypatch.setattr(dynamics, "compile_available", lambda device="cpu": False)
    forced = imagine(model, push, starts, 20, fused=True)  # no compiler: the same numbers, eagerly
    assert forced.meta["fused"] is True
    torch.testing.assert_close(forced.states, small.states, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="fused=True needs an ODEModel"):
        imagine(build("mlp"), push, starts, 5, fused=True)
