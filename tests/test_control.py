"""Planning (CEM, MPPI) with any WorldModel, closed-loop control of the true CartPoles, imagination, CLI.

The closed-loop tests use small planners (population 100-150, 3 iterations) so the file stays fast; the
full settings (population 500, horizon 30, 5 iterations) over 20 seeds are run by bench/plan_study.py.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from physwm import RK4, CartPole, CartPoleParams
from physwm.control import (
    CEM,
    MPPI,
    Episode,
    PlanningStudy,
    default_planner_options,
    get_task,
    imagine,
    make_env,
    make_planner,
    planning_study,
    run_episode,
)
from physwm.envs import FRICTION_PARAMS
from physwm.models import Ensemble, ODEModel, WorldModel
from physwm.systems import QuadraticCost, wrap_angle
from physwm.systems.cartpole import (
    balance_cost,
    balance_success,
    balance_terminal_cost,
    swingup_cost,
    swingup_success,
)

F64 = torch.float64


class LinearModel(WorldModel):
    """``x' = A x + B u`` (discrete time), a WorldModel with a known optimal control problem."""

    def __init__(self, A, B, dt=0.1):
        A, B = torch.as_tensor(A, dtype=F64), torch.as_tensor(B, dtype=F64)
        super().__init__(A.shape[0], B.shape[1], dt)
        self.register_buffer("A", A)
        self.register_buffer("B", B)
        self.double()

    def step(self, x, u):
        self._check(x, u)
        return x @ self.A.T + u @ self.B.T


def double_integrator(dt=0.1) -> LinearModel:
    return LinearModel([[1.0, dt], [0.0, 1.0]], [[0.5 * dt * dt], [dt]], dt)


def quadratic_cost(x, u):
    return x.square().sum(-1) + 0.1 * u.square().sum(-1)


def optimal_cost(model: LinearModel, x0: torch.Tensor, H: int) -> float:
    """Exact minimum of sum_t ||x_{t+1}||^2 + 0.1 ||u_t||^2 over unconstrained U (least squares)."""
    n, m = model.state_dim, model.control_dim
    G = torch.zeros(H * n, n, dtype=F64)
    Hm = torch.zeros(H * n, H * m, dtype=F64)
    Ak = torch.eye(n, dtype=F64)
    for t in range(H):
        Ak = model.A @ Ak
        G[t * n : (t + 1) * n] = Ak
        for s in range(t + 1):
            Hm[t * n : (t + 1) * n, s * m : (s + 1) * m] = torch.linalg.matrix_power(model.A, t - s) @ model.B
    U = -torch.linalg.solve(Hm.T @ Hm + 0.1 * torch.eye(H * m, dtype=F64), Hm.T @ G @ x0)
    X = G @ x0 + Hm @ U
    return float(X.square().sum() + 0.1 * U.square().sum())


def explicit(params=None, integrator="euler") -> ODEModel:
    return ODEModel(CartPole(params), integrator=integrator)


# --- planners on a problem with a known optimum ----------------------------------------------------------


@pytest.mark.parametrize("planner", ["cem", "mppi"])
def test_planners_reach_the_least_squares_optimum(planner):
    model = double_integrator()
    x0 = torch.tensor([1.0, -0.5], dtype=F64)
    H = 10
    best = optimal_cost(model, x0, H)
    zero = float(model.rollout(x0[None], torch.zeros(1, H, 1, dtype=F64))[0, 1:].square().sum())
    opts = {"temperature": 0.01, "init_std": 0.5} if planner == "mppi" else {"elites": 50}
    p = make_planner(planner, model, quadratic_cost, bounds=(-20.0, 20.0), horizon=H, population=500,
                     iterations=12, seed=0, **opts)
    plan = p.optimize(x0)
    cost = float(p.evaluate(x0, plan[None].to(F64))[0])
    assert plan.shape == (H, 1) and plan.dtype == F64
    assert best < zero  # the problem is not trivial
    assert cost <= best * 1.03, (cost, best, zero)


