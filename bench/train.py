"""Benchmark: training every physwm model family on random CartPole-v1 data, against the seed recipe.

The setting of the "world models" issue: 100 episodes of gymnasium's ``CartPole-v1`` under the random
policy, recorded by ``physwm.data.collect`` (exact float64 states, forces of +-10 N), split by episode
into train / validation / test (80 / 10 / 10 %, seed 0). For each model the script prints

* ``train s``: wall-clock seconds of training (``fit`` or the seed recipe's loop, normalisation
  included; data collection and scoring excluded) and ``cpu s``, the process CPU seconds of the same
  span (other jobs on a shared machine inflate the first, not the second);
* ``1-step MSE``: held-out one-step error, the mean over every transition of the test episodes and
  over the 4 state dimensions of ``(x_hat_{t+1} - x_{t+1})^2``, physical units (m, m/s, rad, rad/s);
* ``50-step RMSE``: open-loop error after 50 steps of random +-10 N forces (seeded, the same for every
  model) from every test start state (the first state of each test transition), against the true
  system, physwm's ``CartPole()`` integrated with ``Euler`` at 0.02 s (gymnasium's CartPole-v1 to
  float64 round-off) with no termination: ``sqrt(mean over starts and the 4 dimensions of
  (x_hat_50 - x_50)^2)``, physical units, at step 50 only.

Models (the recipe of each is in ``RECIPES``; all use physwm's ``build`` and ``fit``):

* ``seed VAE recipe``: a re-creation of the seed document's recipe, run in this process: a World
  Models-style VAE (encoder MLP of ``[state, action]`` to a 32-d Gaussian latent, decoder MLP to the
  next state, KL with World Models' free-bits tolerance of 0.5 nat per latent dimension) trained one
  sample at a time (batch size 1) with Adam (lr 1e-3) for 50 epochs, float32, raw (unnormalised)
  inputs, predicting from the posterior mean;
* ``explicit`` and ``hybrid``: the CartPole equations (learnable constants, started at gymnasium's
  nominal values; the hybrid adds its default acceleration residual network) integrated with **Euler**:
  gymnasium's CartPole-v1 *is* the Euler discretisation of those equations at tau = 0.02 s, so a model
  that knows the equations knows that too (with RK4 the one-step error would be Euler's own local
  error, ~4e-6). float64, so round-off-level errors are measurable; full-batch L-BFGS;
  ``explicit (20% off)`` and ``hybrid (20% off)`` start instead from wrong constants (pole 20% longer
  and heavier, cart 10% lighter), so the fit has something to identify;
* ``node``: Neural ODE (RK4), ``mlp``, ``gaussian_mlp``, ``vae``, ``gru``, ``transformer``: the families'
  default builds, float32, ``fit``'s defaults (Adam, lr 1e-3, batch 256) within a time budget;
  ``ensemble (PETS)``: 5 bootstrapped Gaussian MLPs (the default ensemble, Adam);
  ``mlp (tuned)`` and ``ensemble (tuned)``: a 32x32 SiLU MLP, float64, full-batch L-BFGS, alone and as
  an ensemble of 5 (no bootstrap: members differ by initialisation). Smaller nets generalise better
  here: the test episodes reach cart positions the training episodes never did (the MLP sees x).

Every ``fit`` keeps the epoch with the lowest validation rollout error (its default). One torch thread by
default (``--threads``): for these small networks a second thread only adds synchronisation (and on a
shared machine, contention: 2 threads made the L-BFGS fits 10-30x slower in a loaded run).

Then the fixed-step RK4 Neural-ODE training throughput: one forward and backward pass through a 50-step
open-loop rollout of the same ``NeuralField`` (the ``node`` default: 64x64 tanh, float32), loss the mean
square of the states, physwm's ``RK4().rollout`` against ``torchdiffeq.odeint(..., method="rk4",
options={"step_size": dt})`` over the same time grid. torchdiffeq's ``rk4`` is the 3/8-rule variant
(stages at 0, 1/3, 2/3, 1 of the step); the control is held piecewise constant (zero-order hold, as in
physwm) two ways: ``perturb``: ``options["perturb"] = True``, torchdiffeq's own mechanism for
discontinuities (the step's first and last stages are evaluated just inside the step), with ``func(t, y)``
looking the period up by bisection on the grid; ``counter``: the period is the number of calls so far
divided by 4 (exact for fixed-step rk4, which calls ``func`` 4 times per step in order; no time lookup, no
perturbation: torchdiffeq's cheapest exact variant). ``plain`` is a hand-written PyTorch RK4 loop
calling the field, for reference. Best of several interleaved repeats; ratios are torchdiffeq's time over
physwm's.

Run: ``python bench/train.py`` (a few minutes) or ``python bench/train.py --quick`` (smoke run, < 60 s:
the seed recipe for 2 epochs, short budgets, one batch size).
"""

