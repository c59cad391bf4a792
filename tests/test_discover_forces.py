"""Discovering missing *forces*: the mass matrix, force-space SymbolicField and ``discover(space=...)``."""

from __future__ import annotations

import pytest
import torch

import physwm
from physwm.integrators import get_integrator
from physwm.models import ODEModel, SymbolicField, build
from physwm.systems import CartPole, Pendulum
from physwm.systems.cartpole import DRAG_PARAMS, FRICTION_PARAMS
from physwm.train import load_checkpoint, save_checkpoint

#: What the physical drag truth (DRAG_PARAMS) adds to nominal CartPole, as generalised forces (N, N m).
TRUE_FORCES = {
    "Q_x": {"x_dot": -0.1, "x_dot*|x_dot|": -0.15, "sgn(x_dot)": -0.1},
    "Q_theta": {"theta_dot": -0.005, "theta_dot*|theta_dot|": -0.005},
}


def drag_data(seed: int = 0, episodes: int = 50, steps: int = 100) -> physwm.Trajectories:
    """5,000 noiseless transitions of CartPole with DRAG_PARAMS (drag through the equations of motion)."""
    g = torch.Generator().manual_seed(seed)
    box = torch.tensor([0.5, 2.0, 0.3, 3.0], dtype=torch.float64)
    x0 = (torch.rand(episodes, 4, generator=g, dtype=torch.float64) * 2 - 1) * box
    u = (torch.rand(episodes, steps, 1, generator=g, dtype=torch.float64) * 2 - 1) * 10
    truth = ODEModel(CartPole(DRAG_PARAMS), get_integrator("rk4", substeps=10), 0.02).double()
    with torch.no_grad():
        s = truth.rollout(x0, u)
    return physwm.Trajectories(s.float(), u.float(), dt=0.02)


def test_cartpole_mass_matrix_maps_drag_forces_to_the_accelerations():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 4, generator=gen, dtype=torch.float64) * 3
    u = torch.randn(16, 1, generator=gen, dtype=torch.float64) * 5
    with_drag, without = CartPole(DRAG_PARAMS)(x, u), CartPole(FRICTION_PARAMS)(x, u)
    q = torch.stack((-0.15 * x[:, 1] * x[:, 1].abs(), -0.005 * x[:, 3] * x[:, 3].abs()), -1)
    added = CartPole(FRICTION_PARAMS).force_response(x, q)
    assert torch.allclose(with_drag[:, [1, 3]] - without[:, [1, 3]], added, atol=1e-12)
    m = CartPole.mass_matrix(x[:1] * 0, DRAG_PARAMS)[0]
    assert m.flatten().tolist() == pytest.approx([1.1, 0.05, 0.05, 4 / 3 * 0.1 * 0.25])
    assert CartPole.has_mass_matrix() and not Pendulum.has_mass_matrix()


def test_force_space_symbolic_hybrid_adds_m_inverse_q_and_reloads(tmp_path):
    model = build("hybrid", residual="symbolic", residual_space="force",
                  terms={"Q_x": ["x_dot*|x_dot|"], "Q_theta": ["theta_dot*|theta_dot|"]}).double()  # fmt: skip
    sym = model.field.residual
    assert sym.row_names == ("Q_x", "Q_theta") and sym.space == "force"
    xi = torch.zeros(2, len(sym.term_names), dtype=torch.float64)
    xi[0, sym.term_names.index("x_dot*|x_dot|")] = -0.15
    xi[1, sym.term_names.index("theta_dot*|theta_dot|")] = -0.005
    sym.set_coefficients(xi)
    x = torch.tensor([[0.0, 2.0, 0.6, -3.0]], dtype=torch.float64)
    u = torch.tensor([[1.0]], dtype=torch.float64)
    truth = CartPole(DRAG_PARAMS.replace(cart_viscous=0.0, cart_coulomb=0.0, pole_damping=0.0)).double()
    assert torch.allclose(model.field(x, u), truth(x, u), atol=1e-6)
    # the fixed-step rollout path (bind_controls) agrees with forward
    us = torch.ones(1, 5, 1, dtype=torch.float64)
    assert torch.allclose(model.rollout(x, us), ODEModel(truth, "rk4", 0.02).rollout(x, us), atol=1e-6)
    save_checkpoint(tmp_path / "m.pt", model)
    loaded, _ = load_checkpoint(tmp_path / "m.pt")
    equations = {"Q_x": "-0.15*x_dot*|x_dot|", "Q_theta": "-0.005*theta_dot*|theta_dot|"}
    assert loaded.field.residual.equations() == equations


def test_force_space_needs_a_mass_matrix():
    with pytest.raises(ValueError, match="mass_matrix"):
        SymbolicField(Pendulum, space="force")
    with pytest.raises(ValueError, match="space"):
        SymbolicField(CartPole, space="torque")
    with pytest.raises(ValueError, match="residual='symbolic'"):
        build("hybrid", residual_space="force")
    data = {"states": torch.randn(2, 3, 2), "controls": torch.zeros(2, 2, 1), "dt": 0.05}
    with pytest.raises(ValueError, match="mass_matrix"):
        physwm.discover(data, system="pendulum", space="force")


@pytest.mark.parametrize("seed", range(5))
def test_discover_finds_the_physical_drag_as_forces(seed):
    """DRAG_PARAMS' drag and friction enter through M^-1: as accelerations they lie outside the library, as
    generalised forces they are exactly its terms. ``space="auto"`` must pick forces and find exactly them
    (no false term, none missed, within 5%) in every seed, from the regression alone."""
    data = drag_data(seed)
    d = physwm.discover(data, bootstrap_samples=0, refit_epochs=0, seed=seed).discovery
    assert d.space == "force" and d.space_errors["force"] < 0.5 * d.space_errors["acceleration"]
    assert {row: sorted(c) for row, c in d.coefficients.items()} == {row: sorted(c) for row, c in TRUE_FORCES.items()}
    for row, terms in TRUE_FORCES.items():
        for term, value in terms.items():
            assert d.coefficients[row][term] == pytest.approx(value, rel=0.05), (row, term)


def test_the_joint_refit_keeps_the_drag_forces_cli(tmp_path, capsys):
    """``physwm discover --space force`` prints the generalised forces and saves a model that reloads with them
    (after the joint refit with the constants)."""
    from physwm.cli import main

    data = drag_data(0)
    data.save(tmp_path / "drag.npz")
    out = tmp_path / "m.pt"
    assert main(["discover", "--data", str(tmp_path / "drag.npz"), "--bootstrap", "0", "--space", "force",
                 "--out", str(out)]) == 0  # fmt: skip
    assert "Q_x (generalised force) = " in capsys.readouterr().out
    sym = load_checkpoint(out)[0].field.residual
    coefficients = sym.coefficients()
    for row, terms in TRUE_FORCES.items():
        assert sorted(coefficients[row]) == sorted(terms)
        for term, value in terms.items():
            assert coefficients[row][term] == pytest.approx(value, rel=0.05), (row, term)
    # forcing the acceleration space on the same data needs many more terms (its regression alone)
    acc = physwm.discover(data, bootstrap_samples=0, space="acceleration", refit_epochs=0)
    assert sum(map(len, acc.discovery.coefficients.values())) > sum(map(len, coefficients.values())) + 5
