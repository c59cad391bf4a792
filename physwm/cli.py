"""The ``physwm`` command: wires the package's pieces together, one subcommand per job.

Each subcommand is a pair ``_add_<name>(subparsers)`` / ``_run_<name>(args)``; ``main`` dispatches.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import gymnasium
import torch

from . import plot
from .control import PLANNERS, check_model_fits_env, default_planner_options, get_task, make_planner, run_episode
from .control import task_names as _task_names
from .control.registry import planner_options
from .data import POLICIES, Trajectories, collect, make_policy
from .discover import DISCOVERY_SPACES, discover
from .envs import ENV_IDS, env_info, make_env
from .files import atomic_write_text
from .integrators import INTEGRATOR_NAMES
from .models import MODEL_NAMES, ODE_FAMILIES, ODEModel, build
from .studies import EXECUTORS, StudyConfig, default_config, draw_figures, make_executor, run_study
from .studies.runner import prepare_out
from .systems import DEFAULT_SYSTEM, SYSTEMS
from .train import FitConfig, fit, load_checkpoint, save_checkpoint
from .version import __version__

__all__ = ["main"]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="physwm",
        description="Physics-informed world models: collect CartPole data, fit and compare dynamics models, plan.",
    )
    parser.add_argument("--version", action="version", version=f"physwm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in _COMMANDS:
        add(sub)
    return parser


_COMMANDS: list = []


def command(add):
    """Register a subcommand's ``_add_<name>`` function (keeps the list in one place)."""
    _COMMANDS.append(add)
    return add


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``physwm`` console command; returns the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, OSError) as err:  # bad input, bad files, permissions, full disks
        what = f"{type(err).__name__}: " if isinstance(err, OSError) and not isinstance(err, FileExistsError) else ""
        print(f"physwm {args.command}: error: {what}{err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"physwm {args.command}: interrupted", file=sys.stderr)
        return 130


# --- subcommands ------------------------------------------------------------------------------------
# (each section below belongs to one job; keep them small: parse arguments, call the library, print)


# --- collect (physwm.data) ---



@command
def _add_collect(sub) -> None:
    p = sub.add_parser(
        "collect",
        help="run a policy in an environment and save the trajectories (.npz)",
        description="Run a policy in an environment, record exact float64 states and the controls applied, "
        "and save them as a physwm Trajectories .npz file.",
    )
    p.add_argument("--env", choices=ENV_IDS, default=ENV_IDS[0], help="environment id (default %(default)s)")
    p.add_argument("--policy", choices=list(POLICIES), default="random", help="policy (default %(default)s)")
    p.add_argument("--episodes", type=int, default=100, help="number of episodes (default %(default)s)")
    p.add_argument(
        "--max-steps", type=int, default=500, help="max transitions per episode; also the time limit (default 500)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of env, policy and start states (default 0)")
    p.add_argument("--out", required=True, help="output file (.npz)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--noise-std", type=float, default=None, help="lqr only: exploration noise std, N (default 0)")
    p.add_argument(
        "--start-low", type=float, nargs="+", metavar="V", help="start box low: 1 number or one per state entry"
    )
    p.add_argument("--start-high", type=float, nargs="+", metavar="V", help="random start box high (as --start-low)")
    g = p.add_argument_group("physwm environments only")
    g.add_argument("--friction", action="store_true", help="the system's friction variant (CartPole: cart and pole "
                   "friction, physwm.FRICTION_PARAMS)")
    g.add_argument("--no-terminate", action="store_true", help="never terminate early (full swings)")
    g.add_argument("--integrator", default=None, help="integrator name (default rk4)")
    g.add_argument("--substeps", type=int, default=None, help="sub-steps per period (default 1; 10 with friction)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_collect)


def _check_out_file(path: str, overwrite: bool) -> Path:
    """Refuse an output file that cannot be written, before any work starts."""
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"--out {out} is a directory; give a file name such as data.npz")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"--out {out}: directory {parent} does not exist")
    if not _writable(parent):
        raise PermissionError(f"--out {out}: directory {parent} is not writable")
    return out


def _writable(directory: Path) -> bool:
    return os.access(directory, os.W_OK | os.X_OK)


