"""The families of issue 15: the conditional GAN, the physics-informed MLP and the Lagrangian field.

Each: its defining mechanics (the GAN's one scalar carrying both players' gradients; the PINN's collocation
states and residual; the Lagrangian's conserved and dissipated energy), a checkpoint round trip, and the
claim it exists for at a small scale (a small budget, tens of seconds at most).
"""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import physwm
from physwm.data import Trajectories, collect, make_policy
from physwm.evaluate import energy_error
from physwm.integrators import RK4
from physwm.models import build
from physwm.systems.cartpole import CartPole
from physwm.train import fit, load_checkpoint, save_checkpoint


def _windows(n: int, horizon: int, seed: int, box=(1.0, 1.0, 0.4, 1.5), force=10.0) -> dict:
    """``n`` windows of ``horizon`` steps of CartPole-v1's physics (RK4), starts uniform in ``+-box``."""
    g = torch.Generator().manual_seed(seed)
    x0 = (2 * torch.rand(n, 4, generator=g, dtype=torch.float64) - 1) * torch.tensor(box, dtype=torch.float64)
    u = (2 * torch.rand(n, horizon, 1, generator=g, dtype=torch.float64) - 1) * force
    with torch.no_grad():
        s = RK4(substeps=4).rollout(CartPole().double(), x0, u, 0.02)
    return {"states": s.float(), "controls": u.float()}


def _one_step_mse(model, data) -> float:
    w = data.windows(1) if isinstance(data, Trajectories) else data
    with torch.no_grad():
        pred = model.step(w["states"][:, 0], w["controls"][:, 0])
    return float(model.scaled_error(pred, w["states"][:, 1]).pow(2).mean())


# -- GAN ------------------------------------------------------------------------------------------------


def test_gan_loss_is_the_generator_objective_and_carries_each_players_own_gradient():
    batch = _windows(32, 1, seed=0)
    model = build("gan", hidden=[16, 16], disc_hidden=[16], adversarial_weight=0.5)
    model.fit_normalization(batch["states"], batch["controls"])
    model.eval()  # z = 0: the same noise in every call below
    loss, metrics = model.loss(batch)
    assert float(loss.detach()) == pytest.approx(metrics["mse"] + 0.5 * metrics["g_adv"], rel=1e-6)
    gen, disc = list(model.generator.parameters()), list(model.discriminator.parameters())
    g_total = torch.autograd.grad(loss, gen + disc)
    # the same terms computed by hand, each with the gradient it should carry
    s, c = batch["states"], batch["controls"]
    x, real = s[:, 0], model.delta_norm.normalize(s[:, 1] - s[:, 0])
    z = torch.zeros(32, model.noise_dim)
    fake = model.generate(x, c[:, 0], z)
    recon = model.scaled_error(model.delta_norm.denormalize(fake) + x, s[:, 1]).pow(2).mean()
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    g_adv = bce(model.critic(x, c[:, 0], fake), torch.ones(32))
    d_loss = bce(model.critic(x, c[:, 0], real), torch.ones(32)) + bce(model.critic(x, c[:, 0], fake.detach()),
                                                                        torch.zeros(32))
    g_gen = torch.autograd.grad(recon + 0.5 * g_adv, gen)  # the generator's gradient: no discriminator loss
    g_disc = torch.autograd.grad(d_loss, disc)  # the discriminator's: its own loss only
    for a, b in zip(g_total, g_gen + g_disc):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert all(float(g.abs().sum()) > 0 for g in g_disc)


def test_gan_predicts_with_the_noise_mode_and_samples_with_a_generator():
    model = build("gan", hidden=[16], disc_hidden=[16])
    x, u = torch.randn(5, 4), torch.randn(5, 1)
    a, b = model.step(x, u), model.step(x, u)
    assert torch.equal(a, b)
    s1 = model.sample_step(x, u, torch.Generator().manual_seed(0))
    s2 = model.sample_step(x, u, torch.Generator().manual_seed(0))
    s3 = model.sample_step(x, u, torch.Generator().manual_seed(1))
    assert torch.equal(s1, s2) and not torch.equal(s1, s3) and not torch.equal(s1, a)
    with pytest.raises(ValueError, match="adversarial_weight"):
        build("gan", adversarial_weight=-1.0)


