"""APHYNITY's Table 1, damped pendulum rows (Yin et al., ICLR 2021), reproduced with physwm's public API.

    python bench/aphynity.py                                   # prints the table
    python bench/aphynity.py --out data/reference/aphynity_pendulum.md --overwrite   # the committed table
    python bench/aphynity.py --steps 300 --warm 20 --hidden 64 --seeds 1             # a quick look

Protocol (theirs, as physwm runs it): the damped pendulum d2theta/dt2 = -omega0^2 sin(theta) - alpha dtheta/dt
with T0 = 2 pi / omega0 = 6 s and alpha = 0.2 (physwm.DampedPendulum's defaults); 25 training and 25 test
trajectories of 40 states every 0.5 s (20 s) from starts at a distance U[1.3, 2.3) from rest in a random
direction of the (theta, theta_dot) plane, simulated with a high-order adaptive solver (DOP853 there; dopri8,
rtol 1e-10, here); every model integrates with RK4 over 0.5 s steps (torchdiffeq's fixed-grid ``rk4`` on the
sample times there) and is trained on whole trajectories (39 steps open loop, all 25 in one batch) with Adam,
lr 1e-3 (tau_1); the test metric is the MSE over all 40 states of the 25 test trajectories, in the data's units
(log10), and the relative error of the identified omega0. Rows:

* Neural ODE: a learned field only (MLP 2 -> 200 -> 200 -> 2, ReLU);
* Param ODE (omega0): the frictionless pendulum, omega0 learned;
* APHYNITY Param ODE (omega0): the frictionless pendulum with omega0 learned, plus the MLP as a residual on
  both rows, penalised by ||F_a||^2 / ||x||^2 with APHYNITY's adaptive multiplier (lambda_0 = 1, tau_2 = 1:
  lambda grows by the trajectory MSE in the data's units after every step);
* Param ODE (omega0, alpha): the complete equations, both constants learned;
* True ODE: the true constants, nothing learned (RK4 at 0.5 s; and, for reference, the data's own solver).

Where physwm differs: the budget: ``--warm`` epochs (default 300: 1,200 Adam steps) on windows of 5 steps
(2.5 s, batches of 256) first, then ``--steps`` (default 300) Adam steps on whole trajectories, the learning
rate annealed by a cosine in each phase (theirs: whole trajectories only, constant rate, up to 50,000 epochs
of 5 iterations each, i.e. up to 250,000 steps: about 170 times our budget). Without the
short-window phase, gradient descent on 20 s trajectories from a frequency 14% off locks into a wrong phase
(a local minimum: the complete physics then ends near log10 MSE -0.3 with omega0 10% off). The physical
constants learn at 1e-2 (``FitConfig.constants_lr``; the networks at 1e-3): at 1e-3 the hybrid's omega0 stays
12% off for 500 steps while the residual absorbs the difference. Each model keeps its last weights (theirs:
the weights of the lowest *test* loss). physwm's NeuralField normalises inputs and outputs with the training
data's statistics and the residual starts at exactly zero (theirs: raw inputs, orthogonal init, gain 0.2);
the trajectory loss is measured in units of the one-step change's spread per dimension (theirs: raw MSE;
Adam makes the scale irrelevant, the per-dimension weighting is not), while the multiplier grows with the
raw MSE as theirs; physical constants are learned as ``omega0`` (theirs: ``omega0^2``). The physics-based
models start at omega0 = 0.9 rad/s (14% below the true 1.047) and alpha = 0 (their code starts omega0^2 at
0.2 for a true 0.274, i.e. omega0 15% below; its T0 is 12 s, the paper's 6 s, which we follow). The starts
are drawn from physwm's seeded generators (theirs: ``np.random.seed(index)``). Seeds vary the model
initialisation; the data are the same for every seed (as theirs).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import torch

import physwm
from physwm import build, fit
from physwm.data import Trajectories
from physwm.files import atomic_write_text
from physwm.integrators import RK4, Adaptive
from physwm.systems import DampedPendulum, DampedPendulumParams

TRUE = DampedPendulumParams()  # T0 = 6 s, alpha = 0.2
START = DampedPendulumParams(omega0=0.9, alpha=0.0)  # where the physics-based models start (14% low, frictionless)
ROWS = ["Neural ODE", "Param ODE (omega0)", "APHYNITY Param ODE (omega0)", "Param ODE (omega0, alpha)", "True ODE"]
# The paper's Table 1, damped pendulum (ICLR 2021): row -> (log10 MSE mean, its spread, omega0 error in % or None)
PAPER = {
    "Neural ODE": (-2.84, 0.70, None),
    "Param ODE (omega0)": (-0.14, 0.10, 13.2),
    "APHYNITY Param ODE (omega0)": (-7.86, 0.60, 4.0),
    "Param ODE (omega0, alpha)": (-8.28, 0.40, 0.45),
    "True ODE": (-8.58, 0.20, None),
}


def dataset(seed: int, episodes: int = 25) -> Trajectories:
    """APHYNITY's pendulum data: ``episodes`` trajectories of 40 states every 0.5 s (float64)."""
    env = physwm.envs.make_env(system="damped_pendulum", params=TRUE, max_episode_steps=39,
                               integrator=Adaptive("dopri8", rtol=1e-10, atol=1e-12))  # fmt: skip
    try:
        return physwm.collect(env, "none", episodes=episodes, max_steps=39, seed=seed, progress=False,
                              start_radius=(1.3, 2.3))  # fmt: skip
    finally:
        env.close()


