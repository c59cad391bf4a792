r"""Running a study: collect its data, train and evaluate every run, resumably, on any executor.

A study writes to an output directory:

.. code-block:: text

    OUT/
      config.json             the study's configuration (a re-run with the same config resumes)
      results.md              Markdown tables: headline, per task and split, data efficiency
      results.json            configuration, headline numbers, aggregated metrics (mean/std over seeds)
      results.csv             aggregated metrics, one row per (task, model, transitions, split)
      figures/*.png           error vs horizon, data efficiency, phase portraits, vector fields, energy
      figures/figure_data.npz the arrays the figures are drawn from (``physwm plot OUT`` redraws them)
      runs/data/TASK/SPLIT.npz    the collected data sets (training pool, validation, test splits)
      runs/TASK/MODEL/nN_sSEED.json   one run's metrics (written atomically, last)
      runs/TASK/MODEL/nN_sSEED.pt     its trained model (a physwm checkpoint)

Stages: collect every data set (:func:`physwm.data.collect`), train and evaluate every run, aggregate,
draw. Each data set and each run is written atomically to its own file, and files that exist are loaded
instead of recomputed, so a study interrupted half-way resumes where it stopped (re-run the same command).
A run whose checkpoint or result file is missing is redone. Jobs go to ``workers`` local processes, or to
any ``concurrent.futures.Executor`` the caller passes (each job seeds itself, so results do not depend on
which executor ran them). A job that runs in another process sets that process's torch thread count to the
study's ``threads``; jobs run in the caller's process leave its settings alone.

* :func:`compare`: every model on every task at ``train_transitions`` transitions, every seed;
* :func:`data_efficiency`: the sweep over training-set sizes of one task;
* :func:`run_study`: both, then the report and figures (what ``physwm compare`` and ``physwm demo`` run).
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing as mp
import os
import shutil
import time
import warnings
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Executor, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..data import Trajectories, collect, make_policy
from ..discover import discover
from ..envs import make_env
from ..evaluate import evaluate, identified_constants, lyapunov_exponent, parameter_error, state_scale
from ..files import read_json, write_json
from ..models import build
from ..systems import BUILTIN_SYSTEMS, register_system
from ..train import History, fit, save_checkpoint
from ..version import __version__
from .adaptation import adapted_metrics, adapted_name, collect_pool, pool_name
from .config import StudyConfig, TaskConfig, build_options, default_config
from .figures import draw_figures, write_figure_data
from .paths import compare_runs, data_path, efficiency_runs, run_path
from .report import load_results, write_report

__all__ = ["StudyResult", "compare", "data_efficiency", "run_study", "prepare_out"]


def _own_threads(threads: int, submitter: int) -> None:
    """In a worker process (not the one that submitted the job), use the study's thread count."""
    if os.getpid() != submitter and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


# --- jobs (top-level functions: they run in worker processes) ----------------------------------------


def _register(systems: list) -> None:
    """In a worker process, register the user systems a job needs (pickled by reference: their module is
    imported, the class registered; built-in systems need nothing)."""
    for cls in systems:
        register_system(cls)


def _user_systems(cfg: StudyConfig) -> list:
    """The registered user (not built-in) System classes the study's tasks use."""
    return [t.system_class for t in cfg.tasks if t.system not in BUILTIN_SYSTEMS]


def _collect_job(task_d: dict, split_d: dict, path: str, threads: int, submitter: int, systems: list,
                 horizon: int) -> str:  # fmt: skip
    """Collect one split and save it (atomically) to ``path``; for a task with ``lyapunov``, store the true
    system's Lyapunov exponent along the split's evaluation windows (``horizon`` steps) in its meta."""
    _own_threads(threads, submitter)
    _register(systems)
    task = TaskConfig.from_dict(task_d)
    pool = split_d.get("adapt_pool", False)  # the split's adaptation pool (see studies.adaptation), not its tests
    split = next(s for s in [task.train, task.val_split(), *task.tests] if s.name == split_d["name"])
    system = task.system_class
    env_id = split.env_id(system)
    steps = max(split.adapt) if pool else split.max_steps
    if env_id == system.env_id:
        env = make_env(env_id, params=task.true_params(split), max_episode_steps=steps, **split.env_options)
    else:
        env = make_env(env_id, max_episode_steps=max(500, steps))
    if pool:
        try:
            traj = collect_pool(env, make_policy(split.policy, **split.policy_options), split, steps)
        finally:
            env.close()
        if not Path(path).exists():
            traj.save(path)
        return path
    try:
        traj = collect(
            env,
            make_policy(split.policy, **split.policy_options),
            episodes=split.episodes,
            max_steps=split.max_steps,
            seed=split.seed,
            start_low=split.start_low,
            start_high=split.start_high,
            progress=False,
            start_radius=split.start_radius,
        )
    finally:
        env.close()
    if task.lyapunov and split.name not in ("train", "val"):
        w = traj.windows(min(horizon, int(traj.lengths.max())))
        true = system(task.true_params(split))
        traj.meta["lyapunov_exponent"] = lyapunov_exponent(true, w["states"], w["controls"], traj.dt,
                                                           integrator=system.env_integrator)  # fmt: skip
    if not Path(path).exists():
        traj.save(path)
    return path


