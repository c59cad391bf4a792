"""CartPole physics: exact against gymnasium, energy, friction, gradients, parameters."""

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch

from physwm import RK4, CartPole, CartPoleParams, Euler, SemiImplicitEuler
from physwm.systems.cartpole import cartpole_dynamics

FRICTION = CartPoleParams(cart_viscous=0.2, cart_coulomb=0.3, pole_damping=0.01)


def _gym_rollout(kinematics: str, seed: int, steps: int = 200):
    """States (float64, gymnasium's internal) and forces of a random-action CartPole-v1 run."""
    env = gym.make("CartPole-v1").unwrapped
    env.kinematics_integrator = kinematics
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    states, forces = [np.array(env.state, dtype=np.float64)], []
    for _ in range(steps):
        a = int(rng.integers(2))
        # Stepping on past termination is defined for the dynamics (gymnasium only warns).
        env.steps_beyond_terminated = None
        env.step(a)
        states.append(np.array(env.state, dtype=np.float64))
        forces.append(env.force_mag if a == 1 else -env.force_mag)
    env.close()
    return np.stack(states), np.array(forces)


@pytest.mark.parametrize(
    "kinematics,integrator", [("euler", Euler()), ("semi-implicit euler", SemiImplicitEuler())]
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reproduces_gymnasium_to_round_off(kinematics, integrator, seed):
    states, forces = _gym_rollout(kinematics, seed)
    x0 = torch.tensor(states[:1])
    u = torch.tensor(forces, dtype=torch.float64).reshape(1, -1, 1)
    ours = integrator.rollout(CartPole(), x0, u, 0.02)[0].numpy()
    assert np.max(np.abs(ours - states)) <= 1e-9
    assert np.abs(states[-1]).max() > 1.0  # the run left the linear regime, so the test means something


def test_field_batched_and_dtypes():
    f = CartPole()
    x = torch.randn(3, 5, 4, dtype=torch.float64)
    u = torch.randn(3, 5, 1, dtype=torch.float64)
    out = f(x, u)
    assert out.shape == (3, 5, 4) and out.dtype == torch.float64
    single = torch.stack([f(x[i, j], u[i, j]) for i in range(3) for j in range(5)]).reshape(3, 5, 4)
    torch.testing.assert_close(out, single, rtol=0, atol=1e-15)
    assert f(x.float(), u.float()).dtype == torch.float32
    # kinematic rows are exact
    torch.testing.assert_close(out[..., 0], x[..., 1])
    torch.testing.assert_close(out[..., 2], x[..., 3])


def test_upright_equilibrium_and_hanging_oscillation():
    f = CartPole()
    zero = torch.zeros(1, 4, dtype=torch.float64)
    assert torch.all(f(zero, torch.zeros(1, 1, dtype=torch.float64)) == 0)
    # Small oscillation about hanging (theta = pi) must be restoring, at the free-cart pendulum rate
    # against the linearised period of the free-cart pendulum: omega^2 = g M / (l (4/3 M - m)).
    p = CartPoleParams()
    eps = 1e-6
    x = torch.tensor([[0.0, 0.0, np.pi + eps, 0.0]], dtype=torch.float64)
    thetaacc = f(x, torch.zeros(1, 1, dtype=torch.float64))[0, 3].item()
    omega2 = p.gravity * p.total_mass / (p.length * (4 / 3 * p.total_mass - p.masspole))
    assert thetaacc == pytest.approx(-omega2 * eps, rel=1e-5)  # restoring: stable oscillation


def test_energy_conserved_without_friction():
    f = CartPole()
    x0 = torch.tensor([[0.1, 0.5, 2.5, -1.0], [0.0, -1.0, 0.3, 3.0]], dtype=torch.float64)
    u = torch.zeros(2, 1000, 1, dtype=torch.float64)  # 10 s
    traj = RK4(substeps=4).rollout(f, x0, u, 0.01)
    e = f.energy(traj)
    drift = ((e - e[:, :1]).abs() / e[:, :1].abs().clamp_min(1e-3)).max()
    assert drift < 1e-8


def test_energy_never_increases_with_friction():
    f = CartPole(FRICTION)
    x0 = torch.tensor([[0.0, 2.0, 3.0, 4.0], [0.5, -1.0, 0.5, -2.0]], dtype=torch.float64)
    u = torch.zeros(2, 500, 1, dtype=torch.float64)
    traj = RK4(substeps=4).rollout(f, x0, u, 0.02)
    e = f.energy(traj)
    diffs = e[:, 1:] - e[:, :-1]
    assert diffs.max() <= 1e-12
    assert (e[:, -1] < e[:, 0] - 0.1).all()  # and it does dissipate


def test_friction_terms_act_as_documented():
    x = torch.tensor([[0.0, 1.5, 0.0, 0.0]], dtype=torch.float64)  # upright, moving right
    u = torch.zeros(1, 1, dtype=torch.float64)
    nominal = CartPole()(x, u)
    p = CartPoleParams(cart_viscous=0.2, cart_coulomb=0.3, coulomb_smoothing=0.0)
    fric = CartPole(p)(x, u)
    # At theta = 0 the cart force -(b v + mu) enters as an effective force: xacc = F_eff / (M - 3/4 m)...
    # equivalently, the difference must equal the nominal response to force -(0.2*1.5 + 0.3).
    expected = CartPole()(x, torch.tensor([[-(0.2 * 1.5 + 0.3)]], dtype=torch.float64))
    torch.testing.assert_close(fric, expected, rtol=0, atol=1e-14)
    assert fric[0, 1] < nominal[0, 1]
    # pole damping opposes the pole's rotation
    xr = torch.tensor([[0.0, 0.0, 0.0, 2.0]], dtype=torch.float64)
    damped = CartPole(CartPoleParams(pole_damping=0.05))(xr, u)
    assert damped[0, 3] < CartPole()(xr, u)[0, 3]


def test_gradcheck_through_field_and_rk4_rollout():
    f = CartPole(FRICTION, learnable=("length", "cart_viscous")).double()
    x = torch.tensor([[0.1, 0.3, 0.4, -0.2], [0.0, -0.5, 2.0, 1.0]], dtype=torch.float64, requires_grad=True)
    u = torch.tensor([[1.0], [-3.0]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, u: f(x, u), (x, u))
    uu = torch.randn(2, 5, 1, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, uu: RK4().rollout(f, x, uu, 0.02), (x, uu))

    def through_constants(length, visc):
        p = FRICTION.replace(length=length, cart_viscous=visc)
        return RK4().rollout(CartPole(p), x.detach(), uu.detach(), 0.02)

    consts = (torch.tensor(0.55, dtype=torch.float64, requires_grad=True),
              torch.tensor(0.2, dtype=torch.float64, requires_grad=True))
    assert torch.autograd.gradcheck(through_constants, consts)
    RK4().rollout(f, x, uu, 0.02).sum().backward()
    assert all(p.grad is not None and p.grad.abs() > 0 for p in f.raw.values())


def test_learnable_constants_start_at_their_values_and_stay_positive():
    p = CartPoleParams(length=0.7, cart_viscous=0.0)
    f = CartPole(p, learnable=("length", "cart_viscous"))
    vals = f.identified()
    assert vals["length"] == pytest.approx(0.7, rel=1e-6)
    assert vals["cart_viscous"] == 0.0  # a zero constant starts exactly at zero: the nominal physics...
    x = torch.tensor([[0.0, 1.0, 0.1, 0.0]])
    torch.testing.assert_close(f(x, torch.zeros(1, 1)), CartPole(p)(x, torch.zeros(1, 1)), rtol=1e-6, atol=1e-7)
    # ...and leaves it when friction is needed: fit a cart deceleration that only friction explains
    target = CartPole(CartPoleParams(length=0.7, cart_viscous=0.3))(x, torch.zeros(1, 1)).detach()
    opt = torch.optim.Adam(f.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        (f(x, torch.zeros(1, 1)) - target).pow(2).sum().backward()
        opt.step()
    assert f.identified()["cart_viscous"] == pytest.approx(0.3, rel=0.02)
    # pushed below its bound, a constant stays at the bound (positive), and a floor keeps the length > 0
    with torch.no_grad():
        f.raw["cart_viscous"].fill_(-5.0)
        f.raw["length"].fill_(-50.0)
    assert f.identified()["cart_viscous"] == 0.0
    assert f.identified()["length"] > 0
    assert {n for n, _ in f.named_parameters()} == {"raw.length", "raw.cart_viscous"}


def test_projected_gradient_at_the_bound():
    f = CartPole(learnable=("cart_viscous",))
    x = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    # loss that wants less friction: at the bound its gradient is blocked (descent would leave the set)
    f(x, torch.zeros(1, 1))[:, 1].neg().sum().backward()
    assert f.raw["cart_viscous"].grad.item() == 0.0
    f.zero_grad()
    # loss that wants more friction: the gradient passes
    f(x, torch.zeros(1, 1))[:, 1].sum().backward()
    assert f.raw["cart_viscous"].grad.item() < 0
    # the projection survives copies (new leaf tensors)
    g = copy.deepcopy(f)
    g(x, torch.zeros(1, 1))[:, 1].neg().sum().backward()
    assert g.raw["cart_viscous"].grad.item() == 0.0
    # it acts on the total gradient of a backward pass, not on each use's share
    f.zero_grad()
    out = f(x, torch.zeros(1, 1))[:, 1].sum()
    (out - 2 * f(x, torch.zeros(1, 1))[:, 1].sum()).backward()  # shares +1 and -2: total wants less friction
    assert f.raw["cart_viscous"].grad.item() == 0.0


def test_params_validation_and_derived_quantities():
    p = CartPoleParams()
    assert p.total_mass == pytest.approx(1.1) and p.polemass_length == pytest.approx(0.05)
    assert CartPoleParams(length=1.0).polemass_length == pytest.approx(0.1)
    assert CartPoleParams.from_dict(p.to_dict()) == p
    with pytest.raises(ValueError, match="length"):
        CartPoleParams(length=-1.0)
    with pytest.raises(ValueError, match="cart_viscous"):
        CartPoleParams(cart_viscous=-0.1)
    with pytest.raises(ValueError, match="gravity"):
        CartPoleParams(gravity=float("nan"))
    with pytest.raises(ValueError, match="unknown"):
        CartPoleParams.from_dict({"lenght": 0.5})
    with pytest.raises(ValueError, match="unknown learnable"):
        CartPole(learnable=("lenght",))


def test_wrong_shapes_are_named():
    f = CartPole()
    with pytest.raises(ValueError, match=r"state must have shape \[\.\.\., 4\]"):
        f(torch.zeros(2, 3), torch.zeros(2, 1))
    with pytest.raises(ValueError, match=r"control must have shape \[\.\.\., 1\]"):
        f(torch.zeros(2, 4), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="leading"):
        f(torch.zeros(2, 4), torch.zeros(3, 1))


def test_dynamics_function_is_the_single_source():
    # The module's forward is the pure function with the current params (no second copy of the equations).
    f = CartPole(FRICTION)
    x, u = torch.randn(4, 4, dtype=torch.float64), torch.randn(4, 1, dtype=torch.float64)
    assert torch.equal(f(x, u), cartpole_dynamics(x, u, FRICTION))


def test_bound_rollout_equals_step_by_step_with_learnable_constants():
    """CartPole.bind_controls (constants computed once per rollout) changes neither values nor gradients."""
    f = CartPole(FRICTION, learnable=("length", "cart_viscous")).double()
    x0 = torch.tensor([[0.1, 0.3, 0.4, -0.2], [0.0, -0.5, 2.0, 1.0]], dtype=torch.float64)
    u = torch.randn(2, 6, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    bound = RK4().rollout(f, x0, u, 0.02)
    (gb,) = torch.autograd.grad(bound.sum(), [f.raw["length"]])
    x, steps = x0, [x0]
    for t in range(u.shape[1]):
        x = RK4().step(f, x, u[:, t], 0.02)
        steps.append(x)
    unbound = torch.stack(steps, 1)
    (gu,) = torch.autograd.grad(unbound.sum(), [f.raw["length"]])
    torch.testing.assert_close(bound, unbound, rtol=0, atol=1e-15)
    torch.testing.assert_close(gb, gu, rtol=1e-12, atol=1e-15)
