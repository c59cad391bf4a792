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
the friction task), the adapted one (30 transitions), the :class:`~physwm.control.AdaptiveController` (every 10
steps, window 50) and the oracle (the true constants), ``--planner``: iLQR with real-time iterations and CEM by
default, ``--seeds`` seeds. ``--tuning``: ``residual="tune"`` with and without its validation. ``--timing``: CPU
time of ``adapt`` on 30 transitions against fine-tuning the MLP on them, and of one online re-identification and one
control step of the adaptive controller (iLQR with real-time iterations and CEM).
"""

from __future__ import annotations

import argparse
import copy
import math
import multiprocessing
import resource
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

import physwm
from physwm import FRICTION_PARAMS, adapt, build, collect, fit
from physwm.control import AdaptiveController, default_planner_options, get_task, make_planner, run_episode
from physwm.envs import make_env
from physwm.evaluate import rollout_rmse
from physwm.files import atomic_write_text
from physwm.train.adapt import constant_paths, constant_raw

CHANGED = {
    "heavier_pole": {"masspole": 0.2},
    "longer_pole": {"length": 0.75},
    "more_friction": {"cart_viscous": 0.3, "cart_coulomb": 0.3, "pole_damping": 0.015},
    "all_three": {"masspole": 0.2, "length": 0.75, "cart_viscous": 0.3, "cart_coulomb": 0.3, "pole_damping": 0.015},
    "cadm_short": {"length": 0.225},
    "cadm_long": {"length": 0.775},
    "drag": {"cart_drag": 0.15, "pole_drag": 0.005},  # physwm.DRAG_PARAMS: an effect outside the constants' reach
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


def with_true_constants(model, truth):
    """A copy of ``model`` whose learnable constants are set to ``truth``'s (the planning rows' oracle)."""
    out = copy.deepcopy(model)
    with torch.no_grad():
        for _, path, name in constant_paths(out):
            spec = type(out.get_submodule(path)).constants[name]
            constant_raw(out, path, name).fill_(float(getattr(truth, name)) / spec.scale)
    return out


PLANNING_ROWS = ("fixed", "adapted", "online", "oracle")


def planning_table(planner_name: str, split: str, args) -> list[dict]:
    """The results of one planner on one changed system (each of ``args.tasks``); one job of ``--jobs``."""
    torch.set_num_threads(args.threads)
    fixed = trained("explicit", data(FRICTION_PARAMS, 4, 200, 0), args.train_steps)
    name, extra = PLANNER_VARIANTS[planner_name]
    truth = FRICTION_PARAMS.replace(**CHANGED[split])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = {"fixed": fixed, "adapted": adapt(fixed, data(truth, 1, 30, 100)), "online": fixed,
                  "oracle": with_true_constants(fixed, truth)}  # fmt: skip
    out = []
    for task in args.tasks:
        env = make_env("physwm/CartPole-v0", task, truth)
        t = get_task(task)
        wins, reid, steps = dict.fromkeys(PLANNING_ROWS, 0), [], []
        for seed in args.seeds:  # seeds outer: a log cut short still holds whole seeds
            for row in PLANNING_ROWS:
                planner = make_planner(name, models[row], t.cost, seed=seed, progress=False,
                                       **default_planner_options(env, t), **extra)  # fmt: skip
                ctl = AdaptiveController(planner, every=10, window=50) if row == "online" else planner
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ep = run_episode(ctl, env, t, seed=seed)
                wins[row] += int(ep.success)
                print(f"  {planner_name} {split} {task} seed {seed} {row}: success {bool(ep.success)} "
                      f"({time.process_time():.0f} s CPU so far)", file=sys.stderr, flush=True)  # fmt: skip
                if row == "online":
                    reid += [h["cpu_ms"] for h in ctl.history]
                    steps += list(1e3 * np.asarray(ep.plan_cpu_times))
                    ctl.reset()  # the fixed model's constants back to where they were
        out.append({"split": split, "task": task, "wins": wins, "reid": reid, "steps": steps})
        print(f"{planner_name} {split} {task}: {wins}", file=sys.stderr, flush=True)
    return out


def planning_rows(args) -> list[str]:
    what = {"cem": "CEM with the task's defaults",
            "ilqr": "iLQR with the task's defaults",
            "ilqr_rt": "iLQR with real-time iterations (`warm_iterations=1`: one iteration per control step, warm "
                       "started; the planner that fits a 50 Hz control loop on this machine)"}  # fmt: skip
    jobs = [(p, split) for p in args.planner for split in args.planning_splits]
    if args.jobs > 1:  # one process per (planner, changed system); every episode is seeded, so the rows are the same
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(planning_table, *zip(*jobs), [args] * len(jobs)))
    else:
        results = [planning_table(p, split, args) for p, split in jobs]
    out = ["## Planning on the changed systems", "",
           "Columns: the fixed model (the explicit model identified on the friction task); adapted: `adapt` on 30 "
           "transitions of the changed system (one episode under uniform forces); online: "
           "`AdaptiveController(every=10, window=50)` around the fixed model, re-identifying its constants from the "
           "episode's own transitions; oracle: the fixed model with the changed system's true constants (what the "
           f"planner achieves with a perfect model). Successes over {len(args.seeds)} seeds (seeds "
           f"{args.seeds[0]}-{args.seeds[-1]}); CPU times are those of the online controller, one torch thread.", ""]
    for planner_name in args.planner:
        out += [f"### {what[planner_name]}", "",
                "| changed system | task | fixed | adapted (30 transitions) | online adaptive | oracle (true "
                "constants) | re-identification ms CPU (median / max) | online control step ms CPU (mean) |",
                "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        records = [r for (p, _), rows in zip(jobs, results) if p == planner_name for r in rows]
        n = len(args.seeds)
        for r in records:
            out.append(f"| {r['split']} | {r['task']} | " + " | ".join(f"{r['wins'][k]}/{n}" for k in PLANNING_ROWS)
                       + f" | {np.median(r['reid']):.1f} / {np.max(r['reid']):.1f} | {np.mean(r['steps']):.1f} |")
        out += [""] + reading(records, n) + [""]
    return out


def reading(records: list[dict], n: int) -> list[str]:
    """What the rows of one planner test, computed from them: where the fixed model fails (a test of adaptation)
    and whether the online controller reaches 9 of 10 there, and where the planner fails even with the truth."""
    need = math.ceil(0.9 * n)
    tests = [r for r in records if r["wins"]["fixed"] < need]
    lines = [f"- Rows where the fixed model fails (below {need}/{n}), the tests of adaptation: "
             + ("; ".join(f"{r['split']} {r['task']}: fixed {r['wins']['fixed']}/{n}, online {r['wins']['online']}/{n}"
                          f" ({'meets' if r['wins']['online'] >= need else 'misses'} {need}/{n}), adapted "
                          f"{r['wins']['adapted']}/{n}, oracle {r['wins']['oracle']}/{n}" for r in tests)
                or "none") + "."]  # fmt: skip
    limited = [r for r in records if r["wins"]["oracle"] < need]
    if limited:
        lines.append("- Rows where the planner fails even with the true constants (oracle below "
                     f"{need}/{n}: the planner's limit, not the model's): "
                     + "; ".join(f"{r['split']} {r['task']} (oracle {r['wins']['oracle']}/{n}, adapted "
                                 f"{r['wins']['adapted']}/{n}, online {r['wins']['online']}/{n})" for r in limited)
                     + ".")  # fmt: skip
    return lines


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
    rows = []
    for planner_name in ("ilqr_rt", "cem"):
        name, extra = PLANNER_VARIANTS[planner_name]
        planner = make_planner(name, hybrid, t.cost, seed=0, progress=False, **default_planner_options(env, t),
                               **extra)  # fmt: skip
        ctl = AdaptiveController(planner, every=10, window=50)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run_episode(ctl, env, t, seed=0, steps=20)  # warm-up (a compiled planner compiles here)
            ctl.reset()
            ep = run_episode(ctl, env, t, seed=0, steps=120)
        re_ms = np.asarray([h["cpu_ms"] for h in ctl.history])
        step_ms = 1e3 * np.asarray(ep.plan_cpu_times)
        rows.append(f"- {planner_name}: one online re-identification of the hybrid (window 50): {np.median(re_ms):.1f} "
                    f"ms median, {re_ms.max():.1f} ms max over {len(re_ms)} fits (target < 20 ms); one control step "
                    f"of the adaptive controller (planning plus any re-identification): {np.median(step_ms):.1f} ms "
                    f"median, {np.mean(step_ms):.1f} ms mean, {step_ms.max():.1f} ms max (50 Hz: 20 ms).")  # fmt: skip
    return ["## Timing (CPU time, `time.process_time`, one torch thread)", "",
            f"- `adapt(hybrid, 30 transitions)` (constants, with intervals): {a:.3f} s; fine-tuning the MLP on the "
            f"same 30 transitions: {b:.3f} s; ratio {a / b:.2f}x (target: adapt < 1 s).",
            *rows, ""]  # fmt: skip


def tuning_rows(args) -> list[str]:
    """``adapt(residual="tune")`` with and without its held-out validation against constants only."""
    base = trained("hybrid", data(FRICTION_PARAMS, 8, 250, 0), args.train_steps)
    out = ["## Tuning the residual too (`residual=\"tune\"`): with and without validation", "",
           "The hybrid trained on the friction task, adapted to K transitions of each changed system (seed 100) with "
           "its residual frozen (constants only), tuned with the default held-out check (`validation=0.2`: the tuning "
           "is kept only if, tuned on the head of each episode, it predicts the held-out tail better than the "
           "constants alone; then tuned again on all K), and tuned always (`validation=None`). rmse@100 on 4 test "
           "episodes (seed 200); `drag` adds aerodynamic drag, outside the constants' reach.", "",
           "| changed system | K | constants only | tuned, validated (kept?) | tuned always |", "|---|---|---|---|---|"]
    for split in args.splits:
        truth = FRICTION_PARAMS.replace(**CHANGED[split])
        test, pool = data(truth, 4, 250, 200), data(truth, 1, max(KS), 100)
        for K in KS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                frozen = adapt(base, pool.head(K))
                validated = adapt(base, pool.head(K), residual="tune")
                always = adapt(base, pool.head(K), residual="tune", validation=None)
            kept = "kept" if validated.adaptation.mode == "constants+residual" else "rejected"
            out.append(f"| {split} | {K} | {rollout_rmse(frozen, test, 100):.3g} | "
                       f"{rollout_rmse(validated, test, 100):.3g} ({kept}) | {rollout_rmse(always, test, 100):.3g} |")
            print(out[-1], file=sys.stderr, flush=True)
    return out + [""]


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
    ap.add_argument("--planner", nargs="+", default=["ilqr_rt", "cem"], choices=list(PLANNER_VARIANTS),
                    help="planners of the planning rows (a table each)")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    ap.add_argument("--timing", action="store_true", help="only the timings")
    ap.add_argument("--tuning", action="store_true", help="only the residual-tuning table (--splits)")
    ap.add_argument("--no-timing", action="store_true", help="skip the timings")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1, help="processes for the planning rows (one per planner and "
                    "changed system at most)")
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
    elif args.tuning:
        lines += tuning_rows(args)
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
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines.append(f"Total {time.process_time() - c0 + children.ru_utime + children.ru_stime:.0f} s CPU (this "
                 "process and its jobs).")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        atomic_write_text(args.out, text, overwrite=args.overwrite)


if __name__ == "__main__":
    main()
