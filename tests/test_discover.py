"""Discovering missing physics: libraries, SymbolicField, sparse regression, physwm.discover (issue 10)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import physwm
from physwm.discover import DiscoveryWarning
from physwm.models import HybridField, ODEModel, SymbolicField, build
from physwm.systems import Acrobot, CartPole, Pendulum
from physwm.systems.library import check_library, default_library
from physwm.train import load_checkpoint, save_checkpoint
from physwm.train.sparse import stlsq

TRUE = {"x_ddot": {"x_dot*|x_dot|": -0.2}, "theta_ddot": {"theta_dot*|theta_dot|": -0.3}}


def truth_model(coefficients: dict = TRUE) -> ODEModel:
    """Nominal CartPole plus known library terms on its accelerations (a truth whose missing terms are in
    the library), float64."""
    terms = {row: list(c) for row, c in coefficients.items()}
    sym = SymbolicField(CartPole, terms=terms)
    xi = torch.zeros(2, len(sym.term_names))
    for i, row in enumerate(sym.row_names):
        for term, value in coefficients.get(row, {}).items():
            xi[i, sym.term_names.index(term)] = value
    sym.set_coefficients(xi)
    return ODEModel(HybridField(CartPole(), sym), "rk4", 0.02).double()


def truth_data(seed: int, episodes: int = 50, steps: int = 100, coefficients: dict = TRUE) -> physwm.Trajectories:
    """``episodes * steps`` noiseless transitions (5,000 by default) of the truth under random forces."""
    g = torch.Generator().manual_seed(seed)
    box = torch.tensor([0.5, 2.0, 0.3, 3.0], dtype=torch.float64)
    x0 = (torch.rand(episodes, 4, generator=g, dtype=torch.float64) * 2 - 1) * box
    u = (torch.rand(episodes, steps, 1, generator=g, dtype=torch.float64) * 2 - 1) * 10
    with torch.no_grad():
        s = truth_model(coefficients).rollout(x0, u)
    return physwm.Trajectories(s.float(), u.float(), dt=0.02)


# --- libraries ------------------------------------------------------------------------------------------


def test_every_system_has_a_library_from_its_description():
    names = list(Pendulum.library())
    assert names == ["theta_dot", "theta_dot*|theta_dot|", "sgn(theta_dot)", "sin(theta)*theta_dot",
                     "cos(theta)*theta_dot", "torque"]  # fmt: skip
    assert len(Acrobot.library()) == 15
    x = torch.tensor([[0.0, 2.0]])
    lib = default_library(Pendulum)
    assert float(lib["theta_dot*|theta_dot|"](x, torch.zeros(1, 1))) == 4.0
    assert float(lib["sgn(theta_dot)"](-x, torch.zeros(1, 1))) == pytest.approx(-1.0)


def test_cartpole_library_holds_the_issue_terms():
    lib = CartPole.library()
    for name in ("x_dot", "theta_dot^3", "x_dot^2*theta_dot", "x_dot*|x_dot|", "theta_dot*|theta_dot|",
                 "sgn(x_dot)", "cos(theta)*force", "sin(theta)*theta_dot^2"):  # fmt: skip
        assert name in lib
    x = torch.tensor([[0.0, -2.0, math.pi / 2, 3.0]])
    u = torch.tensor([[5.0]])
    assert float(lib["x_dot^2*theta_dot"](x, u)) == pytest.approx(12.0)
    assert float(lib["sin(theta)*force"](x, u)) == pytest.approx(5.0)


def test_bad_libraries_are_named():
    with pytest.raises(ValueError, match="empty"):
        check_library({}, 4, 1)
    with pytest.raises(ValueError, match="'bad'.*shape"):
        check_library({"ok": lambda x, u: x[..., 1], "bad": lambda x, u: x}, 4, 1)
    with pytest.raises(ValueError, match="'nan'.*NaN"):
        check_library({"nan": lambda x, u: x[..., 1] * float("nan")}, 4, 1)
    with pytest.raises(TypeError, match="'f'"):
        check_library({"f": 3.0}, 4, 1)
    with pytest.raises(ValueError, match="'boom' failed"):
        check_library({"boom": lambda x, u: x[..., 9]}, 4, 1)
    with pytest.raises(ValueError, match="empty"):
        physwm.discover(truth_data(0, episodes=2, steps=10), library={})


# --- SymbolicField --------------------------------------------------------------------------------------


def test_symbolic_field_prints_and_integrates_its_equations():
    model = truth_model()
    sym = model.field.residual
    assert sym.equations() == {"x_ddot": "-0.2*x_dot*|x_dot|", "theta_ddot": "-0.3*theta_dot*|theta_dot|"}
    assert sym.coefficients()["x_ddot"] == pytest.approx({"x_dot*|x_dot|": -0.2})
    x = torch.tensor([[0.0, 2.0, 0.0, -1.0]], dtype=torch.float64)
    u = torch.zeros(1, 1, dtype=torch.float64)
    r = sym(x, u)
    assert r[0].tolist() == pytest.approx([-0.8, 0.3])
    # the hybrid adds it to the physics' accelerations only
    assert (model.field(x, u) - CartPole().double()(x, u))[0].tolist() == pytest.approx([0.0, -0.8, 0.0, 0.3])
    # rescaling the terms keeps the physical coefficients
    states, controls = torch.randn(3, 5, 4, dtype=torch.float64) * 3, torch.randn(3, 4, 1, dtype=torch.float64)
    sym.fit_normalization(states, controls, 0.02)
    assert sym.coefficients()["theta_ddot"]["theta_dot*|theta_dot|"] == pytest.approx(-0.3)
    with pytest.raises(ValueError, match="unknown term 'nope'.*valid"):
        sym.set_terms({"x_ddot": ["nope"]})
    with pytest.raises(ValueError, match="unknown row 'y_ddot'"):
        sym.set_terms({"y_ddot": []})


def test_build_symbolic_hybrid_saves_and_reloads(tmp_path):
    model = build("hybrid", residual="symbolic", terms={"x_ddot": ["x_dot*|x_dot|"], "theta_ddot": []})
    assert model.build_spec["options"]["penalty"] == 0.0
    assert model.field.residual.active_terms() == {"x_ddot": ["x_dot*|x_dot|"], "theta_ddot": []}
    xi = torch.zeros(2, len(model.field.residual.term_names))
    xi[0, model.field.residual.term_names.index("x_dot*|x_dot|")] = -0.125
    model.field.residual.set_coefficients(xi)
    save_checkpoint(tmp_path / "m.pt", model)
    loaded, _ = load_checkpoint(tmp_path / "m.pt")
    assert loaded.field.residual.equations() == {"x_ddot": "-0.125*x_dot*|x_dot|", "theta_ddot": "0"}
    with pytest.raises(ValueError, match="residual 'tree'"):
        build("hybrid", residual="tree")


# --- sparse regression ----------------------------------------------------------------------------------


def test_stlsq_drops_small_terms_and_keeps_exact_ones():
    g = torch.Generator().manual_seed(0)
    theta = torch.randn(500, 6, generator=g, dtype=torch.float64)
    y = 2.0 * theta[:, 1] - 0.5 * theta[:, 4] + 1e-4 * theta[:, 0]
    xi = stlsq(theta, y, threshold=0.01)
    assert torch.nonzero(xi).flatten().tolist() == [1, 4]
    assert xi[[1, 4]].tolist() == pytest.approx([2.0, -0.5], abs=1e-3)
    assert stlsq(theta, y, threshold=0.0)[0] == pytest.approx(1e-4, rel=1e-6)


# --- discover -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_discover_finds_exactly_the_missing_terms(seed):
    """5,000 noiseless transitions, the truth's extra terms in the library: exactly those terms, each
    coefficient within 5% (the regression alone; the refit is tested below)."""
    data = truth_data(seed)
    model = physwm.discover(data, seed=seed, refit_epochs=0, bootstrap_samples=0)
    found = model.discovery.coefficients
    assert {row: set(c) for row, c in found.items()} == {row: set(c) for row, c in TRUE.items()}
    for row, terms in TRUE.items():
        for term, value in terms.items():
            assert found[row][term] == pytest.approx(value, rel=0.05)
    assert max(model.discovery.residual_left.values()) < 0.05


def test_discover_reports_bootstrap_and_refits(tmp_path):
    data = truth_data(0, episodes=20, steps=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DiscoveryWarning)
        model = physwm.discover(data, seed=0, refit_epochs=1, max_windows=128, bootstrap_samples=5)
    d = model.discovery
    assert d.inclusion["x_ddot"]["x_dot*|x_dot|"] == 1.0
    lo, hi = d.intervals["theta_ddot"]["theta_dot*|theta_dot|"]
    assert -0.31 < lo <= hi < -0.29
    text = d.format()
    assert "P(in)=1.00" in text and "x_ddot (residual) = " in text
    assert d.coefficients["theta_ddot"]["theta_dot*|theta_dot|"] == pytest.approx(-0.3, rel=0.05)
    assert d.constants["masscart"] == pytest.approx(1.0, rel=0.05)
    save_checkpoint(tmp_path / "d.pt", model)
    loaded, _ = load_checkpoint(tmp_path / "d.pt")
    assert loaded.field.residual.equations() == model.field.residual.equations()


def test_discover_says_so_when_the_library_lacks_the_term():
    data = truth_data(1, episodes=20, steps=100)
    lib = {k: v for k, v in CartPole.library().items() if "|" not in k and "^" not in k}
    with pytest.warns(DiscoveryWarning, match="does not explain"):
        model = physwm.discover(data, library=lib, refit_epochs=0, bootstrap_samples=0)
    assert model.discovery.residual_left["theta_ddot"] > 0.05
    assert model.discovery.kept == "symbolic"  # no network hybrid to fall back on
    assert not hasattr(model, "build_spec")  # a custom library is not rebuildable by name


class ExactResidual(torch.nn.Module):
    """A non-symbolic residual that is the truth's (stands in for a well-fitted network)."""

    rows = (1, 3)

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return torch.stack((-0.2 * x[..., 1] * x[..., 1].abs(), -0.3 * x[..., 3] * x[..., 3].abs()), dim=-1)


