"""Build the example notebooks from the cells below (run: ``python notebooks/_build.py``).

The notebooks are generated, never edited by hand, so they stay reproducible; they are committed without
outputs and executed top to bottom by ``tests/test_notebooks.py``. Each runs in well under a minute.
Only the notebooks listed in ``NOTEBOOKS`` are (re)written; other notebooks in this folder are left alone
(``_build_families.py`` writes the policy-learning and structure-preserving ones with the helpers below).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str):
    return new_code_cell(text.strip("\n"))


QUICKSTART = [
    md("""
# Quickstart: collect, fit, roll out, plot

physwm fits dynamics models ("world models") of CartPole behind one interface. This notebook collects data
from gymnasium's `CartPole-v1`, fits two models (the CartPole equations with a learnable pole length and
mass, and an MLP), rolls them out open loop, and plots the result. It runs in a few seconds.
"""),
    code("""
import gymnasium as gym
import torch

import physwm  # registers the physwm/CartPole-v0 environment
from physwm import plot
from physwm.data import collect
from physwm.evaluate import evaluate
from physwm.models import build
from physwm.train import fit

torch.set_num_threads(1)  # tiny networks run fastest on one thread
"""),
    md("""
## 1. Collect

`collect` runs a policy and records the exact float64 state and the force (N) of every step. Gymnasium's
random policy pushes the cart left or right with 10 N; episodes end when the pole passes 12 degrees.
"""),
    code("""
data = collect(gym.make("CartPole-v1"), "random", episodes=120, max_steps=200, seed=0, progress=False)
print(data.summary())
train, val, test = data.split((0.7, 0.15, 0.15), seed=0)
"""),
    md("""
## 2. Fit

`build(name)` gives each model family's recommended configuration; `fit` trains any of them through
`model.loss(batch)`. The explicit model integrates the CartPole equations with Euler, as gymnasium does,
and identifies the pole's half-length and mass (started 20% off).
"""),
    code("""
nominal = physwm.CartPoleParams(length=0.6, masspole=0.12)  # a wrong guess of the constants
models = {
    "explicit": build("explicit", nominal, learnable=["length", "masspole"], integrator="euler"),
    "mlp": build("mlp", seed=0),
}
for name, model in models.items():
    history = fit(model, train, val, epochs=40, lr=0.05 if name == "explicit" else 3e-3, progress=False)
    print(f"{name:8s} {history.message}; best 10-step validation RMSE {history.best_val_error:.2e}")
print("identified:", {k: round(v, 4) for k, v in models["explicit"].field.identified().items()},
      "(true: length 0.5, masspole 0.1)")
"""),
    md("""
## 3. Evaluate