def test_warm_start_shifts_the_plan_and_seeds_reproduce():
    model = double_integrator()
    x0 = torch.tensor([1.0, 0.0], dtype=F64)
    a = CEM(model, quadratic_cost, bounds=(-5, 5), horizon=8, population=64, iterations=3, seed=3)
    b = CEM(model, quadratic_cost, bounds=(-5, 5), horizon=8, population=64, iterations=3, seed=3)
    c = CEM(model, quadratic_cost, bounds=(-5, 5), horizon=8, population=64, iterations=3, seed=4)
    plan = a.optimize(x0).clone()
    assert torch.equal(plan, b.optimize(x0))
    assert not torch.equal(plan, c.optimize(x0))
    b = CEM(model, quadratic_cost, bounds=(-5, 5), horizon=8, population=64, iterations=3, seed=3)
    u = b.act(x0)
    assert torch.equal(u, plan[0].clamp(-5, 5))
    assert torch.equal(b.plan[:-1], plan[1:]) and torch.equal(b.plan[-1], torch.zeros(1, dtype=F64))
    b.reset()
    assert torch.equal(b.plan, torch.zeros(8, 1, dtype=F64))


def test_action_levels_snap_what_is_evaluated_and_returned():
    model = explicit()
    p = CEM(model, balance_cost, bounds=(-10, 10), action_levels=(10, -10), horizon=5, population=20,
            iterations=1, seed=0)
    u = torch.tensor([[[-3.0], [0.0], [0.1], [9.0], [-10.0]]])
    assert p._snap(u).flatten().tolist() == [-10.0, -10.0, 10.0, 10.0, -10.0]
    for _ in range(5):
        a = p.act(np.array([0.0, 0.0, 0.05, 0.0]))
        assert float(a.abs()) == 10.0
    three = MPPI(model, balance_cost, bounds=(-10, 10), action_levels=(-10, 0, 10), horizon=3, population=8, seed=0)
    assert three._snap(torch.tensor([-6.0, -4.0, 4.9, 5.1])).tolist() == [-10.0, 0.0, 0.0, 10.0]


def test_mppi_low_temperature_returns_the_best_sample():
    model = double_integrator()
    x0 = torch.tensor([1.0, 0.0], dtype=F64)
    p = MPPI(model, quadratic_cost, bounds=(-5, 5), horizon=6, population=200, iterations=1, temperature=1e-9,
             seed=1)
    g = torch.Generator().manual_seed(1)  # the samples MPPI draws (same generator stream)
    eps = torch.randn((200, 6, 1), generator=g, dtype=F64)
    u = (p.init_std * eps).clamp(-5, 5)
    u[0] = 0.0
    costs = p.evaluate(x0, u)
    plan = p.optimize(x0)
    assert torch.allclose(plan, u[costs.argmin()])


def test_ensemble_trajectory_sampling_averages_member_costs():
    members = [explicit(CartPoleParams(length=l)) for l in (0.4, 0.5, 0.7)]
    ens = Ensemble(members, bootstrap=False)
    x0 = torch.tensor([0.0, 0.1, 0.05, -0.1])
    U = torch.linspace(-5, 5, 4 * 10).reshape(4, 10, 1)
    direct = torch.stack([balance_cost(m.rollout(x0.expand(4, -1), U)[:, 1:], U).sum(1) for m in members])
    ts = CEM(ens, balance_cost, bounds=(-10, 10), horizon=10, population=4, ensemble="ts", particles=6, seed=0)
    torch.testing.assert_close(ts.evaluate(x0, U), direct.mean(0))  # 6 particles = each member twice
    ts2 = CEM(ens, balance_cost, bounds=(-10, 10), horizon=10, population=4, ensemble="ts", particles=2, seed=0)
    torch.testing.assert_close(ts2.evaluate(x0, U), direct[:2].mean(0))  # particle k -> member k mod 3
    mean = CEM(ens, balance_cost, bounds=(-10, 10), horizon=10, population=4, seed=0)
    on_mean = balance_cost(ens.rollout(x0.expand(4, -1), U)[:, 1:], U).sum(1)
    torch.testing.assert_close(mean.evaluate(x0, U), on_mean)
    assert not torch.allclose(on_mean, direct.mean(0))  # the two modes really differ


# --- bad input ------------------------------------------------------------------------------------------


