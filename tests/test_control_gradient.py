"""Gradient-based planners (iLQR, shooting, CEM + gradient steps), their derivatives, and model-evaluation counts.

Derivatives are checked against central finite differences in float64; closed-loop tests use the explicit
model, eagerly (see conftest.py; the compiled path is tested in test_control_fused.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_control import double_integrator, optimal_cost, quadratic_cost

from physwm import CartPole, CartPoleParams
from physwm.control import (
    CEM,
    CEMGD,
    ILQR,
    MPPI,
    PLANNERS,
    PlanningModel,
    Shooting,
    default_planner_options,
    make_env,
    make_planner,
    planning_study,
    run_episode,
)
from physwm.control.derivatives import cost_gradients, cost_hessians, plan_cost
from physwm.integrators import step_jacobians, step_jacobians_func
from physwm.models import ODEModel, build
from physwm.systems.cartpole import balance_cost, balance_terminal_cost, swingup_cost

F64 = torch.float64
FRICTION = CartPoleParams(cart_viscous=0.3, cart_coulomb=0.2, pole_damping=0.01)


def _central_differences(f, z: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Jacobian ``[*f.shape, *z.shape]`` of ``f`` at ``z`` by central differences (float64)."""
    base = f(z)
    J = torch.zeros(*base.shape, z.numel(), dtype=F64)
    for i in range(z.numel()):
        dz = torch.zeros(z.numel(), dtype=F64)
        dz[i] = eps
        J[..., i] = (f(z + dz.view_as(z)) - f(z - dz.view_as(z))) / (2 * eps)
    return J.reshape(*base.shape, *z.shape)


def _hybrid_with_a_residual() -> ODEModel:
    model = build("hybrid", system=CartPole(FRICTION)).double()
    torch.manual_seed(0)
    with torch.no_grad():  # a residual that is not zero, so its derivatives count
        for p in model.field.residual.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