from __future__ import annotations

import argparse
import bisect
import math
import os
import sys
import time
from pathlib import Path

# Run from a source checkout even when physwm is not installed (or installed elsewhere).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gymnasium  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from physwm import RK4, CartPole, CartPoleParams, Euler, fit  # noqa: E402
from physwm.data import collect, make_policy  # noqa: E402
from physwm.models import build  # noqa: E402

DT = 0.02
HORIZON = 50
# The measurements (another machine): seconds, one-step MSE, 50-step RMSE.
REFERENCE = {
    "seed VAE recipe (issue)": (83.0, 6.7e-3, 2.7),
    "mbrl-lib 0.2.0 PETS (issue)": (20.0, 2.6e-5, 5.4),
}

# name, build name, build options, dtype, fit options (full run), fit options overridden by --quick
_LBFGS = {"optimizer": "lbfgs", "lr": 1.0}
# A wrong starting point for the explicit and hybrid models: pole 20% longer and heavier, cart 10% lighter.
_OFF = CartPoleParams(length=0.6, masspole=0.12, masscart=0.9)
RECIPES: list[tuple[str, str, dict, torch.dtype, dict, dict]] = [
    ("explicit", "explicit", {"integrator": "euler"}, torch.float64, {**_LBFGS, "epochs": 3}, {}),
    ("hybrid", "hybrid", {"integrator": "euler"}, torch.float64, {**_LBFGS, "epochs": 3}, {}),
    ("explicit (20% off)", "explicit", {"integrator": "euler", "system": _OFF}, torch.float64,
     {**_LBFGS, "epochs": 20}, {"epochs": 5}),
    ("hybrid (20% off)", "hybrid", {"integrator": "euler", "system": _OFF}, torch.float64,
     {**_LBFGS, "epochs": 20}, {"epochs": 5}),
    ("node", "node", {}, torch.float32, {"epochs": 300, "max_time": 15.0}, {"max_time": 2.0}),
    ("mlp", "mlp", {}, torch.float32, {"epochs": 300, "max_time": 10.0}, {"max_time": 2.0}),
    ("mlp (tuned)", "mlp", {"hidden": [32, 32]}, torch.float64, {**_LBFGS, "epochs": 30}, {"epochs": 5}),
    ("gaussian_mlp", "gaussian_mlp", {}, torch.float32, {"epochs": 300, "max_time": 10.0}, {"max_time": 2.0}),
    ("ensemble (PETS)", "ensemble", {}, torch.float32, {"epochs": 300, "max_time": 20.0}, {"max_time": 3.0}),
    (
        "ensemble (tuned)",
        "ensemble",
        {"member": "mlp", "member_options": {"hidden": [32, 32]}, "bootstrap": False},
        torch.float64,
        {**_LBFGS, "epochs": 30},
        {"epochs": 2},
    ),
    ("vae", "vae", {}, torch.float32, {"epochs": 300, "max_time": 10.0}, {"max_time": 2.0}),
    ("gru", "gru", {}, torch.float32, {"epochs": 300, "max_time": 10.0}, {"max_time": 2.0}),
    ("transformer", "transformer", {}, torch.float32, {"epochs": 300, "max_time": 15.0}, {"max_time": 2.0}),
]


# ---------------------------------------------------------------------------------------------------------
# data and scores
# ---------------------------------------------------------------------------------------------------------
def make_data(seed: int):
    """100 random CartPole-v1 episodes, split by episode; test transitions; 50-step random-force rollouts."""
    traj = collect(gymnasium.make("CartPole-v1"), make_policy("random"), episodes=100, max_steps=500, seed=seed,
                   progress=False)  # fmt: skip
    train, val, test = traj.split((0.8, 0.1, 0.1), seed=seed)
    w = test.windows(1)
    g = torch.Generator().manual_seed(seed)
    x0 = w["states"][:, 0]
    forces = torch.where(torch.rand(x0.shape[0], HORIZON, 1, generator=g, dtype=torch.float64) < 0.5, -10.0, 10.0)
    truth = Euler().rollout(CartPole(), x0, forces, DT)  # gymnasium's CartPole-v1, no termination
    return traj, train, val, {"x": x0, "u": w["controls"][:, 0], "next": w["states"][:, 1],
                              "forces": forces, "truth": truth}  # fmt: skip