def test_gan_one_step_error_within_10x_of_the_mlp_and_50_step_rollouts_stable():
    """The claim at a small scale: CartPole-v1 random data, both fitted by plain ``fit`` alike; 50-step
    rollouts under random +-10 N pushes on CartPole-v1's physics without termination (CartPole-v1's random
    episodes last about 20 steps, so no 50-step window exists in its own data)."""
    data = collect(gym.make("CartPole-v1"), make_policy("random"), episodes=40, max_steps=200, seed=0,
                   progress=False).to(torch.float32)
    train, val, test = data.split((0.6, 0.2, 0.2), seed=0)
    env = gym.make("physwm/CartPole-v0", terminate=False, integrator="euler", max_episode_steps=60)
    w = collect(env, make_policy("random"), episodes=8, max_steps=50, seed=5, progress=False).to(torch.float32)
    w = w.windows(50)
    finite = train.states[torch.isfinite(train.states).all(-1)]
    spread = finite.std(0)
    one_step, fifty = {}, {}
    for name, opts in (("mlp", {"hidden": [64, 64]}), ("gan", {"hidden": [64, 64], "disc_hidden": [64]})):
        model = build(name, seed=0, **opts)
        fit(model, train, val, epochs=15, batch_size=128, lr=3e-3, lr_schedule="cosine", progress=False)
        one_step[name] = _one_step_mse(model.eval(), test)
        with torch.no_grad():
            pred = model.rollout(w["states"][:, 0], w["controls"])
        assert torch.isfinite(pred).all(), name
        fifty[name] = float(((pred[:, -1] - w["states"][:, -1]) / spread).pow(2).mean().sqrt())
    assert one_step["gan"] < 10 * one_step["mlp"], one_step
    # stable: 50 steps out of the data's range (the pole falls) and no further off than the MLP
    assert fifty["gan"] < 1.5 * fifty["mlp"], fifty


# -- physics-informed MLP -------------------------------------------------------------------------------


def test_pinn_collocation_pairs_lie_in_the_box_outside_the_data_and_are_reproducible():
    batch = _windows(64, 3, seed=1, box=(0.5, 0.5, 0.3, 1.0), force=5.0)
    model = build("pinn_mlp", hidden=[16], collocation=100, collocation_scale=3.0)
    model.fit_normalization(batch["states"], batch["controls"])
    pairs = torch.cat((batch["states"][:, :-1], batch["controls"]), -1).reshape(-1, 5)
    lo, hi = pairs.min(0).values, pairs.max(0).values
    torch.testing.assert_close(model.data_low, lo)
    torch.testing.assert_close(model.data_high, hi)
    mid, half = (lo + hi) / 2, 3 * (hi - lo) / 2
    half[2] = max(float(half[2]), float(hi[2] - lo[2]) / 2 + math.pi)  # theta: at least a turn beyond the data
    torch.testing.assert_close(model.colloc_low, mid - half)
    x, u = model.collocation_pairs(0, torch.float32)
    p = torch.cat((x, u), -1)
    assert 90 <= p.shape[0] <= 100
    assert ((p >= mid - half - 1e-6) & (p <= mid + half + 1e-6)).all()
    assert (~((p >= lo) & (p <= hi)).all(-1)).all()  # none inside the data's box
    x2, _ = model.collocation_pairs(0, torch.float32)
    x3, _ = model.collocation_pairs(1, torch.float32)
    assert torch.equal(x, x2) and not torch.equal(x, x3)


def test_pinn_loss_is_the_mlps_plus_the_weighted_physics_residual():
    batch = _windows(16, 2, seed=2)
    model = build("pinn_mlp", hidden=[16], physics_weight=0.3, collocation=50)
    model.fit_normalization(batch["states"], batch["controls"])
    mlp = build("mlp", hidden=[16])
    mlp.load_state_dict({k: v for k, v in model.state_dict().items() if k in mlp.state_dict()})
    loss, metrics = model.loss(batch)
    data, _ = mlp.loss(batch)
    x, u = model.collocation_pairs(0, torch.float32)  # the draw the loss above used
    with torch.no_grad():
        target = RK4().step(CartPole(), x, u, 0.02)
    residual = (model.step(x, u) - target) / model.delta_norm.std
    torch.testing.assert_close(loss, data + 0.3 * residual.pow(2).mean(), rtol=1e-5, atol=1e-7)
    assert metrics["physics"] == pytest.approx(float(residual.pow(2).mean()), rel=1e-5)
    model.physics_weight = 0.0
    assert torch.equal(model.loss(batch)[0], data)


def _friction_data(episodes: int, seed: int, low, high, force: float) -> Trajectories:
    env = gym.make("physwm/CartPole-v0", params=physwm.FRICTION_PARAMS, terminate=False, max_episode_steps=100)
    data = collect(env, make_policy("uniform", force_mag=force), episodes=episodes, max_steps=100, seed=seed,
                   start_low=low, start_high=high, progress=False)
    env.close()
    return data.to(torch.float32)