def test_discover_keeps_the_network_hybrid_when_the_library_lacks_the_term():
    data = truth_data(4, episodes=20, steps=100)
    network = ODEModel(HybridField(CartPole(learnable=("masscart",)), ExactResidual()), "rk4", 0.02)
    network.fit_normalization(data.states, data.controls)
    lib = {k: v for k, v in CartPole.library().items() if "|" not in k and "^" not in k}
    with pytest.warns(DiscoveryWarning, match="keeping the network hybrid"):
        kept = physwm.discover(network, data, library=lib, refit_epochs=1, bootstrap_samples=0, max_windows=64)
    assert kept is network
    assert kept.discovery.kept == "network"
    assert kept.discovery.errors["network"] < kept.discovery.errors["symbolic"]
    # with the full library the symbolic hybrid is returned
    found = physwm.discover(network, data, refit_epochs=0, bootstrap_samples=0)
    assert found is not network and found.discovery.kept == "symbolic"
    assert found.discovery.coefficients["x_ddot"] == pytest.approx({"x_dot*|x_dot|": -0.2}, rel=0.01)


def test_discover_bad_threshold_and_arguments():
    data = truth_data(2, episodes=10, steps=50)
    with pytest.raises(ValueError, match="threshold=5.0 removes every term"):
        physwm.discover(data, threshold=5.0, refit_epochs=0, bootstrap_samples=0)
    with pytest.raises(ValueError, match="target"):
        physwm.discover(data, target="oracle")
    with pytest.raises(ValueError, match="target='network' needs"):
        physwm.discover(data, target="network")
    with pytest.raises(TypeError, match="give the data once"):
        physwm.discover(data, data)
    with pytest.raises(ValueError, match="second argument"):
        physwm.discover(build("explicit"))



