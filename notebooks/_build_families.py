"""Build the notebooks of the policy-learning and structure-preserving families (run: ``python
notebooks/_build_families.py``).

The same rules as ``_build.py`` (whose cell helpers and writer this uses): generated, never edited by hand,
committed without outputs, executed top to bottom by ``tests/test_notebooks.py``; each runs in well under a
minute on a quiet machine.
"""

from __future__ import annotations

import sys

from _build import code, main, md

POLICY_LEARNING = [
    md("""
# Learning a policy in imagination

A world model can stand in for the real system while a controller is learned: every state the learner
sees is *predicted*. `physwm.control.learn_policy(model, task)` trains a neural policy on a model's rollouts
only, by backpropagating the task's cost through the differentiable model (short-horizon analytic policy
gradients with a learned cost-to-go, as in SHAC). Once trained, the policy is one forward pass per control
step; model-predictive control (MPC) with the same model searches over plans at every step.

In this notebook we

1. fit a **hybrid** model (CartPole-v1's equations with learnable constants plus a residual network) to
   random-policy data of gymnasium's `CartPole-v1`,
2. learn a policy for the `balance` task purely on the hybrid's rollouts, and
3. evaluate it on the **true** `CartPole-v1` (its discrete +-10 N pushes: the sign of the policy's force)
   against MPC (CEM) with the same model: success, return and CPU time per control step.
"""),
    code("""
import time

import gymnasium as gym
import matplotlib.pyplot as plt
import numpy as np
import torch

from physwm.control import CEM, default_planner_options, get_task, learn_policy, make_env, run_episode
from physwm.data import collect
from physwm.models import build
from physwm.plot import closed_loop_phase_portrait
from physwm.train import fit

torch.set_num_threads(1)  # tiny networks run fastest on one thread
t_start = time.perf_counter()
"""),
    md("""
## 1. Fit a hybrid

40 episodes of CartPole-v1's random policy. The hybrid integrates CartPole-v1's equations by Euler at 20 ms
(as CartPole-v1 does); `fit` first fits its physical constants by Gauss-Newton, and here they explain the
data to round-off, so its residual network has nothing left to learn (it stays at zero).
"""),
    code("""
data = collect(gym.make("CartPole-v1"), "random", episodes=40, max_steps=500, seed=0, progress=False)
train, val = data.to(torch.float32).split((0.8, 0.2), seed=0)
hybrid = build("hybrid", integrator="euler", seed=0)
history = fit(hybrid, train, val, progress=False)
print(history.message)
print("identified:", {k: round(v, 4) for k, v in hybrid.field.physics.identified().items()})
"""),
    md("""
## 2. Learn a policy in imagination

64 imagined episodes run side by side from the task's start box; each of 100 iterations rolls them 32
steps further under the policy and takes one gradient step on the discounted cost of those 32 steps plus
the critic's estimate of the cost after them. The model is frozen: no true transition is used here.
"""),
    code("""
learned = learn_policy(hybrid, "balance", iterations=100, envs=64, horizon=32, seed=0, progress=False)
cost = np.asarray(learned.history["cost"])
print(f"trained in {learned.seconds:.1f} s; imagined cost per step: first 10 iterations {np.nanmean(cost[:10]):.2f}, "
      f"last 10 {np.nanmean(cost[-10:]):.3f}")
policy = learned.freeze()  # a numpy function of the state: no torch call per control step
"""),
    md("""
## 3. On the true system, against MPC with the same model

The policy runs 10 seeded episodes of the task's 500 steps. CEM (population 200, 3 iterations, horizon 30,
the task's LQR terminal cost) plans with the same hybrid, here eagerly on 2 episodes of 50 steps (enough to
time it; planners compile their rollouts where a compiler is found, which makes them several times faster,
see `bench/plan.py`). Times are CPU time of this process per control step. Random pushes are the baseline.
"""),
    code("""
env = make_env("CartPole-v1", task="balance")
rng = np.random.default_rng(0)
policy_eps = [run_episode(policy, env, "balance", seed=s, model_name="learned policy") for s in range(10)]
random_eps = [run_episode(lambda x: rng.uniform(-10, 10, 1), env, "balance", seed=s, model_name="random")
              for s in range(10)]
task = get_task("balance")
cem = CEM(hybrid, task.cost, population=200, iterations=3, elites=20, seed=0, **default_planner_options(env, task))
mpc_eps = [run_episode(cem, env, "balance", seed=s, steps=50, model_name="CEM") for s in range(2)]


def ms_per_step(eps):
    return 1e3 * float(np.median(np.concatenate([e.plan_cpu_times for e in eps])))


for name, eps in {"learned policy": policy_eps, "random": random_eps}.items():
    print(f"{name:>15}: {sum(e.success for e in eps)}/{len(eps)} balanced for 500 steps, mean return "
          f"{np.mean([e.ret for e in eps]):5.1f}, {ms_per_step(eps):.3f} ms per control step")
print(f"{'CEM':>15}: {sum(not e.terminated for e in mpc_eps)}/{len(mpc_eps)} still up after 50 steps, "
      f"{ms_per_step(mpc_eps):.1f} ms per control step")
print(f"MPC takes {ms_per_step(mpc_eps) / ms_per_step(policy_eps):.0f}x the policy's time per control step")
assert sum(e.success for e in policy_eps) >= 9 and not any(e.success for e in random_eps)
"""),
    md("""
The imagined cost during training, and the policy's closed loop on the true CartPole-v1 (pole angle
against angular velocity): the chattering comes from CartPole-v1's bang-bang pushes.
"""),
    code("""
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
axes[0].semilogy(cost)
axes[0].set(xlabel="iteration", ylabel="imagined running cost per step", title="learning in imagination")
closed_loop_phase_portrait({"learned policy": policy_eps[:3]}, ax=axes[1], title="true CartPole-v1, closed loop")
plt.show()
print(f"notebook ran in {time.perf_counter() - t_start:.1f} s")
"""),
]