@torch.no_grad()
def scores(step, rollout, test: dict) -> tuple[float, float]:
    """(one-step MSE, 50-step RMSE), physical units, for ``step(x, u)`` and ``rollout(x0, u)`` in float64."""
    err = step(test["x"], test["u"]) - test["next"]
    mse = float(err.pow(2).mean())
    pred = rollout(test["x"], test["forces"])[:, HORIZON]
    rmse = float((pred - test["truth"][:, HORIZON]).pow(2).mean().sqrt())
    return mse, rmse if math.isfinite(rmse) else math.inf


def _model_fns(model: nn.Module, dtype: torch.dtype):
    def step(x, u):
        return model.step(x.to(dtype), u.to(dtype)).double()

    def rollout(x0, u):
        return model.rollout(x0.to(dtype), u.to(dtype)).double()

    return step, rollout


# ---------------------------------------------------------------------------------------------------------
# the seed document's recipe
# ---------------------------------------------------------------------------------------------------------
def seed_vae_recipe(train, epochs: int, seed: int = 0):
    """The seed document's recipe, re-created: a World Models-style VAE trained per sample with Adam.

    ``(state [4], action +-1) -> encoder MLP (64, 64, ReLU) -> mu, log sigma^2 [32] -> z -> decoder MLP
    (64, 64, ReLU) -> next state [4]``; loss per sample: squared error summed over the state plus the KL
    to N(0, I) floored at 0.5 nat per latent dimension (World Models' ``kl_tolerance``); Adam, lr 1e-3,
    batch size 1, samples shuffled each epoch; float32, raw inputs. Predicts with ``z = mu``.

    Returns:
        ``(step, rollout, seconds, cpu_seconds)``: float64-in/out prediction functions.
    """
    latent, hidden, force_mag = 32, 64, 10.0

    class VAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Sequential(nn.Linear(5, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                         nn.Linear(hidden, 2 * latent))  # fmt: skip
            self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                         nn.ReLU(), nn.Linear(hidden, 4))  # fmt: skip

        def forward(self, x, u, sample: bool):
            mu, logvar = self.encoder(torch.cat((x, u / force_mag), -1)).chunk(2, -1)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if sample else mu
            return self.decoder(z), mu, logvar

    w = train.windows(1)
    x, u, y = (t.float() for t in (w["states"][:, 0], w["controls"][:, 0], w["states"][:, 1]))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        t0, c0 = time.perf_counter(), time.process_time()
        vae = VAE()
        opt = torch.optim.Adam(vae.parameters(), lr=1e-3)
        order = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            for i in torch.randperm(x.shape[0], generator=order).tolist():
                pred, mu, logvar = vae(x[i : i + 1], u[i : i + 1], sample=True)
                recon = (pred - y[i : i + 1]).pow(2).sum()
                kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum()).clamp_min(0.5 * latent)
                opt.zero_grad()
                (recon + kl).backward()
                opt.step()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0

    def step(xs, us):
        return vae(xs.float(), us.float(), sample=False)[0].double()

    def rollout(x0, us):
        states = [x0.float()]
        for t in range(us.shape[1]):
            states.append(vae(states[-1], us[:, t].float(), sample=False)[0])
        return torch.stack(states, 1).double()

    return step, rollout, seconds, cpu


# ---------------------------------------------------------------------------------------------------------
# physwm families
# ---------------------------------------------------------------------------------------------------------
def train_family(recipe, train, val, quick: bool):
    label, name, options, dtype, fit_options, quick_options = recipe
    model = build(name, **options).to(dtype)
    kw = {**fit_options, **(quick_options if quick else {})}
    t0, c0 = time.perf_counter(), time.process_time()
    history = fit(model, train, val, progress=False, seed=0, **kw)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    model.eval()
    return model, history, seconds, cpu


# ---------------------------------------------------------------------------------------------------------
# RK4 throughput
# ---------------------------------------------------------------------------------------------------------
class _PerturbLookup(nn.Module):
    """``func(t, y)`` for torchdiffeq with ``perturb=True``: the control of the period that contains ``t``."""

    def __init__(self, field, u, grid: list[float]):
        super().__init__()
        self.field, self.u, self.grid = field, u, grid

    def forward(self, t, y):
        k = min(bisect.bisect_right(self.grid, float(t)) - 1, self.u.shape[1] - 1)
        return self.field(y, self.u[:, k])