`evaluate` reports every metric on held-out episodes: one-step MSE, open-loop rollout RMSE at several
horizons (in units of the test data's state spread), valid prediction time. CartPole-v1 episodes are short,
so the horizons are too.
"""),
    code("""
for name, model in models.items():
    r = evaluate(model, test, horizons=[1, 5, 10])
    print(f"{name:8s} rmse@1 {r['rmse@1']:.2e}  rmse@10 {r['rmse@10']:.2e}  valid for {r['vpt_s']:.2f} s")
"""),
    md("""
## 4. Roll out beyond the data

A full swing of the pole (physwm's CartPole environment, same equations and Euler step, no termination),
predicted open loop from its first state under the recorded forces. The explicit model extrapolates; the
MLP only knew small angles.
"""),
    code("""
swing_env = gym.make("physwm/CartPole-v0", terminate=False, integrator="euler", substeps=1)
swing = collect(swing_env, "random", episodes=1, max_steps=150, seed=1,
                start_low=[0, 0, 2.5, 0], start_high=[0, 0, 2.5, 0], progress=False)
x0, u = swing.states[:, 0], swing.controls
with torch.no_grad():
    predictions = {name: m.rollout(x0.float(), u.float())[0] for name, m in models.items()}
fig = plot.phase_portrait(swing.states[0], predictions, train=train.states,
                          title="a full swing, never seen in training")
"""),
]


HYBRID = [
    md("""
# Hybrid vs implicit on a CartPole with friction

The "true" system has cart friction (viscous and Coulomb) and pole damping that the nominal CartPole
equations lack. A **hybrid** model integrates the nominal, frictionless equations plus a small network
(the residual) that adds accelerations; the residual starts at zero, so the untrained hybrid *is* the
physics. An **implicit** model (an MLP) learns the whole step from data. Both see the same 1,000
transitions of the pole swinging below the cart, and are then asked about swings over the top.
"""),
    code("""
import math

import gymnasium as gym
import numpy as np
import torch

from physwm import CartPole, CartPoleParams, plot
from physwm.data import collect, make_policy
from physwm.envs import FRICTION_PARAMS
from physwm.evaluate import evaluate, state_scale
from physwm.models import build
from physwm.train import fit

torch.set_num_threads(1)
print(FRICTION_PARAMS)
"""),
    code("""
env = gym.make("physwm/CartPole-v0", params=FRICTION_PARAMS, terminate=False, max_episode_steps=200)
pi = math.pi
hanging = dict(start_low=[-0.5, -0.5, pi - 1, -1], start_high=[0.5, 0.5, pi + 1, 1])  # pole below the cart
policy = make_policy("uniform", force_mag=5.0)  # random forces of at most 5 N
data = collect(env, policy, episodes=12, max_steps=100, seed=0, progress=False, **hanging)
train, val = data.split((0.8, 0.2), seed=0)
test = collect(env, policy, episodes=2, max_steps=150, seed=1, progress=False, **hanging)
swings = collect(env, policy, episodes=2, max_steps=150, seed=2, progress=False,
                 start_low=[-0.5, -0.5, -pi, -6], start_high=[0.5, 0.5, pi, 6])  # over the top
print(train.summary())
"""),
    md("""
The hybrid's physics is the frictionless CartPole-v1 model with no learnable constant (`learnable=[]`):
everything friction does must come from the residual, a 32x32 tanh network of
`[sin theta, cos theta, x_dot, theta_dot, force]` acting on the two accelerations.
"""),
    code("""
models = {
    "physics only": build("explicit", learnable=[]),
    "hybrid": build("hybrid", learnable=[], penalty=1e-3, seed=0),
    "mlp": build("mlp", seed=0),
}
for name in ("hybrid", "mlp"):
    history = fit(models[name], train, val, epochs=150, lr=3e-3, lr_schedule="cosine", progress=False)
    print(f"{name:7s} {history.message}")
"""),
    code("""
rows = []
for split, d in {"in distribution": test, "full swings": swings}.items():
    for name, m in models.items():
        r = evaluate(m, d, horizons=[10, 50, 100], scale=state_scale(d))
        rows.append((split, name, r["rmse@10"], r["rmse@50"], r["rmse@100"]))
print(f"{'split':16s} {'model':13s} {'rmse@10':>9s} {'rmse@50':>9s} {'rmse@100':>9s}")
for split, name, *errs in rows:
    print(f"{split:16s} {name:13s}" + "".join(f" {e:9.3g}" for e in errs))
"""),
    md("""
## What did the residual learn?

The term the nominal physics misses is `f_true(x, u) - f_nominal(x, u)`. Along the cart velocity (pole
hanging, at rest) it is the friction deceleration of the cart, a smoothed step (Coulomb) plus a slope
(viscous); along the pole's angular velocity it is the joint damping. The shaded band is the range the
training data covered: outside it the network extrapolates.
"""),
    code("""
true_field, nominal = CartPole(FRICTION_PARAMS), CartPole(CartPoleParams())
hybrid_field = models["hybrid"].field
valid = torch.arange(train.states.shape[1])[None, :] <= train.lengths[:, None]
seen = train.states[valid]
sweeps = []
for col, label, unit, grid in [(1, "cart velocity dx/dt (m/s)", "m/s²", np.linspace(-3, 3, 121)),
                               (3, "pole angular velocity dθ/dt (rad/s)", "rad/s²", np.linspace(-8, 8, 121))]:
    x = torch.zeros(len(grid), 4, dtype=torch.float64)
    x[:, 2] = pi
    x[:, col] = torch.from_numpy(grid)
    u = torch.zeros(len(grid), 1, dtype=torch.float64)
    with torch.no_grad():
        missing = (true_field(x, u) - nominal(x, u))[:, col]
        learned = (hybrid_field(x.float(), u.float()) - hybrid_field.physics(x.float(), u.float()))[:, col]
    seen_range = (float(seen[:, col].min()), float(seen[:, col].max()))
    sweeps.append({"x": grid, "true": missing, "learned": {"hybrid": learned}, "xlabel": label,
                   "ylabel": f"acceleration ({unit})", "train_range": seen_range})
fig = plot.residual(sweeps, title="hybrid residual vs the friction the physics misses")
"""),
    code("""
x0, u = swings.states[:1, 0], swings.controls[:1]
with torch.no_grad():
    predictions = {name: m.rollout(x0.float(), u.float())[0] for name, m in models.items()}
fig = plot.phase_portrait(swings.states[0], predictions, train=seen,
                          title="open-loop prediction of a swing over the top")
"""),
]


EXTRAPOLATION = [
    md("""
# An extrapolation study

`physwm.studies` trains every model family on the same data and seeds, and evaluates each on an
in-distribution split and on extrapolation splits the training data never saw. Here a small study on the
CartPole with friction: three models, one seed, a heavier pole and full swings as extrapolation splits, and
a data-efficiency sweep. The same configuration, saved as JSON, runs from the shell:
`physwm compare --config study.json --out DIR`. (`physwm demo` runs the full default study.)
"""),
    code("""
import math
import tempfile
from pathlib import Path

import torch
from IPython.display import Image, Markdown, display

from physwm.envs import FRICTION_PARAMS
from physwm.studies import (
    STUDY_FIT,
    DataEfficiencyConfig,
    HeadlineConfig,
    ModelConfig,
    SplitConfig,
    StudyConfig,
    TaskConfig,
    run_study,
)

torch.set_num_threads(1)
"""),
    code("""
pi = math.pi
friction = {k: v for k, v in FRICTION_PARAMS.to_dict().items() if k in ("cart_viscous", "cart_coulomb", "pole_damping")}
common = dict(env_options={"terminate": False}, policy_options={"force_mag": 5.0})
hanging = dict(start_low=[-0.5, -0.5, pi - 1, -1], start_high=[0.5, 0.5, pi + 1, 1], **common)
task = TaskConfig(
    name="friction",
    description="CartPole with friction, pole hanging, forces <= 5 N",
    params=friction,
    train=SplitConfig("train", "in", episodes=8, max_steps=100, seed=0, **hanging),
    val=SplitConfig("val", "in", episodes=2, max_steps=100, seed=1, **hanging),
    tests=[
        SplitConfig("in_dist", "in", episodes=2, max_steps=120, seed=2, description="as training", **hanging),
        SplitConfig("full_swings", "out", episodes=2, max_steps=120, seed=3, description="swings over the top",
                    start_low=[-0.5, -0.5, -pi, -6], start_high=[0.5, 0.5, pi, 6], **common),
        SplitConfig("heavier_pole", "out", episodes=2, max_steps=120, seed=4, params={"masspole": 0.2},
                    description="pole mass 0.1 -> 0.2 kg", **hanging),
    ],
)
config = StudyConfig(
    name="notebook extrapolation study",
    tasks=[task],
    models=[ModelConfig("hybrid", options={"learnable": [], "penalty": 1e-3}), ModelConfig("node"), ModelConfig("mlp")],
    seeds=[0],
    train_transitions=800,
    data_efficiency=DataEfficiencyConfig(task="friction", sizes=[200, 800]),
    headline=HeadlineConfig(task="friction", horizon=100),
    horizons=[1, 10, 50, 100],
    max_windows=16,
    fit=STUDY_FIT.replace(steps=200, epochs=50, val_max_windows=64),
).validate()
out = Path(tempfile.mkdtemp(prefix="physwm_study_"))
config.to_json(out.parent / f"{out.name}.json")  # the same study, for `physwm compare --config`
result = run_study(config, out, progress=False)
print(f"{result.runs_done} runs trained in {result.wall_time_s:.1f} s; results in {out}")
"""),
    md("""
Every run wrote its own result file; running the same study again resumes, and finds nothing to redo:
"""),
    code("""
again = run_study(config, out, progress=False)
print(f"{again.runs_done} of {again.runs_total} runs trained on the second call")
"""),
    code("""
display(Markdown((out / "results.md").read_text()))
"""),
    code("""
display(Image(str(out / "figures" / "error_vs_horizon_friction.png")))
display(Image(str(out / "figures" / "data_efficiency.png")))
"""),
]


PHASE = [
    md("""
# Phase portraits and vector fields

Without friction and without force the CartPole conserves energy, and the pole's motion traces closed
orbits in the (theta, theta_dot) plane. We fit three models to swings of a frictionless CartPole driven by
small random forces, then let each predict free motion (zero force) from several starts, and compare
orbits, energy and the learned vector fields with the truth.
"""),
    code("""
import math

import gymnasium as gym
import numpy as np
import torch

from physwm import CartPole, plot
from physwm.data import collect, make_policy
from physwm.models import ODEModel, build
from physwm.train import fit

torch.set_num_threads(1)
pi = math.pi
env = gym.make("physwm/CartPole-v0", terminate=False, max_episode_steps=200)  # frictionless, RK4
data = collect(env, make_policy("uniform", force_mag=2.0), episodes=20, max_steps=100, seed=0, progress=False,
               start_low=[-0.3, -0.3, pi - 2.0, -2], start_high=[0.3, 0.3, pi + 2.0, 2])
train, val = data.split((0.8, 0.2), seed=0)
"""),
    code("""
models = {
    "explicit": build("explicit", learnable=["length"]),  # the equations, pole length to identify
    "node": build("node", seed=0),                         # a Neural ODE: a learned vector field
    "mlp": build("mlp", seed=0),                           # an implicit step predictor
}
for name, m in models.items():
    history = fit(m, train, val, epochs=40, lr=0.05 if name == "explicit" else 3e-3, progress=False)
    print(f"{name:8s} {history.message}; best validation RMSE {history.best_val_error:.3g}")
"""),
    code("""
starts = torch.tensor([[0, 0, pi - 0.5, 0], [0, 0, pi - 1.5, 0], [0, 0, pi - 2.5, 0.0]], dtype=torch.float64)
def free(state, rng):
    return 0.0  # no force: energy is conserved

truth = []
for s in starts:
    truth.append(collect(env, free, episodes=1, max_steps=150, seed=0, start_low=s.tolist(),
                         start_high=s.tolist(), progress=False).states[0])
truth = torch.stack(truth)
u = torch.zeros(len(starts), 150, 1)
with torch.no_grad():
    predictions = {name: m.rollout(starts.float(), u) for name, m in models.items()}
fig = plot.phase_portrait(truth, predictions, train=train.states, title="free motion: truth and predictions")
"""),
    code("""
energy = CartPole().energy
t = np.arange(truth.shape[1]) * 0.02
fig = plot.energy(t, energy(truth[2]), {n: energy(p[2].double()) for n, p in predictions.items()},
                  title="energy of the largest swing (conserved by the truth)")
"""),
    code("""
gx, gy = np.linspace(0, 2 * pi, 25), np.linspace(-6, 6, 25)
TH, TD = np.meshgrid(gx, gy)
x = torch.zeros(TH.size, 4)
x[:, 2], x[:, 3] = torch.from_numpy(TH.ravel()).float(), torch.from_numpy(TD.ravel()).float()
u0 = torch.zeros(TH.size, 1)
with torch.no_grad():
    true_f = CartPole()(x.double(), u0.double())[:, [2, 3]].reshape(25, 25, 2)
    learned = {}
    for name, m in models.items():
        f = m.field(x, u0) if isinstance(m, ODEModel) else (m.step(x, u0) - x) / m.dt
        learned[name] = f[:, [2, 3]].reshape(25, 25, 2)
valid = torch.arange(train.states.shape[1])[None, :] <= train.lengths[:, None]
fig = plot.vector_field(gx, gy, true_f, learned, train=train.states[valid][:, [2, 3]],
                        title="(θ, dθ/dt) at x = dx/dt = 0, no force")
"""),
]

OWN_SYSTEM = [
    md("""
# Your own system, in one file of code

physwm's models, training, evaluation, figures and planning read a system's *description* and never name a
system, so a system of your own works like the built-in ones. This notebook writes one, a pendulum with
viscous damping and quadratic air drag driven by a torque, registers it, collects data from its own
gymnasium environment, fits an explicit model, a hybrid and an MLP, saves and reloads a checkpoint, evaluates,
plots with the system's own labels and plans with the reloaded model. The recipe is `docs/systems.md`.
"""),
    code("""
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

import physwm
from physwm import Constant, Parameters, Quantity, System, build, fit
from physwm.control import default_planner_options, make_planner, run_episode
from physwm.evaluate import evaluate
from physwm.systems import Task

torch.set_num_threads(1)  # tiny networks run fastest on one thread
"""),
    md("""
## 1. Constants, equations, description

The constants are a frozen dataclass (SI units; fields that may be learned are typed `Any`, they then hold
tensors). The equations are one pure, batched torch function. The class describes the rest: the state and
control entries with units (the figures' labels), which constants may be learned and at what scale, the
environment's start box, torque bound and control task.
"""),
    code("""
@dataclass(frozen=True)
class DragPendulumParams(Parameters):
    omega0: Any = 3.0  # natural frequency, rad/s
    damping: Any = 0.0  # viscous damping rate, 1/s
    drag: Any = 0.0  # quadratic air drag, 1/rad
    inertia: float = 1.0  # kg m^2
    dt: float = 0.05  # control period of the environment, s
    max_torque: float = 10.0  # N m
    positive_fields = ("omega0", "inertia", "dt", "max_torque")
    nonnegative_fields = ("damping", "drag")


def drag_pendulum(x, u, p):
    \"\"\"dx/dt [..., 2] of x [..., 2] = (theta rad from hanging, theta_dot rad/s) under u [..., 1] (N m).\"\"\"
    theta, theta_dot = x[..., 0], x[..., 1]
    acc = -p.omega0**2 * torch.sin(theta) - p.damping * theta_dot - p.drag * theta_dot * theta_dot.abs()
    return torch.stack((theta_dot, acc + u[..., 0] / p.inertia), dim=-1)


def hold_cost(x, u):  # hold the pendulum at 1 rad
    return (x[..., 0] - 1.0).square() + 0.1 * x[..., 1].square()


def held(states):
    return bool(np.abs(states[-20:, 0] - 1.0).max() < 0.05)


class DragPendulum(System):
    name = "drag_pendulum"
    Params = DragPendulumParams
    states = (Quantity("theta", "rad", "angle", "angle θ from hanging (rad)"),
              Quantity("theta_dot", "rad/s", "angular_velocity", "angular velocity dθ/dt (rad/s)"))
    controls = (Quantity("torque", "N m", "other", "torque (N m)"),)
    position_index, velocity_index = (0,), (1,)
    constants = {"omega0": Constant(3.0, floor=1e-3), "damping": Constant(0.1)}
    identify = ("omega0", "damping")  # the drag is not in the model's equations: a hybrid's residual must learn it
    env_id = "mine/DragPendulum-v0"
    reset_low, reset_high = (-1.0, -1.0), (1.0, 1.0)
    variants = {"nominal": DragPendulumParams(), "friction": DragPendulumParams(damping=0.3, drag=0.1)}
    true_variant = "friction"  # the truth its environment simulates by default
    dynamics = staticmethod(drag_pendulum)

    @classmethod
    def control_bounds(cls, params):
        return np.array([-params.max_torque]), np.array([params.max_torque])

    @classmethod
    def tasks(cls, params=None):
        return {"hold": Task("hold", hold_cost, 80, held, start_low=(-0.2, -0.2), start_high=(0.2, 0.2),
                             horizon=15)}


physwm.register_system(DragPendulum)  # checks the class, adds it to physwm.systems.SYSTEMS, makes its environment
"""),
    md("""
## 2. Data from its environment

`make_env(system=...)` gives the system's gymnasium environment with its true variant (damping and drag).
Training data: small swings under random torques; an extrapolation set starts much faster.
"""),
    code("""
env = physwm.envs.make_env(system="drag_pendulum", max_episode_steps=100)
data = physwm.collect(env, "uniform", episodes=12, max_steps=80, seed=0, progress=False,
                      start_low=(-1.0, -1.0), start_high=(1.0, 1.0))
fast = physwm.collect(env, "uniform", episodes=4, max_steps=80, seed=1, progress=False,
                      start_low=(-1.0, -8.0), start_high=(1.0, 8.0)).to(torch.float32)
print(data.summary())
train, val = data.to(torch.float32).split((0.8, 0.2), seed=0)
"""),
    md("""
## 3. Fit, save, reload

The physics-based models start from a wrong frequency and no friction. `constants_lr` gives the physical
constants a learning rate of their own.
"""),
    code("""
start = DragPendulumParams(omega0=2.5)
models = {"explicit": build("explicit", start), "hybrid": build("hybrid", start), "mlp": build("mlp", DragPendulum)}
for name, model in models.items():
    history = fit(model, train, val, epochs=30, lr=3e-3, constants_lr=None if name == "mlp" else 0.03,
                  progress=False)
    print(f"{name:8s} best 10-step validation RMSE {history.best_val_error:.3g}")
print("explicit:", models["explicit"].field.identified())
print("hybrid:  ", models["hybrid"].field.physics.identified(), "(true omega0 3, damping 0.3)")
path = physwm.save_checkpoint("hybrid.pt", models["hybrid"], overwrite=True)
hybrid, _ = physwm.load_checkpoint(path)  # rebuilt from its build_spec: the system by its registered name
"""),
    md("""
## 4. Evaluate and plot

Rollout errors in units of each set's state spread; the figures carry the system's own labels.
"""),
    code("""
truth = DragPendulum.variant("friction")
for name, model in {**models, "hybrid (reloaded)": hybrid}.items():
    m_val = evaluate(model, val, horizons=[20], true_params=truth)
    m_fast = evaluate(model, fast, horizons=[20], true_params=truth)
    print(f"{name:18s} rmse@20 validation {m_val['rmse@20']:.3f}, fast starts {m_fast['rmse@20']:.3f}")
x0, u = fast.states[:1, 0], fast.controls[:1, :40]
preds = {name: model.rollout(x0, u)[0].detach() for name, model in models.items()}
fig = physwm.plot.phase_portrait(fast.states[0, :41], preds, system=DragPendulum, train=train.states,
                                 title="a fast start, 40-step open-loop rollouts")
"""),
    md("""
## 5. Plan with the reloaded model

The system's own task (hold the pendulum at 1 rad) on its true environment, with CEM on the hybrid.
"""),
    code("""
task = DragPendulum.tasks()["hold"]
env = physwm.envs.make_env(system="drag_pendulum", task=task)
planner = make_planner("cem", hybrid, task.cost, population=64, iterations=2, seed=0,
                       **default_planner_options(env, task))
episode = run_episode(planner, env, task, seed=0)
print(episode.summary())
fig = physwm.plot.episode_figure(episode)
"""),
]


# -- issue 11: adapting to a changed system ---------------------------------------------------------------
ADAPTATION = [
    md("""
# Adapting to a changed system

A model trained on one CartPole is wrong on a CartPole with a heavier, longer pole: every model trained on
the original system is. A physics-based model's constants are exactly the few numbers that changed, so a
handful of transitions of the new system re-identify them (`physwm.adapt`), where an implicit network needs
far more. While planning, an `AdaptiveController` does the same online, every few control steps.
"""),
    code("""
import math
import warnings

import torch

import physwm
from physwm import FRICTION_PARAMS, adapt, build, collect, make_policy
from physwm.envs import make_env
from physwm.evaluate import rollout_rmse

torch.set_num_threads(1)
START = dict(start_low=[-0.5, -0.5, math.pi - 1, -1.0], start_high=[0.5, 0.5, math.pi + 1, 1.0])


def data(params, episodes, steps, seed):
    env = make_env("physwm/CartPole-v0", None, params, terminate=False)
    return collect(env, make_policy("uniform", force_mag=5.0), episodes, steps, seed, progress=False, **START)
"""),
    md("""
## 1. A model of the original system

The explicit model (CartPole's equations with six learnable constants), fitted on the CartPole with friction.
"""),
    code("""
original = data(FRICTION_PARAMS, 4, 200, 0)
model = build("explicit")
physwm.fit(model, original, progress=False, steps=200)
print({k: round(v, 4) for k, v in model.field.identified().items()})
"""),
    md("""
## 2. The system changes: pole 2x heavier and 1.5x longer

Thirty transitions of the new system are enough to re-identify the constants, with 95% intervals from the
Gauss-Newton Hessian of the loss. The original model is left as it was.
"""),
    code("""
changed = FRICTION_PARAMS.replace(masspole=0.2, length=0.75)
few, test = data(changed, 1, 30, 100), data(changed, 2, 200, 200)
adapted = adapt(model, few)
print(adapted.adaptation.summary())
print(f"rmse@100: fixed {rollout_rmse(model, test, 100):.3g}, adapted {rollout_rmse(adapted, test, 100):.3g}")
"""),
    md("""
One test episode of the changed system, open loop for 100 steps (2 s) from its first state, under its recorded
forces: the model of the original system drifts off, the adapted one stays on it.
"""),
    code("""
import matplotlib.pyplot as plt

x0, forces = test.states[:1, 0], test.controls[:1, :100]
with torch.no_grad():
    fixed_run, adapted_run = model.rollout(x0, forces)[0], adapted.rollout(x0, forces)[0]
t = torch.arange(101) * test.dt
fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(t, test.states[0, :101, 2], "k", lw=2, label="changed system")
ax.plot(t, fixed_run[:, 2], "--", label="original model")
ax.plot(t, adapted_run[:, 2], ":", lw=2, label="adapted on 30 transitions")
ax.set(xlabel="time (s)", ylabel="pole angle (rad)")
ax.legend()
plt.show()
"""),
    md("""
## 3. Online, while planning

`AdaptiveController` wraps a planner: every 10 steps it refits the constants to the last 50 transitions and
writes them into the planner's model (at every step while the estimate is still moving). Constants a window
cannot pin down (a cart at rest says nothing of its friction) keep their values, with a warning.
"""),
    code("""
from physwm.control import CEM, AdaptiveController, get_task, run_episode

env = make_env("physwm/CartPole-v0", "balance", changed)
task = get_task("balance")
planner = CEM(model, task.cost, bounds=(-10.0, 10.0), population=100, iterations=3, horizon=20, seed=0,
              terminal_cost=task.terminal_cost, fused=False)
controller = AdaptiveController(planner, every=10, window=50)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    episode = run_episode(controller, env, task, seed=0, steps=80)
print(episode.summary())
for h in controller.history[-3:]:
    print(h["step"], {k: round(v, 3) for k, v in h["constants"].items()}, "kept:", h["kept"])
controller.reset()  # the model's constants back to where they were
"""),
]

DISCOVERY = [
    md("""
# Discovering missing physics

A CartPole whose truth holds two effects of another *form* than the nominal friction family: quadratic
(aerodynamic) drag on the cart, `-0.2 x_dot |x_dot|` (m/s^2), and quadratic damping of the pole,
`-0.3 theta_dot |theta_dot|` (rad/s^2). `physwm.discover` measures what the nominal equations miss on
the training transitions, regresses it on CartPole's library of candidate terms (sequential thresholded
least squares, the threshold chosen on held-out transitions), refits the kept coefficients with the physical
constants through the integrator, and prints the equations with bootstrap inclusion probabilities and
intervals. It runs in about ten seconds.
"""),
    code("""
import matplotlib.pyplot as plt
import torch

import physwm
from physwm.models import HybridField, ODEModel, SymbolicField
from physwm.systems import CartPole

torch.set_num_threads(1)

# the truth: nominal CartPole plus the two terms (a SymbolicField with known coefficients)
true_terms = {"x_ddot": {"x_dot*|x_dot|": -0.2}, "theta_ddot": {"theta_dot*|theta_dot|": -0.3}}
sym = SymbolicField(CartPole, terms={row: list(t) for row, t in true_terms.items()})
xi = torch.zeros(2, len(sym.term_names))
for i, row in enumerate(sym.row_names):
    for term, value in true_terms[row].items():
        xi[i, sym.term_names.index(term)] = value
sym.set_coefficients(xi)
truth = ODEModel(HybridField(CartPole(), sym), "rk4", 0.02).double()

# 5,000 noiseless transitions under random forces from near-upright starts
g = torch.Generator().manual_seed(0)
box = torch.tensor([0.5, 2.0, 0.3, 3.0], dtype=torch.float64)
x0 = (torch.rand(50, 4, generator=g, dtype=torch.float64) * 2 - 1) * box
u = (torch.rand(50, 100, 1, generator=g, dtype=torch.float64) * 2 - 1) * 10
with torch.no_grad():
    states = truth.rollout(x0, u)
data = physwm.Trajectories(states.float(), u.float(), dt=0.02)
print(data.summary())
"""),
    md("""
## Discover

Straight from the data (the physics: CartPole's nominal equations with its default learnable constants).
From a fitted hybrid, `physwm.discover(hybrid, data)` starts from its identified constants instead.
"""),
    code("""
model = physwm.discover(data, seed=0)
print(model.discovery.format())
"""),
    md("""
## The discovered terms far beyond the training data

The training data reach about 2.5 m/s and 6 rad/s (shaded); the discovered terms are compared with the true
missing terms out to 10 m/s and 10 rad/s.
"""),
    code("""
speed = torch.linspace(-10, 10, 201)
coef = model.discovery.coefficients
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
train_x_dot, train_theta_dot = data.states[..., 1].abs().max(), data.states[..., 3].abs().max()
for ax, row, term, limit, label in (
    (axes[0], "x_ddot", "x_dot*|x_dot|", train_x_dot, "cart velocity (m/s)"),
    (axes[1], "theta_ddot", "theta_dot*|theta_dot|", train_theta_dot, "pole angular velocity (rad/s)"),
):
    ax.plot(speed, true_terms[row][term] * speed * speed.abs(), lw=3, alpha=0.4, label="true missing term")
    ax.plot(speed, coef[row].get(term, 0.0) * speed * speed.abs(), "--", label="discovered")
    ax.axvspan(-float(limit), float(limit), color="0.9", label="training range")
    ax.set_xlabel(label)
    ax.set_title(row + " residual")
axes[0].legend()
fig.tight_layout()
"""),
    md("""
## Save and reload like every model

The result is a hybrid `ODEModel(HybridField(physics, SymbolicField))` with a `build_spec`: it integrates,
fits, plans and saves like every other model.
"""),
    code("""
import tempfile
from pathlib import Path

with tempfile.TemporaryDirectory() as d:
    physwm.save_checkpoint(Path(d) / "discovered.pt", model)
    loaded, _ = physwm.load_checkpoint(Path(d) / "discovered.pt")
print(loaded.field.residual.equations())
"""),
]

NOISE = [
    md("""
# Noisy data and uncertainty

Real data is noisy. This notebook collects CartPole data with 1% observation noise, shows that the one-step
fit of the constants is biased by it and that multiple shooting (`fit(..., obs_noise="estimate")`) is not,
then checks whether an ensemble's spread along open-loop rollouts means what it says, and recalibrates it.
"""),
    code("""
import math

import numpy as np
import torch

import physwm
from physwm.data import ObservationNoise, collect, make_policy
from physwm.envs import FRICTION_PARAMS, make_env
from physwm.evaluate import Recalibration, identified_constants, rollout_calibration
from physwm.models import build
from physwm.train import fit

hanging = dict(start_low=[-0.5, -0.5, math.pi - 1, -1.0], start_high=[0.5, 0.5, math.pi + 1, 1.0])


def data(seed, episodes=50, noise=0.01, **kw):
    env = make_env(params=FRICTION_PARAMS, terminate=False, max_episode_steps=100)
    return collect(env, make_policy("uniform", force_mag=5.0), episodes, 100, seed, progress=False,
                   obs_noise=ObservationNoise(noise, relative=True), **{**hanging, **kw})


train, val = data(0), data(1, episodes=10)
print(train, "noise std per state:", np.round(train.obs_noise, 4))
"""),
    md("""
## Identifying the constants

The one-step loss regresses noisy changes on noisy states; multiple shooting fits a start state per
20-step segment together with the constants and compares whole segments with the observations.
"""),
    code("""
truth = FRICTION_PARAMS.to_dict()
rows = {}
for label, noise in (("one-step", 0.0), ("multiple shooting", "estimate")):
    model = build("explicit")
    fit(model, train, obs_noise=noise, progress=False, diagnose=False)
    rows[label] = {k: 100 * (v / truth[k] - 1) for k, v in identified_constants(model).items()}
print(f"{'constant':<14}" + "".join(f"{k:>20}" for k in rows))
for name in rows["one-step"]:
    print(f"{name:<14}" + "".join(f"{rows[k][name]:>19.2f}%" for k in rows))
"""),
    md("""
## Calibration along the horizon

A small ensemble of Gaussian MLPs, propagated by trajectory sampling: do its 50%, 90% and 95% intervals
cover what they claim 1, 10 and 30 steps ahead? `Recalibration` fits one spread factor per step on the
validation data.
"""),
    code("""
ens = build("ensemble", members=3, member_options={"hidden": [64, 64]}, seed=0)
fit(ens, train, val, steps=300, progress=False)
recal = Recalibration.fit(ens, val, 30, max_windows=128, seed=1)
test = data(2, episodes=4)
raw = rollout_calibration(ens, test, (1, 10, 30), max_windows=64)
fixed = rollout_calibration(ens, test, (1, 10, 30), recalibration=recal, max_windows=64)
for h in raw:
    print(f"{h:>3} steps: calibration error {raw[h]['calibration_error']:.3f} -> {fixed[h]['calibration_error']:.3f}, "
          f"CRPS {raw[h]['crps']:.3f} -> {fixed[h]['crps']:.3f}")
fig = physwm.plot.reliability_diagram({"as trained": {h: r["reliability"] for h, r in raw.items()},
                                       "recalibrated": {h: r["reliability"] for h, r in fixed.items()}})
"""),
]


NOTEBOOKS = {
    "quickstart.ipynb": QUICKSTART,
    "hybrid_vs_implicit.ipynb": HYBRID,
    "extrapolation.ipynb": EXTRAPOLATION,
    "phase_portraits.ipynb": PHASE,
    "own_system.ipynb": OWN_SYSTEM,
    "adaptation.ipynb": ADAPTATION,
    "discovering_missing_physics.ipynb": DISCOVERY,
    "noise.ipynb": NOISE,
}


def build_notebook(cells) -> nbformat.NotebookNode:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"  # stable ids: rebuilding gives identical files
    nbformat.validate(nb)
    return nb


def main(argv: list[str] | None = None, notebooks: dict | None = None) -> int:
    """Write the notebooks named in ``argv`` (all by default) of ``notebooks`` (this file's by default)."""
    notebooks = NOTEBOOKS if notebooks is None else notebooks
    names = argv or list(notebooks)
    unknown = sorted(set(names) - set(notebooks))
    if unknown:
        raise SystemExit(f"unknown notebooks {unknown}; valid: {sorted(notebooks)}")
    for name in names:
        path = HERE / name
        nbformat.write(build_notebook(notebooks[name]), path)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