STRUCTURE_PRESERVING = [
    md("""
# Structure-preserving models: Lagrangian vs Neural ODE vs hybrid

A **Lagrangian** network (`build("lagrangian")`, DeLaN / dissipative SymODEN style) learns a mass matrix
`M(q)`, a potential `V(q)`, how the force enters and a dissipation, and derives the accelerations from the
Euler-Lagrange equations: without force and dissipation its energy is conserved *by construction*. A
**Neural ODE** learns the vector field with no such structure. The **hybrid** is CartPole-v1's equations
plus a learned residual. All three see the same short windows of a frictionless CartPole swinging under
random forces, integrate by Euler at 20 ms, and are then asked to predict 200 steps (4 s) of free swings.
As in the HNN paper's comparison, we report both the one-step-type error the models are trained on and the
energy error of long rollouts.
"""),
    code("""
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from physwm import CartPole, plot
from physwm.data import Trajectories
from physwm.evaluate import energy_error
from physwm.integrators import RK4
from physwm.models import build
from physwm.train import fit

torch.set_num_threads(1)
t_start = time.perf_counter()
"""),
    md("""
## Data

60 windows of 10 steps from starts anywhere on the circle (|theta_dot| < 6 rad/s), random forces up to
+-10 N, simulated exactly (RK4 with 4 sub-steps, frictionless); 50 to train, 10 to validate. The test: 16
free swings (no force) of 200 steps from the same box, whose true energy is constant.
"""),
    code("""
pi = math.pi
system = CartPole().double()
box = torch.tensor([0.5, 0.5, pi, 6.0], dtype=torch.float64)
g = torch.Generator().manual_seed(4)
x0 = (2 * torch.rand(60, 4, generator=g, dtype=torch.float64) - 1) * box
u = (2 * torch.rand(60, 10, 1, generator=g, dtype=torch.float64) - 1) * 10
with torch.no_grad():
    s = RK4(substeps=4).rollout(system, x0, u, 0.02).float()
train, val = Trajectories(s[:50], u[:50].float(), dt=0.02), Trajectories(s[50:], u[50:].float(), dt=0.02)
g = torch.Generator().manual_seed(5)
starts = (2 * torch.rand(16, 4, generator=g, dtype=torch.float64) - 1) * box
free = torch.zeros(16, 200, 1, dtype=torch.float64)
with torch.no_grad():
    truth = RK4(substeps=4).rollout(system, starts, free, 0.02)
"""),
    md("""
## Fit

The two learned fields get the same networks (32x32) and budget (150 Adam steps at 1e-2, cosine schedule);
the hybrid, whose constants are the true ones here (`learnable=[]`), trains its residual with its family's recipe.
"""),
    code("""
models = {
    "lagrangian": build("lagrangian", hidden=[32, 32], integrator="euler", seed=0),
    "node": build("node", hidden=[32, 32], integrator="euler", seed=0),
    "hybrid": build("hybrid", integrator="euler", learnable=[], seed=0),  # the constants are right here
}
budget = dict(steps=150, lr=1e-2, lr_schedule="cosine", grad_clip=10.0)
val_error, energy, rmse = {}, {}, {}
spread = truth.reshape(-1, 4).std(0)
for name, model in models.items():
    history = fit(model, train, val, progress=False, **({} if name == "hybrid" else budget))
    val_error[name] = history.best_val_error
    with torch.no_grad():
        pred = model.rollout(starts.float(), free.float()).double()
    energy[name] = energy_error(pred, truth, system.energy)  # J, at every step
    rmse[name] = ((pred - truth) / spread).pow(2).mean((0, 2)).sqrt()  # state-spread units
print(f"{'model':>10} {'val RMSE (10 steps)':>20} {'energy err @100':>16} {'@200 (J)':>9} {'state RMSE @200':>16}")
for name in models:
    print(f"{name:>10} {val_error[name]:20.4f} {float(energy[name][100]):16.4f} {float(energy[name][200]):9.4f} "
          f"{float(rmse[name][200]):16.3f}")
ratio = float(energy["node"][200] / energy["lagrangian"][200])
print(f"energy error at 200 steps, node / lagrangian = {ratio:.0f}x")
assert ratio >= 10
"""),
    md("""
## Energy and error over the horizon

Left: the energy error (RMS over the 16 swings) at every step. Right: the energy of one swing. The Neural
ODE's energy drifts away; the Lagrangian's stays near the truth because its structure forbids creating
energy without force, and the hybrid's because its equations are CartPole's own.
"""),
    code("""
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
steps = np.arange(201)
plot.error_vs_horizon({name: (steps[1:], e[1:].numpy()) for name, e in energy.items()},
                      ylabel="energy error (J, RMS over swings)", ax=axes[0], title="energy error vs horizon")
with torch.no_grad():
    one = {name: system.energy(m.rollout(starts[:1].float(), free[:1].float())[0].double())
           for name, m in models.items()}
plot.energy(steps * 0.02, system.energy(truth[0]), one, ax=axes[1], title="energy of one free swing")
plt.show()
print(f"notebook ran in {time.perf_counter() - t_start:.1f} s")
"""),
]

NOTEBOOKS = {
    "policy_learning.ipynb": POLICY_LEARNING,
    "structure_preserving.ipynb": STRUCTURE_PRESERVING,
}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], NOTEBOOKS))