def test_bad_planner_arguments_are_clear_errors():
    model = explicit()
    with pytest.raises(ValueError, match="population must be an integer >= 1"):
        CEM(model, balance_cost, bounds=(-10, 10), population=0)
    with pytest.raises(ValueError, match=r"elites \(600\) must not exceed population \(500\)"):
        CEM(model, balance_cost, bounds=(-10, 10), population=500, elites=600)
    with pytest.raises(ValueError, match="horizon"):
        CEM(model, balance_cost, bounds=(-10, 10), horizon=0)
    with pytest.raises(ValueError, match="low < high"):
        CEM(model, balance_cost, bounds=(10, -10))
    with pytest.raises(ValueError, match="sequences of the control size m=1"):
        CEM(model, balance_cost, bounds=((-1, -1), (1, 1)))
    with pytest.raises(ValueError, match="temperature"):
        MPPI(model, balance_cost, bounds=(-10, 10), temperature=0.0)
    with pytest.raises(ValueError, match=r"unknown planner 'ilqr'; valid: \['cem', 'mppi'\]"):
        make_planner("ilqr", model, balance_cost, bounds=(-10, 10))
    with pytest.raises(ValueError, match="ensemble='ts' needs a model with a .members"):
        CEM(model, balance_cost, bounds=(-10, 10), ensemble="ts")
    with pytest.raises(ValueError, match="unknown ensemble mode"):
        CEM(model, balance_cost, bounds=(-10, 10), ensemble="median")
    with pytest.raises(ValueError, match="fused=True needs an ODEModel"):
        CEM(double_integrator(), quadratic_cost, bounds=(-1, 1), fused=True)
    with pytest.raises(ValueError, match=r"unknown task 'juggle'; valid: \['balance', 'swingup'\]"):
        get_task("juggle")
    with pytest.raises(ValueError, match="unknown environment"):
        make_env("MountainCar-v0")
    with pytest.raises(ValueError, match="only fits tasks with termination"):
        make_env("CartPole-v1", "swingup")
    p = CEM(model, balance_cost, bounds=(-10, 10), population=10, horizon=5)
    with pytest.raises(ValueError, match="state must have 4 entries"):
        p.act(np.zeros(3))
    with pytest.raises(ValueError, match="NaN or inf"):
        p.act(np.array([0.0, np.nan, 0.0, 0.0]))


def test_nonfinite_cost_raises_or_ranks_last():
    model = double_integrator()
    x0 = torch.tensor([1.0, 0.0], dtype=F64)

    def cost(x, u):  # NaN for every plan whose first control is positive
        c = quadratic_cost(x, u)
        return torch.where(u[:, :1, 0] > 0, torch.full_like(c, float("nan")), c)

    p = CEM(model, cost, bounds=(-5, 5), horizon=5, population=100, seed=0)
    with pytest.raises(ValueError, match=r"cost is NaN or inf for \d+ of 100 candidate sequences at iteration 0"):
        p.act(x0)
    q = CEM(model, cost, bounds=(-5, 5), horizon=5, population=100, nonfinite="worst", seed=0)
    plan = q.optimize(x0)
    assert torch.isfinite(plan).all() and float(plan[0, 0]) <= 0.0  # elites all start with u <= 0
    with pytest.raises(ValueError, match="every candidate is non-finite"):
        CEM(model, lambda x, u: quadratic_cost(x, u) * float("inf"), bounds=(-5, 5), horizon=5, population=10,
            nonfinite="worst").act(x0)
    with pytest.raises(ValueError, match=r"cost must map states \[B, H, n\] and controls \[B, H, m\] to \[B, H\]"):
        CEM(model, lambda x, u: x.sum(), bounds=(-5, 5), horizon=5, population=10).act(x0)


def test_model_that_does_not_fit_the_env_is_a_clear_error():
    env = make_env("CartPole-v1")
    with pytest.raises(ValueError, match="model state_dim 2 does not fit CartPole-v1's state of size 4"):
        run_episode(CEM(double_integrator(0.02), quadratic_cost, bounds=(-10, 10)), env, "balance")
    slow = ODEModel(CartPole(), integrator="euler", dt=0.05)
    with pytest.raises(ValueError, match="model dt 0.05 s does not fit CartPole-v1's control period 0.02 s"):
        run_episode(CEM(slow, balance_cost, bounds=(-10, 10)), env, "balance")
    with pytest.raises(ValueError, match="model state_dim 2"):
        planning_study({"wrong": double_integrator(0.02)}, "CartPole-v1", "balance", seeds=[0], progress=False)
    env.close()