# --- derivatives ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["explicit_rk4", "hybrid_rk4", "mlp"])
def test_step_jacobians_match_finite_differences(which):
    model = {"explicit_rk4": lambda: ODEModel(CartPole(FRICTION), integrator="rk4").double(),
             "hybrid_rk4": _hybrid_with_a_residual, "mlp": lambda: build("mlp").double()}[which]()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, generator=g, dtype=F64) * torch.tensor([0.5, 1.0, 2.0, 2.0], dtype=F64)
    u = torch.randn(3, 1, generator=g, dtype=F64) * 5
    with torch.no_grad():
        y, A, B = step_jacobians(model.step, x, u)
        y2, A2, B2 = step_jacobians_func(model.step, x, u)
        torch.testing.assert_close(y, model.step(x, u), rtol=1e-12, atol=1e-12)
    assert A.shape == (3, 4, 4) and B.shape == (3, 4, 1)
    for b in range(3):
        Ax = _central_differences(lambda xb, b=b: model.step(xb[None], u[b : b + 1])[0], x[b].detach())
        Bu = _central_differences(lambda ub, b=b: model.step(x[b : b + 1], ub[None])[0], u[b].detach())
        torch.testing.assert_close(A[b], Ax, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(B[b], Bu, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(A2, A, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(B2, B, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(y2, y, rtol=1e-12, atol=1e-12)
    assert not any(p.grad is not None for p in model.parameters())  # the model's parameters are left alone


@pytest.mark.parametrize("task", ["balance", "swingup"])
def test_cost_hessians_match_torch_func_on_the_whole_plan(task):
    cost, terminal = (balance_cost, balance_terminal_cost()) if task == "balance" else (swingup_cost, None)
    g = torch.Generator().manual_seed(1)
    X = torch.randn(7, 4, generator=g, dtype=F64) * 0.1
    U = torch.randn(6, 1, generator=g, dtype=F64) * 3

    def J(Xr, Ur):
        return plan_cost(cost, terminal, torch.cat((X[:1], Xr))[None], Ur[None])[0]

    total, gx, gu, gxx, guu, gux = cost_hessians(cost, terminal, X, U)
    (hxx, hxu), (hux, huu) = torch.func.hessian(J, argnums=(0, 1))(X[1:], U)
    gX, gU = torch.func.grad(J, argnums=(0, 1))(X[1:], U)
    torch.testing.assert_close(total, J(X[1:], U))
    torch.testing.assert_close(gx, gX)
    torch.testing.assert_close(gu, gU)
    for t in range(6):
        torch.testing.assert_close(gxx[t], hxx[t, :, t])
        torch.testing.assert_close(guu[t], huu[t, :, t])
        torch.testing.assert_close(gux[t], hux[t, :, t])
    # the blocks are all there is: the cost couples no two different steps
    mask = torch.eye(6, dtype=torch.bool)
    assert hxx.permute(0, 2, 1, 3)[~mask].abs().max() == 0 and hux.permute(0, 2, 1, 3)[~mask].abs().max() == 0
    total2, gX2, gU2 = cost_gradients(cost, terminal, X[None], U[None])
    torch.testing.assert_close(total2[0], total)
    torch.testing.assert_close(gX2[0, 1:], gx)
    assert gX2[0, 0].abs().max() == 0  # the start is not charged


@pytest.mark.parametrize("planner", ["shooting", "cem_gd"])
def test_adjoint_gradient_of_a_plan_matches_finite_differences(planner):
    model = _hybrid_with_a_residual()
    terminal = balance_terminal_cost()
    p = make_planner(planner, model, swingup_cost, bounds=(-10, 10), horizon=6, terminal_cost=terminal, seed=0)
    x0 = torch.tensor([0.1, -0.2, 2.5, 0.3], dtype=F64)
    U = torch.randn(2, 6, 1, generator=torch.Generator().manual_seed(2), dtype=F64) * 4

    def J(u):
        return plan_cost(swingup_cost, terminal, model.rollout(x0.expand(2, -1), u), u)

    states = p.dynamics.step_rollout(x0.expand(2, -1), U)
    grad = torch.from_numpy(p._gradient(states, U))
    fd = _central_differences(J, U)  # [2, 2, 6, 1]: plan r depends only on its own controls
    torch.testing.assert_close(grad, torch.stack([fd[r, r] for r in range(2)]), rtol=1e-5, atol=1e-6)
    assert fd[0, 1].abs().max() == 0


# --- optimisation -------------------------------------------------------------------------------------


@pytest.mark.parametrize("planner", ["ilqr", "shooting", "cem_gd"])
def test_gradient_planners_reach_the_least_squares_optimum(planner):
    model = double_integrator()
    x0 = torch.tensor([1.0, -0.5], dtype=F64)
    H = 10
    best = optimal_cost(model, x0, H)
    opts = {"ilqr": {"iterations": 3}, "shooting": {"iterations": 300, "lr": 0.05, "restarts": 2},
            "cem_gd": {"population": 200, "iterations": 3, "gd_iterations": 300, "lr": 0.05}}[planner]
    p = make_planner(planner, model, quadratic_cost, bounds=(-20.0, 20.0), horizon=H, seed=0, **opts)
    plan = p.optimize(x0)
    cost = float(quadratic_cost(model.rollout(x0[None], plan[None])[0, 1:], plan).sum())
    assert plan.shape == (H, 1) and plan.dtype == F64
    # iLQR solves a linear-quadratic problem exactly in one step; Adam gets close
    assert cost <= best * (1 + 1e-9 if planner == "ilqr" else 1.01), (cost, best)
    if planner == "ilqr":
        assert p.last_info["iterations"] <= 3


def test_ilqr_respects_the_bounds_and_stays_optimal_among_feasible_plans():
    model = double_integrator()
    x0 = torch.tensor([3.0, 0.0], dtype=F64)
    p = ILQR(model, quadratic_cost, bounds=(-1.0, 1.0), horizon=10, iterations=20)
    plan = p.optimize(x0)
    assert plan.min() >= -1.0 and plan.max() <= 1.0
    assert (plan == -1.0).any()  # the unconstrained optimum needs more force: the bound is active
    cem = CEM(model, quadratic_cost, bounds=(-1.0, 1.0), horizon=10, population=2000, elites=100, iterations=20,
              seed=0)
    c_ilqr = float(cem.evaluate(x0, plan[None]))
    c_cem = float(cem.evaluate(x0, cem.optimize(x0)[None]))
    assert c_ilqr <= c_cem * (1 + 1e-3), (c_ilqr, c_cem)


def test_ilqr_real_time_iterations_reuse_the_shifted_trajectory():
    model = double_integrator()
    H, n = 10, 2
    x0 = torch.tensor([1.0, -0.5], dtype=F64)
    p = ILQR(model, quadratic_cost, bounds=(-20.0, 20.0), horizon=H, iterations=3, warm_iterations=1)
    u0 = p.act(x0)  # the first step: a rollout of the plan, then up to 3 iterations
    assert p.last_info["model_evaluations"] == H + p.last_info["iterations"] * (H * (1 + n) + len(p.alphas) * H)
    x1 = model.step(x0[None], u0[None])[0] + torch.tensor([0.05, -0.02], dtype=F64)  # the start moved
    plan = p.optimize(x1)
    # one iteration along the shifted prediction: no rollout, the step sizes and alpha = 0 in closed loop
    assert p.last_info["iterations"] == 1
    assert p.last_info["model_evaluations"] == H * (1 + n) + (len(p.alphas) + 1) * H
    # linear dynamics, quadratic cost: one Newton step from any reference is the optimum from the new start
    cost = float(quadratic_cost(model.rollout(x1[None], plan[None])[0, 1:], plan).sum())
    best = optimal_cost(model, x1, H)
    assert abs(cost - best) <= 1e-9 * best, (cost, best)
    assert abs(p.last_info["cost"] - best) <= 1e-9 * best
    p.reset()  # forgets the trajectory: the next step rolls the plan out again
    p.optimize(x1)
    assert p.last_info["model_evaluations"] == H + p.last_info["iterations"] * (H * (1 + n) + len(p.alphas) * H)
    q = ILQR(model, quadratic_cost, bounds=(-20.0, 20.0), horizon=H, iterations=1)  # without: always a rollout
    q.act(x0)
    q.optimize(x1)
    assert q.last_info["model_evaluations"] == H + H * (1 + n) + len(q.alphas) * H
    with pytest.raises(ValueError, match="warm_iterations must be an integer >= 1"):
        ILQR(model, quadratic_cost, bounds=(-20.0, 20.0), warm_iterations=0)


def test_model_evaluations_are_counted_per_control_step():
    model = ODEModel(CartPole(), integrator="euler")
    x0 = np.array([0.0, 0.1, 0.05, -0.1])
    H, n = 8, 4
    cem = CEM(model, balance_cost, bounds=(-10, 10), horizon=H, population=50, iterations=3, min_std=0.0)
    cem.act(x0)
    assert cem.last_info["model_evaluations"] == 50 * H * 3
    mppi = MPPI(model, balance_cost, bounds=(-10, 10), horizon=H, population=40, iterations=2)
    mppi.act(x0)
    assert mppi.last_info["model_evaluations"] == 40 * H * 2
    shoot = Shooting(model, balance_cost, bounds=(-10, 10), horizon=H, restarts=3, iterations=4)
    shoot.act(x0)
    assert shoot.last_info["model_evaluations"] == 3 * H * ((4 + 1) + 4 * (1 + n))
    gd = CEMGD(model, balance_cost, bounds=(-10, 10), horizon=H, population=20, iterations=2, gd_iterations=3,
               min_std=0.0)
    gd.act(x0)
    assert gd.last_info["model_evaluations"] == 20 * H * 2 + 2 * H * ((3 + 1) + 3 * (1 + n))
    ilqr = ILQR(model, balance_cost, bounds=(-10, 10), horizon=H, iterations=3, alphas=(1.0, 0.5), tolerance=0.0)
    ilqr.act(x0)
    its = ilqr.last_info["iterations"]
    assert its >= 1 and ilqr.last_info["model_evaluations"] == H + its * (H * (1 + n) + 2 * H)
    assert ilqr.model_evaluations == ilqr.last_info["model_evaluations"]
    ilqr.act(x0)
    assert ilqr.model_evaluations > ilqr.last_info["model_evaluations"]  # cumulative vs per step


def test_warm_start_and_seeds_of_gradient_planners():
    model = ODEModel(CartPole(), integrator="euler")
    x0 = np.array([0.0, 0.0, 0.1, 0.0])
    a = Shooting(model, balance_cost, bounds=(-10, 10), horizon=6, restarts=3, iterations=2, seed=5)
    b = Shooting(model, balance_cost, bounds=(-10, 10), horizon=6, restarts=3, iterations=2, seed=5)
    c = Shooting(model, balance_cost, bounds=(-10, 10), horizon=6, restarts=3, iterations=2, seed=6)
    plan = a.optimize(x0).clone()
    assert torch.equal(plan, b.optimize(x0)) and not torch.equal(plan, c.optimize(x0))
    b = Shooting(model, balance_cost, bounds=(-10, 10), horizon=6, restarts=3, iterations=2, seed=5)
    u = b.act(x0)
    assert torch.equal(b.plan[:-1], plan[1:]) and torch.equal(u, plan[0])
    ilqr = ILQR(model, balance_cost, bounds=(-10, 10), horizon=6)
    first = ilqr.optimize(x0).clone()
    ilqr.act(x0)
    assert torch.equal(ilqr.plan[:-1], first[1:])


def test_bad_gradient_planner_arguments_are_clear_errors():
    model = ODEModel(CartPole(), integrator="euler")
    with pytest.raises(ValueError, match="ensemble must be 'mean'"):
        Shooting(build("ensemble", members=2), balance_cost, bounds=(-10, 10), ensemble="ts")
    with pytest.raises(ValueError, match="restarts must be an integer >= 1"):
        Shooting(model, balance_cost, bounds=(-10, 10), restarts=0)
    with pytest.raises(ValueError, match="lr must be > 0"):
        Shooting(model, balance_cost, bounds=(-10, 10), lr=-1.0)
    with pytest.raises(ValueError, match="alphas must be a non-empty sequence"):
        ILQR(model, balance_cost, bounds=(-10, 10), alphas=(2.0,))
    with pytest.raises(ValueError, match="mu must be > 0"):
        ILQR(model, balance_cost, bounds=(-10, 10), mu=0.0)
    with pytest.raises(ValueError, match="gd_iterations must be an integer >= 1"):
        CEMGD(model, balance_cost, bounds=(-10, 10), gd_iterations=0)
    assert sorted(PLANNERS) == ["cem", "cem_gd", "ilqr", "mppi", "shooting"]


# --- closed loop ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("planner", ["ilqr", "shooting", "cem_gd"])
def test_gradient_planners_balance_cartpole_v1_with_the_explicit_model(planner):
    env = make_env("CartPole-v1")
    opts = default_planner_options(env, "balance")
    # small searches (the suite runs them eagerly; the warm start carries the search over the steps)
    opts.update({"ilqr": {"iterations": 1}, "shooting": {"restarts": 1, "iterations": 2},
                 "cem_gd": {"population": 30, "iterations": 1, "gd_iterations": 1}}[planner])
    p = make_planner(planner, ODEModel(CartPole(), integrator="euler"), balance_cost, seed=0, **opts)
    assert isinstance(p.dynamics, PlanningModel) and not p.dynamics.fused  # no compiler in the suite (conftest)
    ep = run_episode(p, env, "balance", seed=3)
    env.close()
    assert ep.success and ep.steps == 500 and not ep.terminated
    assert ep.model_evaluations.shape == (500,) and ep.model_evaluations.sum() == p.model_evaluations
    # at least 10x fewer model evaluations per step than the CEM of the planning table (500 x 30 x 5)
    assert ep.model_evaluations.max() * 10 <= 500 * 30 * 5, ep.model_evaluations.max()


def test_episodes_and_studies_record_model_evaluations_per_control_step():
    env = make_env("CartPole-v1")
    opts = {**default_planner_options(env, "balance"), "horizon": 6, "population": 20, "iterations": 2,
            "min_std": 0.0}
    cem = make_planner("cem", ODEModel(CartPole(), integrator="euler"), balance_cost, seed=0, **opts)
    ep = run_episode(cem, env, "balance", seed=0, steps=4)
    assert ep.model_evaluations.tolist() == [20 * 6 * 2] * 4 and ep.model_evaluations.dtype == np.int64
    assert ep.plan_cpu_times.shape == (4,) and (ep.plan_cpu_times > 0).all()
    policy = run_episode(lambda x: np.array([1.0 if x[2] > 0 else -1.0]), env, "balance", seed=0, steps=4)
    assert policy.model_evaluations.shape == (0,)  # a plain policy evaluates no model
    env.close()
    del opts["bounds"], opts["horizon"], opts["terminal_cost"], opts["action_levels"]
    study = planning_study({"explicit": ODEModel(CartPole(), integrator="euler")}, "CartPole-v1", "balance",
                           seeds=[0, 1], planner="cem", planner_options={**opts, "horizon": 6}, steps=3,
                           progress=False)
    assert study.summary()["explicit"]["evals_per_step"] == 20 * 6 * 2
    assert "240" in study.table()