def make_model(row: str, seed: int, hidden: int = 200):
    common = {"integrator": "rk4", "seed": seed}
    mlp = {"hidden": [hidden, hidden], "activation": "relu", "features": "state"}
    if row == "Neural ODE":
        return build("node", START, **mlp, **common)
    if row == "Param ODE (omega0)":
        return build("explicit", START, learnable=["omega0"], **common)
    if row == "APHYNITY Param ODE (omega0)":
        return build("hybrid", START, learnable=["omega0"], rows="all", penalty=1.0, penalty_norm="state",
                     multiplier_rate=1.0, **mlp, **common)  # fmt: skip
    if row == "Param ODE (omega0, alpha)":
        return build("explicit", START, learnable=["omega0", "alpha"], **common)
    if row == "True ODE":
        return build("explicit", TRUE, learnable=[], **common)
    raise ValueError(f"unknown row {row!r}; valid: {ROWS}")


@torch.no_grad()
def test_mse(model, test: Trajectories) -> float:
    """MSE over every state of every test trajectory (the start included, as theirs), data units."""
    pred = model.rollout(test.states[:, 0].to(torch.float32), test.controls.to(torch.float32)).double()
    return float((pred - test.states).pow(2).mean())


def train_model(model, train: Trajectories, steps: int, warm: int, seed: int) -> None:
    """``warm`` epochs on 5-step windows, then ``steps`` Adam steps on whole trajectories (see the docstring)."""
    data = train.to(torch.float32)
    # the protocol fixes the budget: no step cap, early stopping or Gauss-Newton fits from fit's recipes
    opts = {"lr": 1e-3, "constants_lr": 1e-2, "lr_schedule": "cosine", "restore_best": False, "seed": seed,
            "progress": False, "steps": None, "early_stopping": None, "prefit_steps": 0, "polish_steps": 0,
            "explained_loss": None}  # fmt: skip
    if warm:
        fit(model, data, horizon=5, batch_size=256, epochs=warm, **opts)
    if steps:
        fit(model, data, horizon=39, batch_size=25, epochs=steps, **opts)


def run_row(row: str, seed: int, train: Trajectories, test: Trajectories, steps: int, warm: int, hidden: int) -> dict:
    model = make_model(row, seed, hidden)
    t0 = time.perf_counter()
    if row != "True ODE":
        train_model(model, train, steps, warm, seed)
    out = {"row": row, "seed": seed, "mse": test_mse(model.eval(), test), "train_s": time.perf_counter() - t0}
    physics = getattr(model.field, "physics", model.field)
    ident = physics.identified() if hasattr(physics, "identified") else {}
    if "omega0" in ident:
        out["omega0_err"] = abs(ident["omega0"] - TRUE.omega0) / TRUE.omega0
    if "alpha" in ident:
        out["alpha_err"] = abs(ident["alpha"] - TRUE.alpha) / TRUE.alpha
    if row == "APHYNITY Param ODE (omega0)":
        out["multiplier"] = float(model.field.multiplier)
    return out


def _pm(values: list[float], fmt: str) -> str:
    if not values:
        return "–"
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:{fmt}} ± {sd:{fmt}}"


def table(results: list[dict], floor_mse: float) -> tuple[str, dict]:
    lines = ["| model | log10 MSE, paper | log10 MSE, physwm | omega0 error (%), paper | omega0 error (%), physwm "
             "| alpha error (%), physwm |", "|---|---|---|---|---|---|"]  # fmt: skip
    summary = {}
    for row in ROWS:
        rs = [r for r in results if r["row"] == row]
        logs = [math.log10(r["mse"]) for r in rs]
        w = [100 * r["omega0_err"] for r in rs if "omega0_err" in r]
        a = [100 * r["alpha_err"] for r in rs if "alpha_err" in r]
        summary[row] = {"log10_mse": statistics.fmean(logs), "omega0_err": statistics.fmean(w) if w else None}
        p_mse, p_sd, p_w = PAPER[row]
        p_w = "–" if p_w is None else f"{p_w:.2f}"
        rest = f"{_pm(logs, '.2f')} | {p_w} | {_pm(w, '.2f')} | {_pm(a, '.2f')}"
        lines.append(f"| {row} | {p_mse:.2f} ± {p_sd:.2f} | {rest} |")
    lines.append(f"| True ODE, the data's own solver (dopri8) | – | {math.log10(floor_mse):.2f} | – | – | – |")
    return "\n".join(lines), summary