# --- closed loop on the true environments ---------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_cem_with_the_explicit_model_balances_cartpole_v1_for_500_steps(seed):
    env = make_env("CartPole-v1")
    opts = default_planner_options(env, "balance")
    assert opts["action_levels"] == (-10.0, 10.0) and opts["horizon"] == 30
    p = CEM(explicit(), balance_cost, population=100, elites=10, iterations=3, seed=seed, **opts)
    ep = run_episode(p, env, "balance", seed=seed, model_name="explicit")
    env.close()
    assert ep.success and ep.steps == 500 and ep.ret == 500.0 and not ep.terminated
    assert set(np.abs(ep.controls).ravel().tolist()) == {10.0}  # gymnasium's two forces
    assert np.abs(ep.states[:, 2]).max() < 0.1 and np.abs(ep.states[:, 0]).max() < 1.0
    assert ep.plan_times.shape == (500,) and (ep.plan_times > 0).all()


def test_mppi_with_the_explicit_model_balances_cartpole_v1():
    env = make_env("CartPole-v1")
    p = MPPI(explicit(), balance_cost, population=150, seed=0, **default_planner_options(env, "balance"))
    ep = run_episode(p, env, "balance", seed=5)
    env.close()
    assert ep.success and ep.steps == 500


def test_random_forces_fail_to_balance():
    """The success criterion can fail: a policy that ignores the state drops the pole."""
    env = make_env("CartPole-v1")
    rng = np.random.default_rng(0)
    ep = run_episode(lambda x: rng.choice([-10.0, 10.0], size=1), env, "balance", seed=0)
    env.close()
    assert not ep.success and ep.terminated and ep.steps < 100


def _swingup(model, seed=0, steps=200):
    env = make_env("physwm/CartPole-v0", "swingup")
    opts = default_planner_options(env, "swingup")
    p = CEM(model, swingup_cost, population=150, elites=15, iterations=3, seed=seed, **opts)
    ep = run_episode(p, env, "swingup", seed=seed, steps=steps)
    env.close()
    return ep


def test_cem_with_the_true_friction_physics_swings_up_and_holds():
    ep = _swingup(explicit(FRICTION_PARAMS))
    assert abs(ep.states[0, 2] - math.pi) <= 0.05  # starts hanging
    assert ep.success, ep.summary()
    th = np.abs(wrap_angle(ep.states[:, 2]))
    assert th[-50:].max() < 0.1 and np.abs(ep.states[:, 0]).max() < 2.4


def test_cem_with_a_trained_hybrid_swings_up_the_friction_cartpole():
    from physwm.models import build
    from physwm.train import fit

    # training data: the friction CartPole's own equations and integrator (as the env steps them), batched
    truth = ODEModel(CartPole(FRICTION_PARAMS), integrator=RK4(substeps=10)).double()
    g = torch.Generator().manual_seed(0)
    x0 = (torch.rand(60, 4, generator=g, dtype=F64) - 0.5) * torch.tensor([2.0, 2.0, 2 * math.pi, 6.0], dtype=F64)
    u = (torch.rand(60, 60, 1, generator=g, dtype=F64) - 0.5) * 20
    with torch.no_grad():
        data = {"states": truth.rollout(x0, u).float(), "controls": u.float()}
    hybrid = build("hybrid", integrator="euler", seed=0)  # nominal CartPole-v1 physics + residual
    fit(hybrid, data, epochs=15, horizon=1, batch_size=256, lr=3e-3, progress=False)
    found = hybrid.field.physics.identified()
    assert found["cart_viscous"] > 0.03 and found["pole_damping"] > 0.002  # it learned friction exists
    ep = _swingup(hybrid.eval(), seed=1)
    assert ep.success, ep.summary()


def test_planning_study_reports_success_per_model():
    study = planning_study({"explicit": explicit(), "lazy": explicit()}, "CartPole-v1", "balance", seeds=[0],
                           planner_options={"population": 50, "iterations": 2}, steps=40, progress=False)
    assert set(study.episodes) == {"explicit", "lazy"}
    rates = study.success_rate()
    assert rates == {"explicit": 1.0, "lazy": 1.0}
    s = study.summary()["explicit"]
    assert s["episodes"] == 1 and s["return_mean"] == 40.0 and s["plan_ms_mean"] > 0
    assert "explicit" in study.table() and "1/1" in study.table()


# --- success criteria, episodes, figures ----------------------------------------------------------------