class _CallCounter(nn.Module):
    """``func(t, y)`` for torchdiffeq's fixed-step rk4: period = calls so far // 4 (4 stages per step)."""

    def __init__(self, field, u):
        super().__init__()
        self.field, self.u, self.calls = field, u, 0

    def forward(self, t, y):
        k = self.calls // 4
        self.calls += 1
        return self.field(y, self.u[:, k])


def rk4_throughput(batch: int, repeats: int, seed: int = 0) -> dict[str, float]:
    """Best seconds of forward + backward through a 50-step RK4 rollout of the same NeuralField."""
    import torchdiffeq

    field = build("node", seed=seed).field  # float32, 64x64 tanh, state features
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(64, HORIZON + 1, 4, generator=g) * torch.tensor([0.3, 0.5, 0.1, 0.5])
    forces = torch.where(torch.rand(64, HORIZON, 1, generator=g) < 0.5, -10.0, 10.0)
    field.fit_normalization(states, forces, DT)  # realistic input/output scales
    x0 = torch.randn(batch, 4, generator=g) * 0.05
    u = torch.where(torch.rand(batch, HORIZON, 1, generator=g) < 0.5, -10.0, 10.0)
    t = torch.arange(HORIZON + 1, dtype=torch.float32) * DT  # the grid torchdiffeq builds from step_size
    grid = t.tolist()
    rk4 = RK4()

    def physwm():
        return rk4.rollout(field, x0, u, DT)

    def td_perturb():
        func = _PerturbLookup(field, u, grid)
        out = torchdiffeq.odeint(func, x0, t, method="rk4", options={"step_size": DT, "perturb": True})
        return out.transpose(0, 1)

    def td_counter():
        out = torchdiffeq.odeint(_CallCounter(field, u), x0, t, method="rk4", options={"step_size": DT})
        return out.transpose(0, 1)

    def plain():
        xs, x = [x0], x0
        for k in range(HORIZON):
            uk = u[:, k]
            k1 = field(x, uk)
            k2 = field(x + (0.5 * DT) * k1, uk)
            k3 = field(x + (0.5 * DT) * k2, uk)
            k4 = field(x + DT * k3, uk)
            x = x + (DT / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
            xs.append(x)
        return torch.stack(xs, 1)

    contenders = {"physwm": physwm, "torchdiffeq perturb": td_perturb, "torchdiffeq counter": td_counter,
                  "plain torch": plain}  # fmt: skip
    with torch.no_grad():  # all integrate the same ODE: differences are the 3/8 rule's and round-off
        ref = physwm()
        scale = float(ref.abs().max())
        for name, fn in contenders.items():
            d = float((fn() - ref).abs().max())
            if not d < 1e-3 * scale:  # a control held in the wrong period would be off by ~1e-1
                raise AssertionError(f"{name} disagrees with physwm's RK4 by {d} (states up to {scale})")
    best = dict.fromkeys(contenders, math.inf)
    for _ in range(repeats):  # interleaved, so a busy spell of the machine hits every contender alike
        for name, fn in contenders.items():
            field.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            fn().pow(2).mean().backward()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


# ---------------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------------
def _fmt(v: float) -> str:
    return "inf" if not math.isfinite(v) else f"{v:.2e}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: short budgets (< 60 s)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="data, split and initialisation seed")
    parser.add_argument("--only", default=None,
                        help="comma-separated model labels to run, e.g. 'hybrid,mlp (tuned)' (default all)")
    parser.add_argument("--skip-seed", action="store_true", help="skip the seed recipe")
    parser.add_argument("--skip-rk4", action="store_true", help="skip the RK4 throughput comparison")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    quick = args.quick
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} cores, "
          f"load average {load:.1f}{', --quick' if quick else ''}")  # fmt: skip

    traj, train, val, test = make_data(args.seed)
    print(f"data: {traj.num_episodes} random CartPole-v1 episodes, {traj.num_transitions} transitions "
          f"(train {train.num_transitions}, val {val.num_transitions}, test {test['x'].shape[0]} in "
          f"{len(traj) - len(train) - len(val)} episodes)\n")  # fmt: skip

    header = f"{'model':<28} {'dtype':<8} {'train s':>8} {'cpu s':>8} {'1-step MSE':>11} {'50-step RMSE':>13}"
    print(header)
    print("-" * len(header))
    rows: dict[str, tuple[float, float, float, float]] = {}
    for label, (sec, mse, rmse) in REFERENCE.items():
        print(f"{label:<28.28} {'':<8} {sec:>8.1f} {'':>8} {_fmt(mse):>11} {rmse:>13.2f}")
    only = None if args.only is None else {s.strip() for s in args.only.split(",")}
    if not args.skip_seed and (only is None or "seed VAE recipe" in only):
        epochs = 2 if quick else 50
        step, rollout, sec, cpu = seed_vae_recipe(train, epochs, seed=args.seed)
        mse, rmse = scores(step, rollout, test)
        rows["seed VAE recipe"] = (sec, cpu, mse, rmse)
        print(f"{'seed VAE recipe':<28} {'float32':<8} {sec:>8.1f} {cpu:>8.1f} {_fmt(mse):>11} {_fmt(rmse):>13}"
              f"   ({epochs} epochs, batch size 1)", flush=True)  # fmt: skip
    models = {}
    for recipe in RECIPES:
        label = recipe[0]
        if only is not None and label not in only:
            continue
        model, history, sec, cpu = train_family(recipe, train, val, quick)
        step, rollout = _model_fns(model, recipe[3])
        mse, rmse = scores(step, rollout, test)
        rows[label] = (sec, cpu, mse, rmse)
        models[label] = model
        dtype = str(recipe[3]).removeprefix("torch.")
        opt = recipe[4].get("optimizer", "adam")
        note = f"{opt}, {len(history.epoch)} epochs, best {history.best_epoch}"
        if history.diverged:
            note += ", DIVERGED"
        print(f"{label:<28} {dtype:<8} {sec:>8.1f} {cpu:>8.1f} {_fmt(mse):>11} {_fmt(rmse):>13}   ({note})",
              flush=True)  # fmt: skip
    for label, model in models.items():
        if label.split(" ")[0] in ("explicit", "hybrid"):
            physics = model.field if label.startswith("explicit") else model.field.physics
            ident = ", ".join(f"{k}={v:.10g}" for k, v in physics.identified().items())
            print(f"  {label + ' constants:':<30} {ident}")

    print("\ntargets (this run):")
    if "hybrid" in rows:
        sec, _, mse, rmse = rows["hybrid"]
        ok = mse <= 1e-10 and rmse <= 1e-3 and sec < 10
        print(f"  hybrid: 1-step MSE {_fmt(mse)} <= 1e-10, 50-step RMSE {_fmt(rmse)} <= 1e-3, {sec:.1f} s < 10 s:"
              f" {'met' if ok else 'NOT met'}")  # fmt: skip
    implicit = {k: v for k, v in rows.items() if k.split(" ")[0] in ("mlp", "gaussian_mlp", "ensemble", "vae",
                                                                       "gru", "transformer")}  # fmt: skip
    if implicit:
        label, (sec, _, mse, _) = min(implicit.items(), key=lambda kv: kv[1][2])
        ok = mse <= 1e-6 and sec < 20
        print(f"  best implicit ({label}): 1-step MSE {_fmt(mse)} <= 1e-6 in {sec:.1f} s < 20 s: "
              f"{'met' if ok else 'NOT met'}")  # fmt: skip

    if not args.skip_rk4:
        batches = [64] if quick else [16, 64, 256]
        repeats = 3 if quick else 7
        print(f"\nRK4 Neural ODE, forward + backward through a {HORIZON}-step rollout (NeuralField 64x64 tanh, "
              f"float32), best of {repeats}:")  # fmt: skip
        print(f"{'batch':>6} {'physwm ms':>10} {'td perturb':>11} {'td counter':>11} {'plain':>8} "
              f"{'x perturb':>10} {'x counter':>10} {'x plain':>8}")  # fmt: skip
        for b in batches:
            best = rk4_throughput(b, repeats, seed=args.seed)
            p = best["physwm"]
            print(f"{b:>6} {p * 1e3:>10.2f} {best['torchdiffeq perturb'] * 1e3:>11.2f} "
                  f"{best['torchdiffeq counter'] * 1e3:>11.2f} {best['plain torch'] * 1e3:>8.2f} "
                  f"{best['torchdiffeq perturb'] / p:>10.2f} {best['torchdiffeq counter'] / p:>10.2f} "
                  f"{best['plain torch'] / p:>8.2f}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