def test_pinn_mlp_extrapolates_better_than_the_plain_mlp_on_the_friction_task():
    """Trained on the pole hanging (+-1 rad) under forces <= 5 N; tested on forces up to 15 N."""
    hanging = ([-0.5, -0.5, math.pi - 1, -1.0], [0.5, 0.5, math.pi + 1, 1.0])
    train = _friction_data(12, 0, *hanging, force=5.0)
    val = _friction_data(3, 1, *hanging, force=5.0)
    strong = _friction_data(4, 2, *hanging, force=15.0)
    errors = {}
    for name in ("mlp", "pinn_mlp"):
        model = build(name, hidden=[64, 64], seed=0)
        fit(model, train, val, steps=300, lr=3e-3, lr_schedule="cosine", grad_clip=10.0, progress=False)
        errors[name] = _one_step_mse(model.eval(), strong)
    # measured: 1.6x on these data (4.2x on the data of an earlier collect with another policy stream): the
    # physics term's gain depends on how far the training data leave the MLP to guess; 1.25x is the claim
    assert errors["pinn_mlp"] < errors["mlp"] / 1.25, errors


# -- Lagrangian -----------------------------------------------------------------------------------------


def _perturbed_lagrangian(dissipation: bool = True, seed: int = 0):
    model = build("lagrangian", hidden=[16, 16], dissipation=dissipation).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def _energy_rate(field, x, u):
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(field.energy(x).sum(), x)
    return (grad * field(x, u)).sum(-1)


def test_lagrangian_field_conserves_its_energy_without_control_and_only_loses_it_to_dissipation():
    x = torch.randn(64, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 2
    zero = torch.zeros(64, 1, dtype=torch.float64)
    conservative = _perturbed_lagrangian(dissipation=False).field
    assert float(_energy_rate(conservative, x, zero).abs().max()) < 1e-10  # dE/dt = 0 by construction
    field = _perturbed_lagrangian(dissipation=True).field
    rate = _energy_rate(field, x, zero)
    assert float(rate.max()) <= 1e-12 and float(rate.min()) < -1e-3  # dissipation only removes energy
    M = field.mass_matrix(x[:, [0, 2]])
    assert torch.allclose(M, M.mT) and (torch.linalg.eigvalsh(M) > 0).all()
    # translations do not enter (coordinates="angles"): the field is invariant to the cart's position
    shifted = x + torch.tensor([3.0, 0.0, 2 * math.pi, 0.0], dtype=torch.float64)
    torch.testing.assert_close(field(shifted, zero), field(x, zero), rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="coordinates"):
        build("lagrangian", coordinates="cartesian")


def test_lagrangian_energy_error_far_below_the_neural_odes_on_the_same_data():
    """The claim at a small scale: frictionless full swings, 500 transitions, the same fit for both; energy
    error of 200-step free swings (no force: the true energy is constant). Both must also have fitted the
    data alike, so no model wins by standing still."""
    data = _windows(60, 10, seed=4, box=(0.5, 0.5, math.pi, 6.0))
    train = Trajectories(data["states"][:50], data["controls"][:50], dt=0.02)
    val = Trajectories(data["states"][50:], data["controls"][50:], dt=0.02)
    g = torch.Generator().manual_seed(5)
    x0 = (2 * torch.rand(16, 4, generator=g, dtype=torch.float64) - 1) * torch.tensor([0.5, 0.5, math.pi, 6.0],
                                                                                     dtype=torch.float64)
    u0 = torch.zeros(16, 200, 1, dtype=torch.float64)
    with torch.no_grad():
        true = RK4(substeps=4).rollout(CartPole().double(), x0, u0, 0.02)
    energy = CartPole().double().energy
    errors, fitted = {}, {}
    for name in ("node", "lagrangian"):
        model = build(name, hidden=[32, 32], integrator="euler", seed=0)
        history = fit(model, train, val, steps=150, lr=1e-2, lr_schedule="cosine", grad_clip=10.0, progress=False)
        with torch.no_grad():
            pred = model.rollout(x0.float(), u0.float()).double()
        errors[name] = float(energy_error(pred, true, energy)[-1])
        fitted[name] = history.val_error[-1]
    # both fit the data alike (validation RMSE in units of the state spread, about 0.27 after the first epoch)
    assert max(fitted.values()) < 0.12 and fitted["lagrangian"] < 1.5 * fitted["node"], fitted
    assert errors["lagrangian"] < errors["node"] / 10, errors


# -- checkpoints ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gan", "pinn_mlp", "lagrangian"])
def test_checkpoint_round_trip_rebuilds_the_family_from_its_build_spec(name, tmp_path):
    batch = _windows(8, 2, seed=6)
    model = build(name, hidden=[16], seed=3)
    model.fit_normalization(batch["states"], batch["controls"])
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(7)))
    model.eval()
    path = save_checkpoint(tmp_path / f"{name}.pt", model)
    loaded, state = load_checkpoint(path)
    assert type(loaded) is type(model) and state["build_spec"] == model.build_spec
    x0, u = batch["states"][:, 0], batch["controls"]
    with torch.no_grad():
        assert torch.equal(loaded.eval().rollout(x0, u), model.rollout(x0, u))
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    np.testing.assert_equal(state["model_class"].rsplit(".", 1)[-1], type(model).__name__)
