"""Adapting to a changed system: the adaptation split, the planning rows and the timings of issue 11.

Regenerate the committed table with one command::

    .venv/bin/python bench/adaptation.py --out data/reference/adaptation.md --overwrite

Protocol. Base models are trained (``fit``'s recipes, ``--train-steps`` gradient steps at most) on the reference
study's ``friction`` task: CartPole with friction (``physwm.FRICTION_PARAMS``), pole hanging, uniform forces of
at most 5 N, 8 episodes of 250 steps. Each changed system (pole 2x heavier, 1.5x longer, 3x friction, all three
at once, and CaDM's held-out pole half-lengths 0.225 and 0.775 m; CaDM trains on 0.4-0.6) gives K = 10, 30, 100,
300 transitions (the start of one episode, seed 100) for adaptation and 4 episodes of 250 steps (seed 200) to
test on: the 100-step open-loop RMSE in units of the test data's state spread (the studies' ``rmse@100``). Rows:

* hybrid adapted (constants): :func:`physwm.adapt`, residual frozen; (constants + residual): ``residual="tune"``;
* explicit adapted: the explicit model's constants re-identified;
* MLP / ensemble fine-tuned: :func:`physwm.adapt` on an implicit model (L-BFGS, same budget and regulariser);
* hybrid / MLP from scratch: ``fit`` on the K transitions alone (the hybrid starts from CartPole-v1's constants);
* oracle: a hybrid trained (``fit``) on 5,000 transitions of the changed system (20 episodes of 250 steps).

CaDM's force ranges (2-3.5 / 16.5-18 N) change the action scale of gym's discrete CartPole, not the dynamics of a
model that takes the force in newtons, so they are not a changed system here (left out).

``--planning``: swing-up and balance on the changed systems with the fixed model (the explicit model identified on
the friction task), the adapted one (30 transitions) and the :class:`~physwm.control.AdaptiveController`
(every 10 steps, window 50), CEM (``--planner``: or iLQR), ``--seeds`` seeds. ``--timing``: CPU time of ``adapt``
on 30 transitions against fine-tuning the MLP on them, and of one online re-identification against one CEM
planning step.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import physwm
from physwm import FRICTION_PARAMS, adapt, build, collect, fit
from physwm.control import CEM, AdaptiveController, default_planner_options, get_task, make_planner, run_episode
from physwm.envs import make_env
from physwm.evaluate import rollout_rmse
from physwm.files import atomic_write_text

CHANGED = {
    "heavier_pole": {"masspole": 0.2},
    "longer_pole": {"length": 0.75},
    "more_friction": {"cart_viscous": 0.3, "cart_coulomb": 0.3, "pole_damping": 0.015},
    "all_three": {"masspole": 0.2, "length": 0.75, "cart_viscous": 0.3, "cart_coulomb": 0.3, "pole_damping": 0.015},
    "cadm_short": {"length": 0.225},
    "cadm_long": {"length": 0.775},
}
KS = (10, 30, 100, 300)
#: Planners of the planning rows (``--planner``): ``ilqr_rt`` is iLQR with real-time iterations (``warm_iterations=1``).
PLANNER_VARIANTS = {"cem": ("cem", {}), "ilqr": ("ilqr", {}), "ilqr_rt": ("ilqr", {"warm_iterations": 1})}
START = dict(start_low=[-0.5, -0.5, math.pi - 1, -1.0], start_high=[0.5, 0.5, math.pi + 1, 1.0])


def data(params, episodes: int, steps: int, seed: int):
    env = make_env("physwm/CartPole-v0", None, params, terminate=False)
    policy = physwm.make_policy("uniform", force_mag=5.0)
    return collect(env, policy, episodes, steps, seed, progress=False, **START)


def trained(name: str, train, steps: int, seed: int = 0):
    model = build(name, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit(model, train, progress=False, steps=steps, seed=seed)
    return model


def adaptation_split(args) -> tuple[list[str], dict]:
    base_train = data(FRICTION_PARAMS, 8, 250, 0)
    t0 = time.process_time()
    base = {name: trained(name, base_train, args.train_steps) for name in ("hybrid", "explicit", "mlp", "ensemble")}
    print(f"base models trained in {time.process_time() - t0:.0f} s CPU", file=sys.stderr)
    lines, figure = [], {}
    for split in args.splits:
        truth = FRICTION_PARAMS.replace(**CHANGED[split])
        test = data(truth, 4, 250, 200)
        pool = data(truth, 1, max(KS), 100)
        oracle = trained("hybrid", data(truth, 20, 250, 300), args.train_steps)
        rows: dict[str, list[float]] = {}
        consts: dict[int, dict] = {}
        for K in KS:
            few = pool.head(K)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                models = {
                    "hybrid adapted (constants)": adapt(base["hybrid"], few),
                    "hybrid adapted (constants + residual)": adapt(base["hybrid"], few, residual="tune"),
                    "explicit adapted": adapt(base["explicit"], few),
                    "MLP fine-tuned": adapt(base["mlp"], few),
                    "ensemble fine-tuned": adapt(base["ensemble"], few),
                    "hybrid from scratch": trained("hybrid", few, args.train_steps),
                    "MLP from scratch": trained("mlp", few, args.train_steps),
                    "fixed hybrid (not adapted)": base["hybrid"],
                    "oracle hybrid (5,000 transitions)": oracle,
                }
            for row, m in models.items():
                rows.setdefault(row, []).append(rollout_rmse(m, test, 100))
            a = models["hybrid adapted (constants)"].adaptation
            consts[K] = {n: (a.constants[n], a.low.get(n, math.nan), a.high.get(n, math.nan)) for n in a.constants}
            print(f"{split} K={K}: " + ", ".join(f"{k} {v[-1]:.3g}" for k, v in rows.items()), file=sys.stderr)
        figure[split] = {"rows": rows, "constants": consts, "truth": truth.to_dict()}
        lines += table(split, CHANGED[split], rows, consts, truth.to_dict())
    return lines, figure


def table(split, change, rows, consts, truth) -> list[str]:
    out = [f"### `{split}`: {', '.join(f'{k} = {v}' for k, v in change.items())}", "",
           "| model | " + " | ".join(f"K = {k}" for k in KS) + " |", "|---|" + "---|" * len(KS)]  # fmt: skip
    for row, vals in rows.items():
        out.append(f"| {row} | " + " | ".join(f"{v:.3g}" for v in vals) + " |")
    best_implicit = min(rows["MLP fine-tuned"][1], rows["ensemble fine-tuned"][1])
    h, o = rows["hybrid adapted (constants)"][1], rows["oracle hybrid (5,000 transitions)"][1]
    out += ["", f"K = 30: adapted hybrid / oracle = {h / o:.2f}x (target <= 2x); best fine-tuned implicit / adapted "
            f"hybrid = {best_implicit / h:.0f}x (target >= 30x).", "",
            "Identified constants of the adapted hybrid (constants only), value [95% interval], and the truth:", "",
            "| constant | truth | " + " | ".join(f"K = {k}" for k in KS) + " |",
            "|---|---|" + "---|" * len(KS)]  # fmt: skip
    for n in consts[KS[0]]:
        cells = [f"{consts[k][n][0]:.4g} [{consts[k][n][1]:.4g}, {consts[k][n][2]:.4g}]" for k in KS]
        out.append(f"| {n} | {truth[n]:.4g} | " + " | ".join(cells) + " |")
    err100 = max(abs(consts[100][n][0] / truth[n] - 1) for n in consts[100] if truth[n] != 0)
    out += ["", f"Largest relative error of an identified constant at K = 100: {100 * err100:.2f}% (target <= 2%).", ""]
    return out


def figures(figure: dict, out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    names = []
    fig, axes = plt.subplots(1, len(figure), figsize=(4 * len(figure), 3.5), squeeze=False)
    for ax, (split, f) in zip(axes[0], figure.items()):
        for row, vals in f["rows"].items():
            ax.loglog(KS, vals, marker="o", label=row)
        ax.set_title(split)
        ax.set_xlabel("transitions of the changed system K")
    axes[0][0].set_ylabel("rmse@100 (units of the state spread)")
    axes[0][-1].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out_dir / "adaptation_error_vs_k.png", dpi=90)
    names.append("adaptation_error_vs_k.png")
    plt.close(fig)
    consts = list(next(iter(figure.values()))["constants"][KS[0]])
    fig, axes = plt.subplots(len(figure), len(consts), figsize=(2.6 * len(consts), 2.2 * len(figure)), squeeze=False)
    for i, (split, f) in enumerate(figure.items()):
        for j, n in enumerate(consts):
            v = np.array([f["constants"][k][n] for k in KS])
            ax = axes[i][j]
            ax.errorbar(KS, v[:, 0], yerr=[v[:, 0] - v[:, 1], v[:, 2] - v[:, 0]], marker="o", capsize=3)
            ax.axhline(f["truth"][n], color="k", lw=0.8, ls="--")
            ax.set_xscale("log")
            ax.set_title(f"{split}: {n}", fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "adaptation_constants_vs_k.png", dpi=90)
    names.append("adaptation_constants_vs_k.png")
    plt.close(fig)
    return names


def planning_rows(args) -> list[str]:
    fixed = trained("explicit", data(FRICTION_PARAMS, 4, 200, 0), args.train_steps)
    name, extra = PLANNER_VARIANTS[args.planner]
    what = {"cem": "CEM", "ilqr": "iLQR", "ilqr_rt": "iLQR with real-time iterations (`warm_iterations=1`)"}
    out = ["## Planning on the changed systems", "",
           f"{what[args.planner]} with the task's defaults; the fixed model: the explicit model identified on the "
           "friction task; "
           "adapted: `adapt` on 30 transitions (one episode under uniform forces); online: "
           f"`AdaptiveController(every=10, window=50)`. Successes over {len(args.seeds)} seeds "
           f"(seeds {args.seeds[0]}-{args.seeds[-1]}).", "",
           "| changed system | task | fixed | adapted (30 transitions) | online adaptive | re-identification ms CPU "
           "(mean) |", "|---|---|---|---|---|---|"]  # fmt: skip
    for split in args.planning_splits:
        truth = FRICTION_PARAMS.replace(**CHANGED[split])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            adapted = adapt(fixed, data(truth, 1, 30, 100))
        for task in args.tasks:
            env = make_env("physwm/CartPole-v0", task, truth)
            t = get_task(task)
            wins, ms = dict.fromkeys(("fixed", "adapted", "online"), 0), []
            for seed in args.seeds:  # seeds outer: a log cut short still holds whole seeds
                for row in wins:
                    model = adapted if row == "adapted" else fixed
                    planner = make_planner(name, model, t.cost, seed=seed, progress=False,
                                           **default_planner_options(env, t), **extra)
                    ctl = AdaptiveController(planner, every=10, window=50) if row == "online" else planner
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        ep = run_episode(ctl, env, t, seed=seed)
                    wins[row] += int(ep.success)
                    print(f"  {split} {task} seed {seed} {row}: success {bool(ep.success)} "
                          f"({time.process_time():.0f} s CPU so far)", file=sys.stderr, flush=True)  # fmt: skip
                    if row == "online":
                        ms += [h["cpu_ms"] for h in ctl.history]
                        ctl.reset()  # the fixed model's constants back to where they were
            n = len(args.seeds)
            out.append(f"| {split} | {task} | {wins['fixed']}/{n} | {wins['adapted']}/{n} | {wins['online']}/{n} | "
                       f"{np.mean(ms):.1f} |")  # fmt: skip
            print(out[-1], file=sys.stderr)
    return out + [""]


def timing(args) -> list[str]:
    base_train = data(FRICTION_PARAMS, 8, 250, 0)
    hybrid, mlp = trained("hybrid", base_train, args.train_steps), trained("mlp", base_train, args.train_steps)
    few = data(FRICTION_PARAMS.replace(masspole=0.2), 1, 30, 100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adapt(hybrid, few), adapt(mlp, few)  # warm-up
        a = min(adapt(hybrid, few).adaptation.cpu_seconds for _ in range(3))
        b = min(adapt(mlp, few).adaptation.cpu_seconds for _ in range(3))
    env = make_env("physwm/CartPole-v0", "swingup", FRICTION_PARAMS.replace(masspole=0.2))
    t = get_task("swingup")
    planner = CEM(hybrid, t.cost, seed=0, progress=False, **default_planner_options(env, t))
    ctl = AdaptiveController(planner, every=10, window=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep = run_episode(ctl, env, t, seed=0, steps=120)
    re_ms = float(np.median([h["cpu_ms"] for h in ctl.history]))
    plan_ms = 1e3 * float(np.median(ep.plan_cpu_times))
    return ["## Timing (CPU time, `time.process_time`, one torch thread)", "",
            f"- `adapt(hybrid, 30 transitions)` (constants, with intervals): {a:.3f} s; fine-tuning the MLP on the "
            f"same 30 transitions: {b:.3f} s; ratio {a / b:.2f}x (target: adapt < 1 s).",
            f"- one online re-identification of the hybrid (window 50): {re_ms:.1f} ms (median); one CEM planning "
            f"step on it (swing-up): {plan_ms:.1f} ms; ratio {re_ms / plan_ms:.2f}x (target < 20 ms).", ""]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="write the Markdown table here")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--splits", nargs="*", default=list(CHANGED), choices=list(CHANGED),
                    help="changed systems of the adaptation split (none: skip it)")
    ap.add_argument("--train-steps", type=int, default=1500, help="gradient-step cap of every fit")
    ap.add_argument("--planning", action="store_true", help="also the planning rows")
    ap.add_argument("--planning-splits", nargs="+", default=["heavier_pole", "longer_pole", "more_friction",
                                                            "all_three"], choices=list(CHANGED))  # fmt: skip
    ap.add_argument("--tasks", nargs="+", default=["swingup", "balance"])
    ap.add_argument("--planner", default="cem", choices=list(PLANNER_VARIANTS), help="planner of the planning rows")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    ap.add_argument("--timing", action="store_true", help="only the timings")
    ap.add_argument("--no-timing", action="store_true", help="skip the timings")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.out is not None and args.out.exists() and not args.overwrite:
        sys.exit(f"{args.out} exists; pass --overwrite")
    c0 = time.process_time()
    lines = ["# Adapting to a changed system (issue 11)", "",
             f"Regenerate: `.venv/bin/python {' '.join(sys.argv)}` (physwm {physwm.__version__}).", "",
             (__doc__ or "").split("Protocol. ")[1].split("``--planning``")[0].strip(), ""]  # fmt: skip
    if args.timing:
        lines += timing(args)
    else:
        if args.splits:
            split_lines, figure = adaptation_split(args)
            lines += ["## Adaptation split: rmse@100 against K", ""] + split_lines
            if args.out is not None:
                names = figures(figure, args.out.parent / "adaptation_figures")
                lines += [f"![{n}](adaptation_figures/{n})" for n in names] + [""]
        if args.planning:
            lines += planning_rows(args)
        if not args.no_timing:
            lines += timing(args)
    lines.append(f"Total {time.process_time() - c0:.0f} s CPU on a shared, loaded 2-core machine.")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        atomic_write_text(args.out, text, overwrite=args.overwrite)


if __name__ == "__main__":
    main()