def _run_job(cfg_d: dict, task_name: str, model_name: str, n: int, seed: int, out: str, submitter: int,
             systems: list) -> str:  # fmt: skip
    """Train one model on the first ``n`` transitions of a task and evaluate it on every test split."""
    _register(systems)
    cfg = StudyConfig.from_dict(cfg_d, validate=False)
    _own_threads(cfg.threads, submitter)
    outp = Path(out)
    task, mc = cfg.task(task_name), cfg.model(model_name)
    where = f"task {task.name!r}, model {mc.name!r}, n={n}, seed={seed}"
    path = run_path(outp, task.name, mc.name, n, seed)
    system = task.system_class
    pool = Trajectories.load(data_path(outp, task.name, "train"))
    val = Trajectories.load(data_path(outp, task.name, "val"))
    train = pool.head(n)
    model = build(mc.build_name, task.model_system(), **build_options(mc, task, seed))
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            options = dict(mc.discover or {})  # what is left after "start" are discover's own options
            if options.pop("start", "fitted") == "fitted":
                history = fit(model, train, val, config=cfg.fit_for(mc).replace(seed=seed), progress=False)
            else:
                history = History(stop_reason="discovered", message="not fitted: discovered from the model as built")
            if mc.discover is not None:  # the model's missing physics as equations (see ModelConfig.discover)
                model = discover(model, train, seed=seed, **options)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from err
    train_time = time.perf_counter() - t0
    save_checkpoint(path.with_suffix(".pt"), model, history=history, overwrite=True,
                    extra={"task": task.name, "model": mc.name, "n_train": n, "seed": seed})  # fmt: skip
    t1 = time.perf_counter()
    splits, adapt_warnings = {}, set()
    for s in task.tests:
        data = Trajectories.load(data_path(outp, task.name, s.name))
        true = system(task.true_params(s))

        def score(m, s=s, data=data, true=true):
            metrics = evaluate(
                m,
                data,
                horizons=s.horizons or cfg.horizons,
                scale=state_scale(data),
                threshold=cfg.vpt_threshold,
                max_windows=cfg.max_windows,
                seed=0,
                energy_fn=true.energy if system.has_energy() else None,
            )
            lam = data.meta.get("lyapunov_exponent")
            if lam is not None:  # valid prediction time in Lyapunov times (e-foldings of a small error)
                metrics["lyapunov_exponent"] = float(lam)
                metrics["vpt_lyapunov"] = metrics["vpt_s"] * float(lam)
            return {"distribution": s.distribution, **metrics}

        try:
            splits[s.name] = score(model)
            if s.adapt and n == cfg.train_transitions:  # the adaptation split: comparison runs only
                pool = Trajectories.load(data_path(outp, task.name, pool_name(s.name)))
                with warnings.catch_warnings(record=True) as adapt_caught:
                    warnings.simplefilter("always")
                    for k, metrics in adapted_metrics(model, pool, s.adapt, score).items():
                        splits[adapted_name(s.name, k)] = metrics
                adapt_warnings |= {f"{s.name}: {w.category.__name__}: {w.message}" for w in adapt_caught}
        except ValueError as err:
            raise ValueError(f"{where}, split {s.name!r}: {err}") from err
    identified = identified_constants(model)
    perr = parameter_error(identified, task.true_params()) if identified else {}
    result = {
        "task": task.name,
        "model": mc.name,
        "family": mc.build_name,
        "n_train": int(train.num_transitions),
        "seed": int(seed),
        "epochs": len(history.epoch),
        "train_time_s": train_time,
        "eval_time_s": time.perf_counter() - t1,
        "stop_reason": history.stop_reason,
        "diverged": bool(history.diverged),
        "best_val_error": history.best_val_error,
        "selection": history.selection or {"selected": "trained"},
        "warnings": sorted({f"{w.category.__name__}: {w.message}" for w in caught}),
        "adapt_warnings": sorted(adapt_warnings),
        "build_spec": getattr(model, "build_spec", None),
        "fit": cfg.fit_for(mc).replace(seed=seed).to_dict(),
        "identified": identified,
        "param_err": perr,
        "param_err_mean": (sum(perr.values()) / len(perr)) if perr else None,
        "splits": splits,
        **({"discovery": discovery_summary(model.discovery)} if mc.discover is not None else {}),
        "physwm_version": __version__,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_json(path, result, overwrite=True)  # last: a run without its JSON is redone on resume
    return str(path)


def discovery_summary(d: Any) -> dict:
    """What a run stores of :func:`physwm.discover`'s :class:`~physwm.discover.Discovery` (plain JSON)."""
    keys = ("equations", "coefficients", "constants", "residual_left", "kept", "space", "space_errors")
    return {k: getattr(d, k) for k in keys}


# --- execution --------------------------------------------------------------------------------------


class _Jobs:
    """Runs jobs on the caller's executor, on a pool of ``workers`` spawned processes (created on first use
    and shared by the stages of a study: spawning a worker costs seconds, importing torch), or in this
    process (``workers == 1``)."""

    def __init__(self, workers: int, executor: Executor | None = None):
        self.workers, self.executor, self._pool = workers, executor, None

    def __enter__(self) -> _Jobs:
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _target(self) -> Executor | None:
        if self.executor is not None:
            return self.executor
        if self.workers <= 1:
            return None
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn"))
        return self._pool

    def run(self, jobs: list[tuple], progress: bool, desc: str) -> None:
        """Run ``(fn, args)`` jobs; the first failure cancels the rest and is raised."""
        if not jobs:
            return
        bar = tqdm(total=len(jobs), desc=desc, unit="job", disable=not progress)
        try:
            target = self._target()
            if target is None:
                for fn, args in jobs:
                    fn(*args)
                    bar.update(1)
                return
            pending = {target.submit(fn, *args) for fn, args in jobs}
            while pending:  # the bar moves as each job finishes, whichever executor runs it
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    err = f.exception()
                    if err is not None:
                        for p in pending:
                            p.cancel()
                        raise err
                    bar.update(1)
        finally:
            bar.close()


@dataclass
class StudyResult:
    """What a study run did and where its outputs are.

    Attributes:
        out: output directory.
        runs_total: runs the study consists of.
        runs_done: runs trained in this call (the others were loaded from their files).
        data_collected: data sets collected in this call.
        wall_time_s: seconds this call took.
        headline: the headline numbers (see :func:`~physwm.studies.report.write_report`).
        files: the report files written (results.md, results.json, results.csv, figures).
    """

    out: Path
    runs_total: int = 0
    runs_done: int = 0
    data_collected: int = 0
    wall_time_s: float = 0.0
    headline: dict = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


#: StudyConfig fields that change how a study is run, not its results (a resumed study may change them).
_EXECUTION_FIELDS = ("workers", "threads", "figures")
_OUTPUTS = ("runs", "figures", "results.md", "results.json", "results.csv", "config.json")


def _identity(d: Any) -> Any:
    """A config dict without its execution fields (what must match for a study to resume)."""
    if not isinstance(d, dict):
        return d
    return {k: v for k, v in d.items() if k not in _EXECUTION_FIELDS}


def _clear_out(out: Path) -> None:
    """Remove what a study writes (only those entries, never anything else in ``out``)."""
    for name in _OUTPUTS:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


def prepare_out(cfg: StudyConfig, out: Path, overwrite: bool) -> None:
    """Check ``out`` before any work starts, create it and write its config.json.

    Raises:
        FileExistsError: ``out`` holds another study (or unrelated files) and ``overwrite`` is not set, or is
            a file.
        ValueError: its config.json is unreadable (corrupt) and ``overwrite`` is not set.
        PermissionError: ``out`` cannot be written.
    """
    out = Path(out)
    cfg_path = out / "config.json"
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory")
    if cfg_path.exists():
        try:
            old = read_json(cfg_path, "study config")
        except ValueError as err:
            if not overwrite:
                raise ValueError(f"{err}; pass overwrite=True (--overwrite) to start the study again") from err
            old = None
        same = _identity(old) == _identity(json.loads(json.dumps(cfg.to_dict())))
        if not same and not overwrite:
            raise FileExistsError(
                f"{out} holds the results of a different study (its config.json differs); choose another "
                "output directory or pass overwrite=True (--overwrite) to replace them"
            )
        if overwrite:
            _clear_out(out)
    elif out.is_dir() and any(out.iterdir()):
        if not set(p.name for p in out.iterdir()) <= set(_OUTPUTS) and not overwrite:
            raise FileExistsError(
                f"{out} is not empty and holds no study config.json; choose another output directory or pass "
                "overwrite=True (--overwrite)"
            )
        if overwrite:
            _clear_out(out)
    out.mkdir(parents=True, exist_ok=True)
    if not os.access(out, os.W_OK):
        raise PermissionError(f"{out} is not writable")
    cfg.to_json(cfg_path, overwrite=True)


def _collect_data(cfg: StudyConfig, out: Path, progress: bool, jobs: _Jobs) -> int:
    todo = []
    for t in cfg.tasks:
        for s in (t.train, t.val_split(), *t.tests):
            p = data_path(out, t.name, s.name)
            if not p.exists():
                cost = s.episodes * s.max_steps * (10 if s.env_id(t.system_class) == t.system_class.env_id else 1)
                horizon = max(s.horizons or cfg.horizons)
                args = (t.to_dict(), {"name": s.name}, str(p), cfg.threads, os.getpid(), _user_systems(cfg), horizon)
                todo.append((cost, (_collect_job, args)))
            p = data_path(out, t.name, pool_name(s.name))
            if s.adapt and not p.exists():  # the split's adaptation pool (studies.adaptation)
                args = (t.to_dict(), {"name": s.name, "adapt_pool": True}, str(p), cfg.threads, os.getpid(),
                        _user_systems(cfg), 1)  # fmt: skip
                todo.append((max(s.adapt) * 10, (_collect_job, args)))
    todo.sort(key=lambda j: -j[0])
    for _, (_, args) in todo:
        Path(args[2]).parent.mkdir(parents=True, exist_ok=True)
    jobs.run([j for _, j in todo], progress, "collect")
    _check_data(cfg, out)
    return len(todo)


def _check_data(cfg: StudyConfig, out: Path) -> None:
    """Every split has data, long enough for its horizons; the pool is large enough."""
    de_task = cfg.data_efficiency.task if cfg.data_efficiency is not None else None
    for t in cfg.tasks:
        pool = Trajectories.load(data_path(out, t.name, "train"))
        need = max([cfg.train_transitions] + (cfg.data_efficiency.sizes if de_task == t.name else []))
        if pool.num_transitions < need:
            raise ValueError(
                f"task {t.name!r}: the training pool holds {pool.num_transitions} transitions, fewer than the "
                f"{need} requested; raise its train.episodes"
            )
        for s in t.tests:
            data = Trajectories.load(data_path(out, t.name, s.name))
            hs = s.horizons or cfg.horizons
            longest = int(data.lengths.max()) if data.num_episodes else 0
            if data.num_transitions == 0 or longest < max(hs):
                raise ValueError(
                    f"task {t.name!r}, split {s.name!r} has no window of {max(hs)} steps to evaluate (its longest "
                    f"episode has {longest} transitions, {data.num_transitions} in all); set the split's horizons "
                    "or collect longer episodes (terminate=False)"
                )


def _finished(out: Path, run: tuple[str, str, int, int]) -> bool:
    """A run is finished when both its result and its checkpoint exist (either missing: redo it)."""
    p = run_path(out, *run)
    return p.exists() and p.with_suffix(".pt").exists()


def _run_all(
    cfg: StudyConfig, out: Path, runs: Iterable[tuple[str, str, int, int]], progress: bool, jobs: _Jobs
) -> int:
    runs = list(dict.fromkeys(runs))
    todo = [r for r in runs if not _finished(out, r)]
    for r in todo:  # a half-finished run (result or checkpoint missing) starts again from nothing
        p = run_path(out, *r)
        for f in (p, p.with_suffix(".pt")):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
        p.parent.mkdir(parents=True, exist_ok=True)
    cost = {"hybrid": 3.0, "explicit": 2.0, "node": 2.0, "ensemble": 5.0, "transformer": 3.0}
    todo.sort(key=lambda r: -cost.get(cfg.model(r[1]).build_name, 1.0) * math.log(10 + r[2]))
    cfg_d = cfg.to_dict()
    systems = _user_systems(cfg)
    jobs.run([(_run_job, (cfg_d, *r, str(out), os.getpid(), systems)) for r in todo], progress, "train+evaluate")
    return len(todo)


def _run(cfg, out, overwrite, progress, executor, *, efficiency: bool, figures: bool, compare_runs_: bool = True):
    if not isinstance(cfg, StudyConfig):
        raise TypeError(f"config must be a StudyConfig, got {type(cfg).__name__}")
    cfg.validate()
    if executor is not None and not isinstance(executor, Executor):
        raise TypeError(f"executor must be a concurrent.futures.Executor, got {type(executor).__name__}")
    t0 = time.perf_counter()
    out = Path(out)
    prepare_out(cfg, out, overwrite)
    res = StudyResult(out=out)
    runs = (compare_runs(cfg) if compare_runs_ else []) + (efficiency_runs(cfg) if efficiency else [])
    runs = list(dict.fromkeys(runs))
    res.runs_total = len(runs)
    with _Jobs(cfg.workers, executor) as jobs:
        res.data_collected = _collect_data(cfg, out, progress, jobs)
        res.runs_done = _run_all(cfg, out, runs, progress, jobs)
    rows = load_results(out, cfg)
    draw = figures and cfg.figures
    if draw:
        write_figure_data(cfg, out)
    res.headline, files = write_report(cfg, rows, out, wall_time_s=time.perf_counter() - t0, runs_done=res.runs_done)
    res.files.extend(files)
    if draw:
        res.files.extend(draw_figures(out))
    res.wall_time_s = time.perf_counter() - t0
    return res


def compare(
    config: StudyConfig, out: str | os.PathLike, *, overwrite: bool = False, progress: bool = True,
    executor: Executor | None = None,
) -> StudyResult:  # fmt: skip
    """Train every model on every task at ``train_transitions`` transitions, for every seed, and evaluate.

    Collects the data first (if not already in ``out``). Finished runs found in ``out`` are not redone.
    Writes the report (results.md/.json/.csv) but no figures (see :func:`run_study`).
    """
    return _run(config, out, overwrite, progress, executor, efficiency=False, figures=False)


def data_efficiency(
    config: StudyConfig, out: str | os.PathLike, *, overwrite: bool = False, progress: bool = True,
    executor: Executor | None = None,
) -> StudyResult:  # fmt: skip
    """Sweep the training-set sizes of ``config.data_efficiency`` (every listed model and seed) and report.

    Raises:
        ValueError: if the config has no ``data_efficiency`` section.
    """
    if config.data_efficiency is None:
        raise ValueError("the study config has no data_efficiency section (task, sizes)")
    return _run(config, out, overwrite, progress, executor, efficiency=True, figures=False, compare_runs_=False)


def run_study(
    config: StudyConfig | None = None,
    out: str | os.PathLike = "runs/study",
    *,
    overwrite: bool = False,
    progress: bool = True,
    executor: Executor | None = None,
) -> StudyResult:
    """The whole study: data, comparison runs, data-efficiency sweep, report and figures.

    Re-running with the same config and ``out`` resumes: finished data sets and runs are loaded, not redone;
    figures are redrawn from what exists.

    Args:
        config: the study (default: :func:`~physwm.studies.default_config`).
        out: output directory (created).
        overwrite: replace the results of a *different* study found in ``out`` (else FileExistsError); with
            the same study, start again from scratch.
        progress: tqdm progress bars.
        executor: a ``concurrent.futures.Executor`` to run the jobs on (e.g. a Ray or Dask executor);
            default: ``config.workers`` local processes.

    Returns:
        a :class:`StudyResult` (paths, counts, headline numbers, wall time).
    """
    return _run(config or default_config(), out, overwrite, progress, executor, efficiency=True, figures=True)
