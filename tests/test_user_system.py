"""A system written only in this file, against physwm's public API: registered, collected, fitted, saved,
reloaded, evaluated, plotted and planned with, without touching physwm/."""

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import matplotlib
import numpy as np
import pytest
import torch

import physwm
from physwm import Constant, Parameters, Quantity, System, build, fit, load_checkpoint, save_checkpoint
from physwm.control import make_planner, run_episode
from physwm.evaluate import evaluate
from physwm.systems import SYSTEMS, Task, get_system, register_system

matplotlib.use("Agg")


@dataclass(frozen=True)
class CartSpringParams(Parameters):
    """A cart on a spring with viscous friction, pushed by a force."""

    stiffness: Any = 4.0  # N/m
    friction: Any = 0.0  # N s/m
    mass: Any = 1.0  # kg
    dt: float = 0.05  # s
    max_force: float = 2.0  # N

    positive_fields = ("stiffness", "mass", "dt", "max_force")
    nonnegative_fields = ("friction",)


def cart_spring(x: torch.Tensor, u: torch.Tensor, p: CartSpringParams) -> torch.Tensor:
    pos, vel = x[..., 0], x[..., 1]
    return torch.stack((vel, (u[..., 0] - p.stiffness * pos - p.friction * vel) / p.mass), dim=-1)


def regulate_cost(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    return x[..., 0].square() + 0.1 * x[..., 1].square() + 0.01 * u[..., 0].square()


def regulated(states: np.ndarray) -> bool:
    return bool(np.abs(states[-10:, 0]).max() < 0.05)


class CartSpring(System):
    name = "test_cart_spring"
    Params = CartSpringParams
    states = (Quantity("pos", "m", "position", "spring extension s (m)"),
              Quantity("vel", "m/s", "velocity", "cart speed ds/dt (m/s)"))
    controls = (Quantity("force", "N"),)
    position_index, velocity_index = (0,), (1,)
    constants = {"stiffness": Constant(4.0, floor=1e-3), "friction": Constant(0.1)}
    identify = ("stiffness", "friction")
    env_id = "physwm_test/CartSpring-v0"
    reset_low, reset_high = (-1.0, -1.0), (1.0, 1.0)
    variants = {"nominal": CartSpringParams(), "friction": CartSpringParams(friction=0.3)}
    true_variant = "friction"
    dynamics = staticmethod(cart_spring)

    @classmethod
    def control_bounds(cls, params):
        f = float(params.max_force)
        return np.array([-f]), np.array([f])

    @classmethod
    def tasks(cls, params=None):
        return {"regulate": Task("regulate", regulate_cost, 60, regulated, start_low=(0.8, -0.1),
                                 start_high=(1.0, 0.1), horizon=15)}


@pytest.fixture(scope="module")
def registered():
    assert register_system(CartSpring) is CartSpring
    assert register_system(CartSpring) is CartSpring  # idempotent
    return CartSpring


def test_registration_makes_the_system_and_its_environment_known(registered):
    assert SYSTEMS["test_cart_spring"] is CartSpring and get_system("test_cart_spring") is CartSpring
    env = gym.make("physwm_test/CartSpring-v0", params=CartSpringParams(friction=0.3))
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2,) and env.action_space.high.tolist() == [2.0]
    _, _, _, _, info = env.step([5.0])
    assert info["force"] == 2.0  # clipped to the system's bound
    assert "physwm_test/CartSpring-v0" in physwm.envs.env_ids()
    assert physwm.make_policy("uniform").bind(CartSpring()).force_mag == 2.0