def test_success_criteria_on_synthetic_trajectories():
    T, dt = 350, 0.02
    s = np.zeros((T + 1, 4))
    s[:, 2] = np.where(np.arange(T + 1) < 100, math.pi, 2 * math.pi + 0.05)  # up after 2 s (one full turn)
    assert swingup_success(s, dt, within=5.0, hold=2.0)
    assert not swingup_success(s, dt, within=1.5, hold=2.0)  # too late
    assert not swingup_success(s, dt, within=5.0, hold=6.0)  # not held long enough
    s2 = s.copy()
    s2[300, 2] = 0.5  # falls for a step near the end: the final upright stretch starts at 6.02 s
    assert not swingup_success(s2, dt, within=5.0, hold=2.0)
    s3 = s.copy()
    s3[200:, 0] = 3.0  # off the track
    assert not swingup_success(s3, dt)
    b = np.zeros((501, 4))
    assert balance_success(b, steps=500) and not balance_success(b[:400], steps=500)
    b[10, 2] = 0.25
    assert not balance_success(b)


def _episode(theta, model="m", success=True):
    T = len(theta) - 1
    s = np.zeros((T + 1, 4))
    s[:, 2] = theta
    s[:, 3] = np.gradient(theta)
    return Episode(s, np.ones((T, 1)), np.ones(T), np.full(T, 1e-3), 0.02, success, False, "physwm/CartPole-v0",
                   "swingup", 0, model)


def test_phase_portrait_draws_wrapped_angles_with_breaks():
    from physwm.plot import closed_loop_phase_portrait, episode_figure, wrapped_angle_with_breaks

    theta = np.linspace(math.pi - 0.5, math.pi + 0.5, 11)  # crosses the wrap at pi
    th, om = wrapped_angle_with_breaks(theta, np.arange(11.0))
    assert np.isnan(th).sum() == 1 and np.nanmax(np.abs(th)) <= math.pi
    np.testing.assert_allclose(th[~np.isnan(th)], wrap_angle(theta))
    fig = closed_loop_phase_portrait({"hybrid": [_episode(theta, "hybrid"), _episode(theta, "hybrid", False)]})
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "hybrid (1/2 success)" in labels
    line = next(ln for ln in ax.lines if ln.get_label() == "hybrid (1/2 success)")
    np.testing.assert_allclose(line.get_xdata(), th, equal_nan=True)
    assert sum(ln.get_marker() == "x" for ln in ax.lines) == 1  # one failed episode's end
    fig2 = episode_figure(_episode(theta))
    assert len(fig2.axes) == 6
    import matplotlib.pyplot as plt

    plt.close("all")


def test_episode_to_trajectories_and_study_summary():
    ep = _episode(np.linspace(0, 0.1, 21))
    traj = ep.to_trajectories()
    assert traj.num_episodes == 1 and traj.num_transitions == 20
    np.testing.assert_array_equal(traj.states[0].numpy(), ep.states)
    study = PlanningStudy({"a": [ep, _episode(np.zeros(21), success=False)]}, "e", "swingup", "cem")
    assert study.success_rate() == {"a": 0.5}
    assert study.summary()["a"]["plan_ms_mean"] == pytest.approx(1.0)


def test_balance_terminal_cost_is_the_lqr_value():
    from physwm.data import LQRPolicy

    term = balance_terminal_cost()
    x = torch.tensor([[0.1, 0.0, 0.02, -0.1], [0.0, 0.0, 0.0, 0.0]], dtype=F64)
    P = term.P
    assert torch.allclose(term(x), torch.einsum("bi,ij,bj->b", x, P, x))
    assert float(term(x)[1]) == 0.0
    # Riccati fixed point: P = Q + A'PA - A'PB (R + B'PB)^-1 B'PA for the same linearisation
    lqr = LQRPolicy(CartPoleParams(), Q=np.diag([0.1 / 2.4**2, 0.01, 1 / (12 * math.pi / 180) ** 2, 0.01]), R=1e-3)
    np.testing.assert_allclose(P.numpy(), lqr.P, rtol=1e-12)
    with pytest.raises(ValueError, match="square"):
        QuadraticCost(np.zeros((2, 3)))


# --- imagination ----------------------------------------------------------------------------------------