def test_cli_discover_prints_the_equations(tmp_path, capsys):
    from physwm.cli import main

    path = truth_data(3, episodes=20, steps=100).save(tmp_path / "d.npz")
    assert main(["discover", "--data", str(path), "--bootstrap", "3", "--out", str(tmp_path / "m.pt")]) == 0
    out = capsys.readouterr().out
    assert "x_ddot (residual) = -0.2*x_dot*|x_dot|" in out
    assert "theta_ddot (residual) = -0.3*theta_dot*|theta_dot|" in out
    assert load_checkpoint(tmp_path / "m.pt")[0].field.residual.active_terms()["x_ddot"] == ["x_dot*|x_dot|"]
    assert main(["discover", "--data", str(path), "--out", str(tmp_path / "m.pt")]) == 2  # no silent overwrite


def test_cartpole_drag_removes_energy_at_the_documented_rate():
    """DRAG_PARAMS: dE/dt = F x_dot - b_c x_dot^2 - mu_c sgn(x_dot) x_dot - b_p theta_dot^2
    - c_d |x_dot|^3 - c_p |theta_dot|^3 (the drag terms' power)."""
    from physwm.systems.cartpole import DRAG_PARAMS, cartpole_dynamics, cartpole_energy

    p = DRAG_PARAMS
    x = torch.tensor([[0.1, 1.5, 0.7, -4.0]], dtype=torch.float64, requires_grad=True)
    u = torch.tensor([[2.0]], dtype=torch.float64)
    grad = torch.autograd.grad(cartpole_energy(x, p).sum(), x)[0]
    de_dt = float((grad * cartpole_dynamics(x, u, p)).sum().detach())
    v, w = 1.5, -4.0
    expected = (2.0 * v - p.cart_viscous * v**2 - p.cart_coulomb * math.tanh(v / p.coulomb_smoothing) * v
                - p.pole_damping * w**2 - p.cart_drag * abs(v) ** 3 - p.pole_drag * abs(w) ** 3)  # fmt: skip
    assert de_dt == pytest.approx(expected, rel=1e-9)
    assert p.cart_drag == 0.15 and p.pole_drag == 0.005