def test_fit_save_reload_evaluate_plot_plan(registered, tmp_path):
    torch.manual_seed(0)
    env = physwm.envs.make_env(system="test_cart_spring", max_episode_steps=60)  # the friction variant
    data = physwm.collect(env, "uniform", episodes=12, max_steps=60, seed=0, progress=False)
    assert data.meta["system"] == "test_cart_spring" and data.meta["state_names"] == ["pos", "vel"]
    train, val = data.to(torch.float32).split((0.75, 0.25), seed=0)
    # the explicit model identifies the friction the nominal constants lack
    explicit = build("explicit", CartSpringParams())
    fit(explicit, train, val, epochs=60, lr=0.05, progress=False)
    assert explicit.field.identified()["friction"] == pytest.approx(0.3, abs=0.03)
    hybrid = build("hybrid", CartSpring)
    spec_system = hybrid.build_spec["options"]["system"]
    assert spec_system == {"name": "test_cart_spring", "params": CartSpringParams().to_dict()}
    history = fit(hybrid, train, val, epochs=15, lr=0.01, constants_lr=0.05, progress=False)
    assert history.best_val_error < 0.05
    path = save_checkpoint(tmp_path / "hybrid.pt", hybrid)
    loaded, _ = load_checkpoint(path)  # rebuilt from its build_spec, by the system's name
    assert type(loaded.field.physics) is CartSpring
    x0, u = val.states[:, 0], val.controls
    torch.testing.assert_close(loaded.rollout(x0, u), hybrid.rollout(x0, u))
    metrics = evaluate(loaded, val, horizons=[1, 20], true_params=CartSpring.variant("friction"))
    assert metrics["rmse@20"] < 0.2 and metrics["param_err[friction]"] < 0.5  # from 1.0 (nominal: none)
    fig = physwm.plot.phase_portrait(val.states[0], {"hybrid": loaded.rollout(x0, u)[0]}, system=CartSpring)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "spring extension s (m)" and ax.get_ylabel() == "cart speed ds/dt (m/s)"
    physwm.plot.save(fig, tmp_path / "phase.png")
    assert (tmp_path / "phase.png").stat().st_size > 1000
    # plan with the reloaded model on the true environment
    env = physwm.envs.make_env(system="test_cart_spring", task="regulate")
    task = CartSpring.tasks()["regulate"]
    options = physwm.control.default_planner_options(env, task)
    planner = make_planner("cem", loaded, task.cost, population=64, iterations=3, seed=0, **options)
    episode = run_episode(planner, env, task, seed=0)
    assert episode.system == "test_cart_spring" and episode.steps == 60
    assert episode.success, episode.states[-10:]
    fig = physwm.plot.episode_figure(episode)
    assert any(a.get_ylabel().startswith("spring extension") for a in fig.axes)


def test_register_system_errors(registered):
    with pytest.raises(TypeError, match="subclass of physwm.System"):
        register_system(int)

    class NoEquations(System):
        name = "no_equations"
        states = (Quantity("x", "m"),)

    with pytest.raises(TypeError, match="must define its equations"):
        register_system(NoEquations)

    class Clash(CartSpring):
        name = "pendulum"

    with pytest.raises(ValueError, match="built-in Pendulum"):
        register_system(Clash)

    class SameEnv(CartSpring):
        name = "test_same_env"

    with pytest.raises(ValueError, match="is the environment of CartSpring"):
        register_system(SameEnv)

    class Taken(CartSpring):
        name = "test_cart_spring"
        env_id = "physwm_test/Other-v0"

    with pytest.raises(ValueError, match="taken by"):
        register_system(Taken)

    class BadShape(CartSpring):
        name = "test_bad_shape"
        env_id = None
        dynamics = staticmethod(lambda x, u, p: x[..., :1])

    with pytest.raises(ValueError, match=r"must return dx/dt of shape \[\.\.\., 2\]"):
        register_system(BadShape)

    class NoBox(CartSpring):
        name = "test_no_box"
        env_id = "physwm_test/NoBox-v0"
        reset_low = None

    with pytest.raises(ValueError, match="needs reset_low"):
        register_system(NoBox)

    class UnknownConstant(CartSpring):
        name = "test_unknown_constant"
        env_id = None
        constants = {"stifness": Constant(1.0)}

    with pytest.raises(ValueError, match="not fields of CartSpringParams"):
        register_system(UnknownConstant)
    assert "test_no_box" not in SYSTEMS and "physwm_test/NoBox-v0" not in gym.registry
    with pytest.raises(ValueError, match="register_system"):
        get_system("not_registered")