def _run_collect(args) -> int:
    env_kwargs: dict = {"max_episode_steps": args.max_steps}
    system = next((c for c in SYSTEMS.values() if c.env_id == args.env), None)
    if system is not None:
        if args.friction:
            env_kwargs["params"] = system.variant("friction")
        if args.no_terminate:
            env_kwargs["terminate"] = False
        if args.integrator is not None:
            env_kwargs["integrator"] = args.integrator
        if args.substeps is not None:
            env_kwargs["substeps"] = args.substeps
    else:
        given = [
            flag
            for flag, v in (
                ("--friction", args.friction),
                ("--no-terminate", args.no_terminate),
                ("--integrator", args.integrator is not None),
                ("--substeps", args.substeps is not None),
            )
            if v
        ]
        if given:
            raise ValueError(f"{', '.join(given)}: valid only with a physwm environment, not {args.env}")
    policy_kwargs = {}
    if args.noise_std is not None:
        if args.policy != "lqr":
            raise ValueError(f"--noise-std applies to --policy lqr only, not {args.policy}")
        policy_kwargs["noise_std"] = args.noise_std
    start = {}
    for name in ("start_low", "start_high"):
        v = getattr(args, name)
        start[name] = v if v is None or len(v) != 1 else v[0]
    out = _check_out_file(args.out, args.overwrite)
    env = gymnasium.make(args.env, **env_kwargs)
    try:
        traj = collect(
            env,
            make_policy(args.policy, **policy_kwargs),
            episodes=args.episodes,
            max_steps=args.max_steps,
            seed=args.seed,
            **start,
            progress=not args.no_progress,
        )
    finally:
        env.close()
    path = traj.save(out, overwrite=args.overwrite)
    print(traj.summary())
    print(f"wrote {path}")
    return 0


# --- train (physwm.train) ---