def test_imagine_is_closed_loop_model_experience():
    model = explicit().double()
    from physwm.data import make_policy

    K = torch.from_numpy(make_policy("lqr", params=CartPoleParams()).K)  # [1, 4], u = -K x

    def policy(x):
        return -(x @ K.T)

    starts = torch.tensor([[0.0, 0.0, 0.1, 0.0], [0.2, 0.0, -0.05, 0.3], [0.0, 0.0, 0.15, 0.0]], dtype=F64)
    traj = imagine(model, policy, starts, 40)
    assert traj.states.shape == (3, 41, 4) and traj.controls.shape == (3, 40, 1) and traj.dtype == F64
    assert traj.dt == model.dt and traj.meta["source"] == "imagined" and traj.lengths.tolist() == [40, 40, 40]
    torch.testing.assert_close(traj.controls, policy(traj.states[:, :-1]))
    torch.testing.assert_close(traj.states, model.rollout(starts, traj.controls))  # same container, same model
    assert traj.states[:, -1, 2].abs().max() < 0.08  # this feedback stabilises the model (no force: > 0.2)

    ended = imagine(model, lambda x: torch.zeros(len(x), 1, dtype=F64), starts, 40,
                    terminate=lambda x: x[:, 2].abs() > 0.2)
    L = ended.lengths
    for i in range(3):
        th = ended.states[i, : L[i] + 1, 2].abs()
        assert th[-1] > 0.2 and (th[:-1] <= 0.2).all()
        assert torch.isnan(ended.states[i, L[i] + 1 :]).all()
    w = ended.windows(1)
    assert w["states"].shape[0] == int(L.sum()) and torch.isfinite(w["states"]).all()


def test_imagine_accepts_data_policies_and_reports_divergence():
    from physwm.data import make_policy

    model = explicit().double()
    lqr = make_policy("lqr")
    traj = imagine(model, lqr, torch.tensor([[0.0, 0.0, 0.1, 0.0]], dtype=F64), 10)
    bound = lqr.bind(CartPoleParams())  # the model's own physics: CartPole with these constants
    expected = torch.tensor([[bound(s.numpy(), None)] for s in traj.states[0, :-1]], dtype=F64)
    torch.testing.assert_close(traj.controls[0], expected)

    class Blowup(WorldModel):
        def step(self, x, u):
            nxt = x + 1.0
            return torch.where(x[:, :1] > 2.5, torch.full_like(nxt, float("inf")), nxt)

    t = imagine(Blowup(2, 1, 0.1), lambda x: torch.zeros(len(x), 1), torch.tensor([[0.0, 0.0], [1.0, 0.0]]), 6)
    assert t.lengths.tolist() == [3, 2] and t.meta["diverged"] == 2
    with pytest.raises(ValueError, match=r"the policy must return controls \[B=1, m=1\]"):
        imagine(model, lambda x: torch.zeros(3), torch.zeros(1, 4, dtype=F64), 5)
    with pytest.raises(ValueError, match=r"starts must have shape \[B, 4\]"):
        imagine(model, lambda x: x[:, :1], torch.zeros(2, 3), 5)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        imagine(model, lambda x: x[:, :1], torch.zeros(2, 4), 0)


# --- CLI ------------------------------------------------------------------------------------------------


def test_cli_plan_writes_plot_summary_and_trajectory(tmp_path, capsys):
    from physwm.cli import main
    from physwm.data import Trajectories

    out = tmp_path / "run"
    args = ["plan", "--model", "explicit", "--env", "CartPole-v1", "--task", "balance", "--steps", "25",
            "--population", "40", "--iterations", "2", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    summary = json.loads((out / "episode.json").read_text())
    assert summary["steps"] == 25 and summary["success"] is True and summary["population"] == 40
    traj = Trajectories.load(out / "episode.npz")
    assert traj.states.shape == (1, 26, 4) and set(traj.controls.abs().flatten().tolist()) == {10.0}
    assert (out / "episode.png").stat().st_size > 10_000
    assert "success, 25 steps" in capsys.readouterr().out
    assert main(args) == 2  # no silent overwrite
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert main(["plan", "--model", str(tmp_path / "nope.pt"), "--steps", "2"]) == 2
    assert "not 'explicit', 'nominal'" in capsys.readouterr().err
    assert main(["plan", "--model", "explicit", "--planner", "cem", "--temperature", "2"]) == 2
