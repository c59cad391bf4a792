"""Noisy data and uncertainty on the default study's friction task (issue 12): one command, one table.

For each observation-noise level (0, 0.3%, 1%, 3% of each state's spread, on the training and validation
data; the test splits are exact, so errors are measured against the true states) it trains, on the task's
5,000 training transitions:

* ``explicit``: ``fit(model, data, obs_noise="estimate")`` (multiple shooting) and the plain one-step fit;
* ``hybrid``: ``fit(..., obs_noise="estimate")``; ``mlp`` (the default study's best implicit model on this
  task), plain;

each with the default study's fit settings (``StudyConfig.fit_for``: 1,000 steps, cosine schedule, keep the
nominal physics if better on validation), and reports the largest relative error of the identified constants,
the 100-step normalised RMSE in distribution (``long_horizon``) and the hybrid's advantage over the MLP on the
same-system extrapolation splits (geometric mean of the ratios, as the study's headline). At 1% noise it
trains the default ``ensemble`` and reports its calibration error along the horizon (1, 10, 50 steps) in and
out of distribution, as trained and after recalibration (:class:`physwm.evaluate.Recalibration`, fitted on 40
validation episodes of its own).

    .venv/bin/python bench/noise.py --out data/reference/noise.md --overwrite

CPU seconds are printed next to every fit (the lead's machine is loaded; compare ratios, not seconds).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path

import numpy as np

from physwm.data import ObservationNoise, collect, make_policy
from physwm.envs import make_env
from physwm.evaluate import Recalibration, evaluate, identified_constants, rollout_calibration, state_scale
from physwm.files import atomic_write_text
from physwm.models import ODE_FAMILIES, build
from physwm.studies import default_config
from physwm.train import fit

LEVELS = (0.0, 0.003, 0.01, 0.03)


def split_data(task, split, noise: float):
    system = task.system_class
    env = make_env(split.env_id(system), params=task.true_params(split), max_episode_steps=split.max_steps,
                   **split.env_options)  # fmt: skip
    obs = ObservationNoise(noise, relative=True) if noise > 0 else None
    return collect(env, make_policy(split.policy, **split.policy_options), split.episodes, split.max_steps,
                   split.seed, split.start_low, split.start_high, progress=False, obs_noise=obs)  # fmt: skip


def same_system(task, split) -> bool:
    a, b = task.true_params().to_dict(), task.true_params(split).to_dict()
    return split.distribution == "out" and all(a[k] == b[k] for k in a if k != "force_mag")


def rmse(model, data, h):
    return evaluate(model, data, horizons=[h], scale=state_scale(data), max_windows=64, seed=0)[f"rmse@{h}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--steps", type=int, default=1000, help="gradient-step budget of the network fits")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cfg = default_config()
    task = cfg.task("friction")
    truth = task.true_params().to_dict()
    tests = {s.name: split_data(task, s, 0.0) for s in task.tests}
    rows, calib = [], {}
    for level in LEVELS:
        train = split_data(task, task.train, level)
        val = split_data(task, task.val_split(), level)
        results = {}
        for name, opts in (("explicit", {"obs_noise": "estimate"}), ("explicit one-step", {"obs_noise": 0.0}),
                           ("hybrid", {"obs_noise": "estimate"}), ("mlp", {})):  # fmt: skip
            family = name.split()[0]
            extra = {"integrator": task.integrator} if family in ODE_FAMILIES else {}
            model = build(family, task.model_system(), seed=args.seed, **extra)
            t0 = time.process_time()
            config = cfg.fit_for(cfg.model(family)).replace(seed=args.seed, steps=args.steps, diagnose=False, **opts)
            fit(model, train, val, config=config, progress=False)
            cpu = time.process_time() - t0
            ident = identified_constants(model)
            const = max(abs(v / truth[k] - 1) for k, v in ident.items()) if ident else math.nan
            ood = {s.name: rmse(model, tests[s.name], 100) for s in task.tests if same_system(task, s)}
            results[name] = {"const": const, "rmse100": rmse(model, tests["long_horizon"], 100), "ood": ood,
                             "cpu": cpu}  # fmt: skip
            print(f"noise {level:.1%} {name}: constants {const:.2%}, 100-step {results[name]['rmse100']:.4g}, "
                  f"{cpu:.0f} CPU s", flush=True)  # fmt: skip
        ratios = [results["mlp"]["ood"][k] / results["hybrid"]["ood"][k] for k in results["hybrid"]["ood"]]
        rows.append((level, results, math.exp(np.mean(np.log(ratios)))))
        if level == 0.01:
            ens = build("ensemble", task.model_system(), seed=args.seed)
            t0 = time.process_time()
            fit(ens, train, val, config=cfg.fit.replace(seed=args.seed, steps=args.steps), progress=False)
            # recalibration data: validation episodes of its own (40, another seed), noisy like the training data
            recal_split = dataclasses.replace(task.val_split(), episodes=40, seed=11)
            recal = Recalibration.fit(ens, split_data(task, recal_split, level), 50, max_windows=None, seed=1)
            for s in task.tests:  # held-out rollouts, observed with the same noise as the training data
                if s.name == "long_horizon":
                    continue
                data = split_data(task, s, level)
                raw = rollout_calibration(ens, data, (1, 10, 50), max_windows=None)
                fixed = rollout_calibration(ens, data, (1, 10, 50), recalibration=recal, max_windows=None)
                calib[s.name] = (raw, fixed)
                print(s.name, {h: round(fixed[h]["calibration_error"], 3) for h in fixed}, flush=True)
            calib["cpu"] = time.process_time() - t0
    lines = ["# Noisy data and uncertainty (issue 12), friction task of the default study", "",
             "Regenerate: `.venv/bin/python bench/noise.py --out data/reference/noise.md --overwrite` "
             f"(seed {args.seed}, {args.steps} gradient steps per network fit; noise on training and validation "
             "data, exact test data).", "",
             "| noise | model | largest constant error | 100-step RMSE (in dist.) | CPU s |",
             "|---|---|---|---|---|"]  # fmt: skip
    for level, res, _ in rows:
        for name, r in res.items():
            c = "–" if math.isnan(r["const"]) else f"{r['const']:.2%}"
            lines.append(f"| {level:.1%} | {name} | {c} | {r['rmse100']:.4g} | {r['cpu']:.0f} |")
    lines += ["", "Hybrid's advantage over the MLP on the same-system extrapolation splits (geometric mean of "
              "MLP / hybrid 100-step RMSE):", ""]  # fmt: skip
    lines += [f"- noise {level:.1%}: {ratio:.1f}x" for level, _, ratio in rows]
    if calib:
        lines += ["", "Ensemble (5 Gaussian MLPs, trained at 1% noise) calibration error (levels 0.5, 0.9, 0.95) "
                  "along the horizon on held-out rollouts observed with the same 1% noise (every window), as "
                  "trained -> recalibrated (per-horizon factors fitted on 40 validation episodes of their own); "
                  "in_dist is in distribution, the others out:",
                  "", "| split | 1 step | 10 steps | 50 steps |", "|---|---|---|---|"]  # fmt: skip
        for split, (raw, fixed) in ((k, v) for k, v in calib.items() if k != "cpu"):
            cells = [f"{raw[h]['calibration_error']:.3f} -> {fixed[h]['calibration_error']:.3f}" for h in (1, 10, 50)]
            lines.append(f"| {split} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        atomic_write_text(args.out, text, overwrite=args.overwrite)


if __name__ == "__main__":
    main()