@command
def _add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="fit a world model to trajectories (.npz) and save it",
        description="Fit a world model (built by physwm.models.build with its recommended options) to a "
        "Trajectories .npz file, split into train/val by episode; write DIR/model.pt, DIR/history.json and "
        "DIR/train_state.pt (for --resume).",
    )
    p.add_argument("--data", required=True, help="Trajectories .npz file (from `physwm collect`)")
    p.add_argument(
        "--model", required=True, choices=MODEL_NAMES, metavar="NAME", help=f"one of: {', '.join(MODEL_NAMES)}"
    )
    p.add_argument("--out", required=True, help="output directory")
    # Training options default to None: the model family's recipe (physwm.models.RECIPES) decides.
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: the model's recipe)")
    p.add_argument("--batch-size", type=int, default=None, help="windows per minibatch (default: the recipe's)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: the recipe's)")
    p.add_argument("--horizon", type=int, default=None, help="training window, steps: 1 one-step loss, more multi-step")
    p.add_argument("--val-horizon", type=int, default=None, help="steps of the validation rollout error (default 10)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="episodes held out for validation (default 0.2)")
    p.add_argument("--patience", type=int, default=None, help="early stopping patience in epochs (default: recipe)")
    p.add_argument("--lr-schedule", choices=("cosine", "plateau"), default=None, help="learning-rate schedule")
    p.add_argument(
        "--integrator", default="auto",
        help=f"integrator of explicit/node/hybrid models: {', '.join(INTEGRATOR_NAMES)} (default auto: the data's "
             "own discretisation when it is Euler, as gymnasium's CartPole-v1, else rk4)",
    )  # fmt: skip
    p.add_argument("--max-time", type=float, default=None, help="stop after the epoch that passes this many seconds")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the weights and the shuffling (default 0)")
    p.add_argument("--resume", action="store_true", help="continue the run saved in DIR/train_state.pt")
    p.add_argument("--overwrite", action="store_true", help="replace the outputs of an earlier run in DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_train)


def _integrator_for(meta: dict) -> str:
    """Euler for data made by Euler steps of the control period (gymnasium's CartPole-v1): the model then
    shares the data's discretisation and the physics is exact; RK4 otherwise."""
    return "euler" if str(meta.get("integrator", "")).lower() in ("euler", "euler(substeps=1)") else "rk4"


def _run_train(args) -> int:
    if not 0.0 <= args.val_fraction < 1.0:
        raise ValueError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    model_path, history_path, state_path = out / "model.pt", out / "history.json", out / "train_state.pt"
    if not (args.overwrite or args.resume):
        for path in (model_path, history_path, state_path):
            if path.exists():
                raise FileExistsError(f"{path} exists; pass --overwrite to replace it or --resume to continue")
    out.mkdir(parents=True, exist_ok=True)
    if not _writable(out):
        raise PermissionError(f"--out {out} is not writable")

    data = Trajectories.load(args.data)
    if args.val_fraction > 0:
        train, val = data.split((1.0 - args.val_fraction, args.val_fraction), seed=args.seed)
    else:
        train, val = data, None
    options = {"dt": data.dt, "seed": args.seed, "system": data.meta.get("system", DEFAULT_SYSTEM.name)}
    if args.model in ODE_FAMILIES:
        options["integrator"] = _integrator_for(data.meta) if args.integrator == "auto" else args.integrator
    elif args.integrator != "auto":
        raise ValueError(f"--integrator applies to explicit, node and hybrid models, not {args.model!r}")
    model = build(args.model, **options)
    print(f"data: {args.data}: {train.num_episodes} train / {val.num_episodes if val else 0} val episodes, "
          f"{train.num_transitions} train transitions")  # fmt: skip
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"model: {args.model} ({type(model).__name__}, {n_params} trainable parameters)")
    given = {"horizon": args.horizon, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
             "lr_schedule": args.lr_schedule, "early_stopping": args.patience, "val_horizon": args.val_horizon,
             "max_time": args.max_time}  # fmt: skip
    history = fit(
        model, train, val, checkpoint=state_path, resume=args.resume, overwrite=args.overwrite, seed=args.seed,
        progress=not args.quiet, **{k: v for k, v in given.items() if v is not None},
    )  # fmt: skip
    save_checkpoint(model_path, model, epoch=len(history.epoch), history=history, overwrite=True)
    history.save(history_path, overwrite=True)
    print(history.message)
    print(history.summary())
    if history.train_loss:
        print(f"final train loss: {history.train_loss[-1]:.6g} (epoch {history.epoch[-1]})")
    if history.best_val_error is not None:
        val_h = args.val_horizon if args.val_horizon is not None else FitConfig.for_model(model).val_horizon
        print(f"best val rollout RMSE ({val_h} steps, normalised units): "
              f"{history.best_val_error:.6g} (epoch {history.best_epoch})")  # fmt: skip
    for name, module in model.named_modules():
        if callable(getattr(module, "identified", None)):
            values = ", ".join(f"{k}={v:.6g}" for k, v in module.identified().items())
            if values:
                print(f"identified constants{f' ({name})' if name else ''}: {values}")
    print(f"wrote {model_path}, {history_path}, {state_path}")
    return 1 if history.diverged else 0


# --- compare, plot, demo (physwm.studies) ---


@command
def _add_compare(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="run an accuracy/extrapolation study: every model on the same data and seeds",
        description="Collect the study's data, train every model on every task and seed (and the data-efficiency "
        "sweep, if configured), evaluate in and out of distribution, and write results.md/.json/.csv and "
        "figures to --out. Re-running with the same config resumes: finished runs are not redone.",
    )
    p.add_argument("--config", default=None, help="StudyConfig JSON file (default: the default study)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: the config's)")
    _add_executor_args(p)
    p.add_argument("--overwrite", action="store_true", help="replace the results of a different study in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_compare)


def _print_study(res) -> None:
    for f in res.files:
        print(f"wrote {f}")
    # the headline table of results.md, so the terminal ends with the result, not a file list
    report = (res.out / "results.md").read_text() if (res.out / "results.md").is_file() else ""
    if "\n## Headline" in report:
        section = report.split("\n## Headline", 1)[1].split("\n## ", 1)[0]
        table = [line for line in section.splitlines() if line.startswith("|")]
        print("\n" + "\n".join(table) + "\n")
    done_before = res.runs_total - res.runs_done
    print(f"{res.runs_total} runs ({res.runs_done} trained now, {done_before} found finished), "
          f"{res.data_collected} data sets collected, {res.wall_time_s:.1f} s")  # fmt: skip
    h = res.headline or {}
    if h.get("splits"):
        print(f"headline ({h['task']}, {h['metric']}, {h['n_train']} transitions): {h['hybrid']} vs best "
              f"implicit: {h['ratio_in']:.3g}x in distribution, {h['ratio_out']:.3g}x out of distribution "
              "(geometric means of the error ratios)")  # fmt: skip


def _study_config(cfg: StudyConfig, workers: int | None) -> StudyConfig:
    if workers is not None:
        if workers < 1:
            raise ValueError(f"--workers must be >= 1, got {workers}")
        cfg = dataclasses.replace(cfg, workers=workers)
    return cfg


def _add_executor_args(p) -> None:
    p.add_argument("--executor", choices=EXECUTORS, default="process",
                   help="where the jobs run: local worker processes (default) or Ray tasks (pip install "
                   "'physwm[ray]'; a local Ray instance with --workers CPUs unless --ray-address is given)")
    p.add_argument("--ray-address", default=None,
                   help="an existing Ray cluster (e.g. ray://head:10001 or auto); needs --executor ray")


def _run_study_cli(cfg: StudyConfig, args) -> object:
    """Check the output directory before any work, then run the study on the chosen executor (this process
    runs jobs itself when there is one worker: it takes the study's thread count, as worker processes do)."""
    cfg.validate()
    executor = make_executor(args.executor, cfg.workers, args.ray_address)  # checks before any work
    try:
        prepare_out(cfg, Path(args.out), args.overwrite)
        if cfg.workers == 1 and executor is None:
            torch.set_num_threads(cfg.threads)
        return run_study(cfg, args.out, overwrite=False, progress=not args.no_progress, executor=executor)
    finally:
        if executor is not None:
            executor.shutdown(cancel_futures=True)


def _run_compare(args) -> int:
    cfg = StudyConfig.from_json(args.config) if args.config else default_config()
    res = _run_study_cli(_study_config(cfg, args.workers), args)
    _print_study(res)
    return 0


@command
def _add_plot(sub) -> None:
    p = sub.add_parser(
        "plot",
        help="redraw the figures of a study directory",
        description="Redraw every figure of a study directory (from its results.json and figures/figure_data.npz) "
        "into DIR/figures.",
    )
    p.add_argument("dir", help="study output directory (from `physwm compare` or `physwm demo`)")
    p.set_defaults(func=_run_plot)


def _run_plot(args) -> int:
    for f in draw_figures(args.dir):
        print(f"wrote {f}")
    return 0


@command
def _add_demo(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="the default study end to end: data, seven model families, in/out of distribution, report",
        description="Collect data from gymnasium CartPole-v1 and from a CartPole with friction, fit the explicit, "
        "Neural ODE, hybrid, MLP, VAE, GAN and physics-informed MLP models, evaluate them in and out of "
        "distribution (and the data efficiency on the friction task), and write the Markdown table, CSV/JSON "
        "and figures. About five minutes on 2 cores; --quick: about a minute. Re-running resumes.",
    )
    p.add_argument("--out", default="runs/demo", help="output directory (default %(default)s)")
    p.add_argument("--quick", action="store_true", help="small version (one seed, small data): < 1 min")
    p.add_argument("--systems", action="store_true", help="the study of the other built-in systems instead: "
                   "APHYNITY's damped pendulum and a chaotic acrobot (physwm/studies/systems.json)")
    p.add_argument("--overwrite", action="store_true", help="start again, replacing an earlier study in --out")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default 2)")
    _add_executor_args(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_demo)


def _run_demo(args) -> int:
    cfg = default_config(quick=args.quick, systems=args.systems)
    res = _run_study_cli(_study_config(cfg, args.workers), args)
    _print_study(res)
    print(f"table: {res.out / 'results.md'}")
    print(f"figures: {res.out / 'figures'}")
    return 0


# --- plan (physwm.control) ---


@command
def _add_plan(sub) -> None:
    p = sub.add_parser(
        "plan",
        help="control a true environment with model-predictive control (CEM, MPPI, iLQR, ...) on a world model",
        description="Run one closed-loop episode: at every step a planner searches control sequences on the "
        "model and applies the first control to the true environment. MODEL is 'explicit' (the environment's own "
        "equations and constants, an oracle), 'nominal' (the system's default equations, e.g. CartPole-v1's "
        "frictionless ones), a checkpoint file or a `physwm train` directory (its model.pt). A physwm environment "
        "runs the system's true variant (physwm/CartPole-v0: the CartPole with friction, physwm.FRICTION_PARAMS); "
        "swing-up runs it without termination. With --out, writes DIR/episode.png (states and controls vs time, "
        "phase portrait), DIR/episode.json and DIR/episode.npz. Exit status 0 if the task succeeded, 1 if not.",
    )
    p.add_argument("--model", required=True, help="explicit | nominal | checkpoint file | train directory")
    p.add_argument("--env", choices=ENV_IDS, default=ENV_IDS[0], help="true environment (default %(default)s)")
    p.add_argument("--task", choices=_task_names(), default="balance", help="task (default %(default)s)")
    p.add_argument("--planner", choices=sorted(PLANNERS), default="cem", help="planner (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the env's reset and the planner (default 0)")
    p.add_argument("--steps", type=int, default=None, help="episode length (default: the task's, e.g. 500 balance)")
    p.add_argument("--horizon", type=int, default=None, help="planning horizon, steps (default: the task's)")
    p.add_argument("--population", type=int, default=None, help="cem, mppi, cem_gd: candidate sequences per "
                   "iteration (default: cem and mppi 500, cem_gd 100)")
    p.add_argument("--iterations", type=int, default=None, help="iterations per step (default: the planner's, e.g. "
                   "cem 5, mppi 1)")
    p.add_argument("--elites", type=int, default=None, help="cem only: elites (default population // 10)")
    p.add_argument("--temperature", type=float, default=None, help="mppi only: temperature (default 1.0)")
    p.add_argument("--ensemble", choices=("mean", "ts"), default=None, help="ensembles: plan on the mean or by "
                   "PETS trajectory sampling (default mean)")
    p.add_argument("--threads", type=int, default=1, help="torch threads while planning (default 1: fastest here)")
    p.add_argument("--out", default=None, help="output directory for the plot, summary and trajectory")
    p.add_argument("--overwrite", action="store_true", help="replace earlier outputs in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_plan)


def _plan_model(spec: str, env):
    if spec in ("explicit", "nominal"):
        info = env_info(env)
        system = info.system(info.params if spec == "explicit" else None)
        integrator = info.system.reference_integrator or info.system.env_integrator  # CartPole: Euler, as before
        return ODEModel(system, integrator=integrator, dt=info.dt)
    path = Path(spec)
    if path.is_dir():
        path = path / "model.pt"
        if not path.is_file():
            raise FileNotFoundError(f"{spec} is a directory without model.pt (expected a `physwm train` output)")
    elif not path.exists():
        raise FileNotFoundError(f"--model {spec!r}: not 'explicit', 'nominal', a checkpoint file or a directory")
    model, _ = load_checkpoint(path)
    return model.eval()


def _run_plan(args) -> int:
    for name in ("population", "threads", "steps", "horizon", "iterations", "elites"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise ValueError(f"--{name} must be >= 1, got {v}")
    accepted = planner_options(args.planner)
    for name in ("population", "iterations", "elites", "temperature", "ensemble"):
        if getattr(args, name) is not None and name not in accepted:
            raise ValueError(f"--{name} does not apply to --planner {args.planner}")
    out = Path(args.out) if args.out else None
    files = ("episode.png", "episode.json", "episode.npz")
    if out is not None:
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out} exists and is not a directory")
        if not args.overwrite:
            for f in files:
                if (out / f).exists():
                    raise FileExistsError(f"{out / f} exists; pass --overwrite to replace it")
        out.mkdir(parents=True, exist_ok=True)
        if not _writable(out):
            raise PermissionError(f"--out {out} is not writable")
    torch.set_num_threads(args.threads)  # planning runs many tiny tensor operations: one thread is fastest here
    env_kwargs = {} if args.steps is None else {"max_episode_steps": args.steps}
    env = make_env(args.env, args.task, **env_kwargs)
    try:
        model = _plan_model(args.model, env)
        check_model_fits_env(model, env)
        options = default_planner_options(env, args.task)
        options["seed"] = args.seed
        for name in ("population", "horizon", "iterations", "elites", "temperature", "ensemble"):
            if getattr(args, name) is not None:
                options[name] = getattr(args, name)
        system = env_info(env).system
        planner = make_planner(args.planner, model, get_task(args.task, system).cost, **options)
        name = args.model if args.model in ("explicit", "nominal") else getattr(model, "build_spec", {}).get(
            "name", type(model).__name__)
        episode = run_episode(planner, env, args.task, seed=args.seed, steps=args.steps, model_name=name,
                              progress=not args.no_progress)
    finally:
        env.close()
    print(episode.summary())
    print(f"planner: {planner!r}")
    if out is None:
        return 0 if episode.success else 1
    summary = {
        "success": episode.success, "steps": episode.steps, "return": episode.ret,
        "terminated": episode.terminated, "plan_ms_mean": 1e3 * float(episode.plan_times.mean()),
        "plan_ms_p95": 1e3 * float(sorted(episode.plan_times)[int(0.95 * (episode.steps - 1))]),
        "env": args.env, "task": args.task, "model": args.model, "planner": args.planner, "seed": args.seed,
        "population": planner.population, "horizon": planner.horizon, "iterations": planner.iterations,
        "model_evaluations_per_step": float(episode.model_evaluations.mean()) if episode.steps else 0.0,
        "fused": planner.dynamics.fused,
    }
    atomic_write_text(out / "episode.json", json.dumps(summary, indent=2) + "\n", overwrite=True)
    episode.to_trajectories().save(out / "episode.npz", overwrite=True)
    plot.save(plot.episode_figure(episode), out / "episode.png")
    for f in files:
        print(f"wrote {out / f}")
    return 0 if episode.success else 1


# --- discover (physwm.discover) ---


@command
def _add_discover(sub) -> None:
    p = sub.add_parser(
        "discover",
        help="discover the missing physics as equations (sparse regression on the system's library)",
        description="Regress what the known physics misses on the system's candidate terms, refit the kept "
        "coefficients with the physical constants, and print the equations with bootstrap inclusion "
        "probabilities and 95%% intervals. Starts from a fitted hybrid or explicit model (--model, a checkpoint "
        "from `physwm train`) or from the system's nominal physics.",
    )
    p.add_argument("--data", required=True, help="Trajectories .npz file (the training data)")
    p.add_argument("--model", default=None, help="checkpoint of a fitted hybrid/explicit model (default: none)")
    p.add_argument("--system", default=None, choices=sorted(SYSTEMS),
                   help="system when no --model is given (default: the data's, else the default system)")
    p.add_argument("--threshold", type=float, default=None, help="relative threshold (default: by held-out error)")
    p.add_argument("--bootstrap", type=int, default=20, help="bootstrap resamples (default 20; 0: none)")
    p.add_argument("--space", default="auto", choices=DISCOVERY_SPACES,
                   help="regress accelerations, generalised forces (through the system's mass matrix) or the "
                        "better of both on held-out data (default auto)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the bootstrap and the refit (default 0)")
    p.add_argument("--out", default=None, help="write the discovered model's checkpoint here (.pt)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=_run_discover)


def _run_discover(args) -> int:
    if args.out is not None and Path(args.out).exists() and not args.overwrite:
        raise FileExistsError(f"{args.out} exists; pass --overwrite to replace it")
    data = Trajectories.load(args.data)
    options = {"threshold": args.threshold, "bootstrap_samples": args.bootstrap, "seed": args.seed,
               "space": args.space}
    if args.model is not None:
        model = discover(load_checkpoint(args.model)[0], data, **options)
    else:
        system = args.system or data.meta.get("system", DEFAULT_SYSTEM.name)
        model = discover(data, system=system, **options)
    print(model.discovery.format())
    if args.out is not None:
        save_checkpoint(args.out, model, overwrite=args.overwrite)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