def document(md: str, verdict: str, out: str, seeds: int, warm: int, steps: int, hidden: int, wall: float) -> str:
    """The committed Markdown: the table, the verdict, where we lose, the protocol and where physwm differs."""
    doc = ("Protocol (theirs" + __doc__.split("Protocol (theirs", 1)[1].split("Where physwm differs")[0]).strip()
    differs = "Where physwm differs" + __doc__.split("Where physwm differs", 1)[1].rstrip()
    text = "\n\n".join([
        "# APHYNITY Table 1, damped pendulum, reproduced with physwm",
        f"Regenerate: `python bench/aphynity.py --out {out} --overwrite` ({seeds} seeds; per model "
        f"{warm} epochs on 5-step windows, then {steps} Adam steps on whole trajectories; MLP width "
        f"{hidden}; {wall:.0f} s on a shared 2-core machine).",
        md,
        verdict + ".",
        "The paper reports the true ODE at log10 MSE -8.58, which its released code (RK4 over the 0.5 s sample "
        "steps) cannot reach: with the true constants RK4 at 0.5 s is limited by its own step error (the True "
        "ODE row), the data's solver by nothing (the last row). Compare orderings and gaps, not absolute values: "
        "the paper's APHYNITY hybrid lands within about 0.4 log10 of its complete physics.",
        "## Where we lose",
        "The ordering is the paper's (frictionless physics << Neural ODE < APHYNITY hybrid < complete physics) "
        "and the hybrid identifies omega0 better than the paper's 4%, but its MSE stays far from the complete "
        "physics: the gap target (0.5 log10) is not met at this budget. The limit is the residual, not the "
        "physics: omega0 is right to a fraction of a percent, so what is left is the MLP's error in "
        "representing -alpha * dtheta/dt (and zero on the position row) over the states visited; a 2 -> 200 "
        "-> 200 -> 2 ReLU MLP on raw states does not get that error down to the complete physics' 1e-6 in "
        "1,500 Adam steps (the paper trains up to 250,000). Five times the whole-trajectory steps "
        "(`--warm 60 --steps 1500`, seed 0) gave the hybrid log10 MSE -4.24 (omega0 0.50% off) against "
        "-6.30 for the complete physics: no better. The Neural ODE is also worse than the paper's (-2.84): the "
        "long short-window phase fits 2.5 s windows that its 20 s rollouts do not follow (a quick look, "
        "`--seeds 1 --warm 20 --steps 300 --hidden 64`, gave it -2.14).",
        "## Protocol", doc, "## " + differs.replace("Where physwm differs: the", "Where physwm differs\n\nThe", 1),
    ])  # fmt: skip
    return text + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="model seeds (default 3)")
    parser.add_argument("--steps", type=int, default=300, help="Adam steps on whole trajectories (default 300)")
    parser.add_argument("--warm", type=int, default=300, help="epochs on 5-step windows first (default 300)")
    parser.add_argument("--hidden", type=int, default=200, help="MLP width (default 200, APHYNITY's)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: fastest for these sizes)")
    parser.add_argument("--out", default=None, help="write the table as Markdown to this file")
    parser.add_argument("--overwrite", action="store_true", help="replace --out")
    args = parser.parse_args()
    if args.out and Path(args.out).exists() and not args.overwrite:
        raise SystemExit(f"{args.out} exists; pass --overwrite")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    train, test = dataset(seed=0), dataset(seed=1)
    fine = RK4(substeps=500).rollout(DampedPendulum(TRUE).double(), test.states[:, 0], test.controls, 0.5)
    floor_mse = float((fine - test.states).pow(2).mean()) or 1e-30
    results = []
    for seed in range(args.seeds):
        for row in ROWS:
            if row == "True ODE" and seed > 0:
                results.append({**results[[r["row"] for r in results].index("True ODE")], "seed": seed})
                continue
            r = run_row(row, seed, train, test, args.steps, args.warm, args.hidden)
            results.append(r)
            print(f"seed {seed} {row:30s} log10 MSE {math.log10(r['mse']):6.2f}"
                  + (f"  omega0 err {100 * r['omega0_err']:.2f}%" if "omega0_err" in r else "")
                  + f"  ({r['train_s']:.0f} s)", flush=True)  # fmt: skip
    md, summary = table(results, floor_mse)
    gap = summary["APHYNITY Param ODE (omega0)"]["log10_mse"] - summary["Param ODE (omega0, alpha)"]["log10_mse"]
    w_err = summary["APHYNITY Param ODE (omega0)"]["omega0_err"]
    verdict = (f"APHYNITY hybrid vs complete physics: {gap:+.2f} log10 MSE (target <= +0.5), omega0 error "
               f"{w_err:.2f}% (target <= 4%): {'met' if gap <= 0.5 and w_err <= 4.0 else 'NOT met'}")
    wall = time.perf_counter() - t0
    print("\n" + md + "\n\n" + verdict + f"\n({wall:.0f} s wall; timings taken on a shared machine)")
    if args.out:
        text = document(md, verdict, args.out, args.seeds, args.warm, args.steps, args.hidden, wall)
        atomic_write_text(Path(args.out), text, overwrite=args.overwrite)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
