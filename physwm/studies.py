r"""Accuracy and extrapolation studies: every model family, the same data and seeds, every metric.

A study is described by a :class:`StudyConfig` (dataclasses, loadable from JSON) and written to an output
directory:

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

Stages: collect every data set (from physwm/gymnasium environments with :func:`physwm.data.collect`),
train and evaluate every run, aggregate, draw. Each data set and each run is written atomically to its
own file, and files that exist are loaded instead of recomputed, so a study interrupted half-way resumes
where it stopped (re-run the same command). Runs and collections are spread over ``workers`` processes.

* :func:`compare`: every model on every task at ``train_transitions`` transitions, every seed;
* :func:`data_efficiency`: the sweep over training-set sizes of one task;
* :func:`run_study`: both, then the report and figures (what ``physwm compare`` and ``physwm demo`` run);
* :func:`default_config`: the default study (``quick=True``: a < 60 s version of it).

Metrics come from :mod:`physwm.evaluate` (normalised errors are in units of each split's own per-dimension
state standard deviation, the same for every model on that split).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._io import atomic_write, atomic_write_text

__all__ = [
    "SplitConfig",
    "TaskConfig",
    "ModelConfig",
    "FitConfig",
    "DataEfficiencyConfig",
    "HeadlineConfig",
    "StudyConfig",
    "StudyResult",
    "default_config",
    "compare",
    "data_efficiency",
    "run_study",
    "load_results",
    "write_report",
    "draw_figures",
    "IMPLICIT_FAMILIES",
]

#: Model families that are purely implicit (discrete-time networks without physics or a vector field).
IMPLICIT_FAMILIES: tuple[str, ...] = ("mlp", "gaussian_mlp", "vae", "gru", "transformer", "ensemble")
_ODE_FAMILIES = ("explicit", "node", "hybrid")
_DISTRIBUTIONS = ("in", "out")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: Metrics kept in the aggregated results (per-dimension and per-level details stay in the run files).
_CORE_PREFIXES = ("rmse@", "energy_rmse@")
_CORE_METRICS = (
    "one_step_mse_norm",
    "vpt_steps",
    "vpt_s",
    "nll",
    "calibration_error",
    "coverage@0.9",
)
_RUN_METRICS = ("train_time_s", "epochs", "param_err_mean")


# --- configuration ----------------------------------------------------------------------------------


def _check_keys(cls: type, d: Any, where: str) -> dict:
    if not isinstance(d, Mapping):
        raise ValueError(f"{where} must be a JSON object (dict), got {type(d).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise ValueError(f"unknown {where} fields {unknown}; valid: {names}")
    return dict(d)


def _check_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"{where} name must be a non-empty string of letters, digits, '_', '-', '.', got {name!r}")
    return name


def _positive_int(v: Any, where: str, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise ValueError(f"{where} must be an int >= {minimum}, got {v!r}")
    return int(v)


@dataclass
class SplitConfig:
    """One data set: an environment, a policy and a distribution of start states.

    Attributes:
        name: identifier (used in file names and tables).
        distribution: ``"in"`` (the training distribution) or ``"out"`` (an extrapolation split).
        env: gymnasium id: ``"physwm/CartPole-v0"`` (any constants, continuous force) or ``"CartPole-v1"``.
        params: overrides of the task's true constants for this split (``CartPoleParams`` fields), e.g.
            ``{"masspole": 0.2}`` (physwm env only).
        env_options: other ``gymnasium.make`` keywords (``terminate``, ``integrator``, ``substeps``).
        policy: data-collection policy name (``random``, ``uniform``, ``lqr``), see :func:`physwm.data.make_policy`.
        policy_options: its keyword arguments (e.g. ``{"force_mag": 5.0}``).
        episodes: number of episodes.
        max_steps: transitions per episode (fewer if the environment terminates).
        start_low, start_high: box of uniformly random start states ``[x, x_dot, theta, theta_dot]``
            (``None``: the environment's own reset).
        seed: seed of the collection.
        horizons: rollout horizons (steps) evaluated on this split (``None``: the study's).
        description: one line for the report.
    """

    name: str
    distribution: str = "out"
    env: str = "physwm/CartPole-v0"
    params: dict = field(default_factory=dict)
    env_options: dict = field(default_factory=dict)
    policy: str = "uniform"
    policy_options: dict = field(default_factory=dict)
    episodes: int = 4
    max_steps: int = 250
    start_low: Any = None
    start_high: Any = None
    seed: int = 0
    horizons: list[int] | None = None
    description: str = ""

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "split") -> SplitConfig:
        return cls(**_check_keys(cls, d, where))

    def validate(self, where: str) -> None:
        _check_name(self.name, where)
        if self.distribution not in _DISTRIBUTIONS:
            raise ValueError(f"{where}: distribution must be one of {list(_DISTRIBUTIONS)}, got {self.distribution!r}")
        if self.env not in ("physwm/CartPole-v0", "CartPole-v1"):
            raise ValueError(f"{where}: env must be 'physwm/CartPole-v0' or 'CartPole-v1', got {self.env!r}")
        if self.env == "CartPole-v1" and (self.params or self.env_options):
            raise ValueError(f"{where}: gymnasium's CartPole-v1 takes no params/env_options; use physwm/CartPole-v0")
        from .data import POLICIES
        from .systems.cartpole import CartPoleParams

        if self.policy not in POLICIES:
            raise ValueError(f"{where}: unknown policy {self.policy!r}; valid: {sorted(POLICIES)}")
        valid_params = [f.name for f in dataclasses.fields(CartPoleParams)]
        unknown = sorted(set(self.params) - set(valid_params))
        if unknown:
            raise ValueError(f"{where}: unknown params {unknown}; valid: {valid_params}")
        bad_env = sorted(set(self.env_options) - {"terminate", "integrator", "substeps"})
        if bad_env:
            raise ValueError(f"{where}: unknown env_options {bad_env}; valid: ['integrator', 'substeps', 'terminate']")
        _positive_int(self.episodes, f"{where}: episodes")
        _positive_int(self.max_steps, f"{where}: max_steps")
        _positive_int(self.seed, f"{where}: seed", minimum=0)
        if (self.start_low is None) != (self.start_high is None):
            raise ValueError(f"{where}: give both start_low and start_high, or neither")
        if self.horizons is not None:
            hs = _check_horizons(self.horizons, f"{where}: horizons")
            if max(hs) > self.max_steps:
                raise ValueError(
                    f"{where}: horizons {hs} exceed max_steps {self.max_steps}: the split would have no window "
                    "of data to evaluate; lower the horizons or collect longer episodes"
                )


def _check_horizons(hs: Any, where: str) -> list[int]:
    if not isinstance(hs, (list, tuple)) or not hs:
        raise ValueError(f"{where} must be a non-empty list of positive ints, got {hs!r}")
    return [_positive_int(h, where) for h in hs]


@dataclass
class TaskConfig:
    """A true system, its training distribution and its test splits.

    Attributes:
        name: identifier.
        params: the true system's constants (overrides of ``CartPoleParams()``, e.g. friction).
        nominal: the constants the physics-based models (explicit, hybrid) start from (overrides of
            ``CartPoleParams()``; default: gymnasium CartPole-v1's, without friction).
        integrator: integrator of the ODE-based models (``"euler"`` matches gymnasium's CartPole-v1).
        train: the training distribution; its episodes form the pool from which the first ``n``
            transitions are taken.
        val: validation data (early model selection); default: ``train`` with a fifth of its episodes and
            seed ``train.seed + 1``.
        tests: test splits (``distribution`` "in" or "out").
        description: one line for the report.
    """

    name: str
    train: SplitConfig
    tests: list[SplitConfig]
    params: dict = field(default_factory=dict)
    nominal: dict = field(default_factory=dict)
    integrator: str = "rk4"
    val: SplitConfig | None = None
    description: str = ""

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "task") -> TaskConfig:
        d = _check_keys(cls, d, where)
        for key in ("name", "train", "tests"):
            if key not in d:
                raise ValueError(f"{where} needs a {key!r} field")
        d["train"] = SplitConfig.from_dict(d["train"], f"{where}.train")
        if d.get("val") is not None:
            d["val"] = SplitConfig.from_dict(d["val"], f"{where}.val")
        if not isinstance(d["tests"], list):
            raise ValueError(f"{where}.tests must be a list of splits")
        d["tests"] = [SplitConfig.from_dict(s, f"{where}.tests[{i}]") for i, s in enumerate(d["tests"])]
        return cls(**d)

    def val_split(self) -> SplitConfig:
        """The validation split (explicit, or derived from ``train``)."""
        if self.val is not None:
            return self.val
        return dataclasses.replace(
            self.train, name="val", episodes=max(1, self.train.episodes // 5), seed=self.train.seed + 1
        )

    def true_params(self, split: SplitConfig | None = None):
        """The true ``CartPoleParams`` of the task (with a split's overrides)."""
        from .systems.cartpole import CartPoleParams

        base = CartPoleParams().to_dict()
        base.update(self.params)
        if split is not None:
            base.update(split.params)
        return CartPoleParams.from_dict(base)

    def nominal_params(self):
        """The ``CartPoleParams`` the physics-based models start from."""
        from .systems.cartpole import CartPoleParams

        base = CartPoleParams().to_dict()
        base.update(self.nominal)
        return CartPoleParams.from_dict(base)

    def validate(self, where: str) -> None:
        _check_name(self.name, where)
        from .integrators import ADAPTIVE_METHODS

        valid_int = ["euler", "semi_implicit_euler", "rk4", *ADAPTIVE_METHODS]
        if self.integrator not in valid_int:
            raise ValueError(f"{where}: unknown integrator {self.integrator!r}; valid: {valid_int}")
        try:
            self.true_params()
            self.nominal_params()
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: {err}") from err
        if self.train.distribution != "in":
            raise ValueError(f"{where}.train: the training split's distribution must be 'in'")
        self.train.validate(f"{where}.train")
        self.val_split().validate(f"{where}.val")
        if not self.tests:
            raise ValueError(f"{where}: tests must hold at least one split")
        names = [s.name for s in self.tests]
        dup = sorted({n for n in names if names.count(n) > 1} | ({"train", "val"} & set(names)))
        if dup:
            raise ValueError(f"{where}: test split names must be unique and not 'train'/'val', got {dup}")
        for i, s in enumerate(self.tests):
            s.validate(f"{where}.tests[{i}] ({s.name})")
            try:
                self.true_params(s)
            except (TypeError, ValueError) as err:
                raise ValueError(f"{where}.tests[{i}] ({s.name}): {err}") from err


@dataclass
class FitConfig:
    """Training budget, optimiser settings and model selection (shared by all models unless overridden).

    Budget: ``batch = min(batch_size, ceil(windows / min_batches))`` windows per minibatch (small data
    sets get smaller batches, so at least ``min_batches`` steps per epoch) and
    ``epochs = clip(ceil(steps / batches_per_epoch), 1, max_epochs)``: about ``steps`` gradient steps
    whatever the data size. :func:`physwm.train.fit` keeps the weights of the epoch with the lowest
    ``val_horizon``-step validation error.

    Selection: with ``keep_initial``, the trained model is then compared with the untrained one (the same
    initial weights with the data's normalisation) by the open-loop validation RMSE over ``select_horizon``
    steps (or the longest validation episode), and the better is kept. For a hybrid or explicit model the
    untrained model is the nominal physics, so a residual fitted to too few data can never make the model
    worse than its physics on validation data; for a network the untrained model is noise and never wins.
    """

    steps: int = 1000
    max_epochs: int = 200
    batch_size: int = 256
    min_batches: int = 4
    lr: float = 3e-3
    horizon: int = 1
    lr_schedule: str | None = "cosine"
    weight_decay: float = 0.0
    grad_clip: float | None = 10.0
    val_horizon: int = 10
    val_max_windows: int | None = 128
    keep_initial: bool = True
    select_horizon: int = 50

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "fit") -> FitConfig:
        return cls(**_check_keys(cls, d, where))

    def validate(self, where: str) -> None:
        for name in ("steps", "max_epochs", "batch_size", "min_batches", "horizon", "val_horizon", "select_horizon"):
            _positive_int(getattr(self, name), f"{where}.{name}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"{where}.lr must be a positive number, got {self.lr!r}")
        if not isinstance(self.keep_initial, bool):
            raise ValueError(f"{where}.keep_initial must be true or false, got {self.keep_initial!r}")
        from .train import LR_SCHEDULES

        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"{where}.lr_schedule must be one of {list(LR_SCHEDULES)}, got {self.lr_schedule!r}")

    def schedule(self, windows: int) -> tuple[int, int]:
        """``(batch_size, epochs)`` for a training set of ``windows`` windows."""
        if windows < 1:
            raise ValueError(f"no training window of {self.horizon} steps in the training data")
        batch = max(1, min(self.batch_size, math.ceil(windows / self.min_batches)))
        batches = math.ceil(windows / batch)
        return batch, int(min(max(1, math.ceil(self.steps / batches)), self.max_epochs))


@dataclass
class ModelConfig:
    """A model in the study.

    Attributes:
        name: label in tables and figures (unique).
        family: :func:`physwm.models.build` name (default: ``name``): explicit, node, hybrid, mlp, vae,
            gru, transformer, ensemble, gaussian_mlp.
        options: build options (``system``, ``dt`` and ``seed`` are set by the study; ODE families get the
            task's ``integrator`` unless given here).
        fit: overrides of :class:`FitConfig` fields for this model (e.g. ``{"lr": 0.03}``).
    """

    name: str
    family: str | None = None
    options: dict = field(default_factory=dict)
    fit: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "model") -> ModelConfig:
        if isinstance(d, str):
            return cls(name=d)
        return cls(**_check_keys(cls, d, where))

    @property
    def build_name(self) -> str:
        return self.family or self.name

    def validate(self, where: str) -> None:
        from .models import MODEL_NAMES

        _check_name(self.name, where)
        if self.build_name not in MODEL_NAMES:
            raise ValueError(f"{where}: unknown model {self.build_name!r}; valid: {list(MODEL_NAMES)}")
        bad = sorted({"system", "dt", "seed"} & set(self.options))
        if bad:
            raise ValueError(f"{where}: options {bad} are set by the study; remove them")
        if not isinstance(self.fit, Mapping):
            raise ValueError(f"{where}.fit must be a dict of FitConfig fields")
        _check_keys(FitConfig, self.fit, f"{where}.fit")


@dataclass
class DataEfficiencyConfig:
    """Sweep of training-set sizes on one task.

    Attributes:
        task: the task's name.
        sizes: numbers of training transitions (the first ``n`` of the task's training pool).
        models: model names to sweep (``None``: all).
        seeds: seeds (``None``: the study's).
    """

    task: str
    sizes: list[int]
    models: list[str] | None = None
    seeds: list[int] | None = None

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "data_efficiency") -> DataEfficiencyConfig:
        return cls(**_check_keys(cls, d, where))


@dataclass
class HeadlineConfig:
    """What the report's headline compares: a hybrid against the best implicit model.

    Attributes:
        task: task name (default: the last task).
        hybrid: name of the hybrid model.
        implicit: names of the implicit models to take the best of (default: every model whose family is
            in :data:`IMPLICIT_FAMILIES`).
        horizon: rollout horizon (steps) of the compared error ``rmse@horizon``.
    """

    task: str | None = None
    hybrid: str = "hybrid"
    implicit: list[str] | None = None
    horizon: int = 100

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "headline") -> HeadlineConfig:
        return cls(**_check_keys(cls, d, where))


@dataclass
class StudyConfig:
    """A whole study (see the module docstring). Load one with :meth:`from_json`.

    Attributes:
        name: title of the report.
        tasks: the tasks (true systems with their splits).
        models: the models (a plain string is a model of that family with default options).
        seeds: seeds of model initialisation and training (data are the same for every seed).
        train_transitions: training transitions of the comparison runs.
        data_efficiency: optional sweep of training-set sizes.
        headline: what the report's headline compares.
        horizons: rollout horizons (steps) evaluated (a split may set its own).
        max_windows: rollout windows per split (drawn with seed 0: the same windows for every model).
        vpt_threshold: valid-prediction-time threshold (normalised units).
        fit: the training budget; models may override fields.
        workers: processes for collection and training (1: everything in this process).
        threads: torch threads per process.
        figures: draw figures at the end.
    """

    tasks: list[TaskConfig]
    models: list[ModelConfig]
    name: str = "study"
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    train_transitions: int = 5000
    data_efficiency: DataEfficiencyConfig | None = None
    headline: HeadlineConfig = field(default_factory=HeadlineConfig)
    horizons: list[int] = field(default_factory=lambda: [1, 10, 50, 100, 200])
    max_windows: int = 64
    vpt_threshold: float = 0.5
    fit: FitConfig = field(default_factory=FitConfig)
    workers: int = 1
    threads: int = 1
    figures: bool = True

    # -- (de)serialisation -----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping, validate: bool = True) -> StudyConfig:
        """Build (and validate) from a plain dict; unknown fields are errors naming the valid ones."""
        d = _check_keys(cls, d, "study config")
        for key in ("tasks", "models"):
            if key not in d:
                raise ValueError(f"the study config needs a {key!r} field")
        if not isinstance(d["tasks"], list) or not isinstance(d["models"], list):
            raise ValueError("the study config's tasks and models must be lists")
        d["tasks"] = [TaskConfig.from_dict(t, f"tasks[{i}]") for i, t in enumerate(d["tasks"])]
        d["models"] = [ModelConfig.from_dict(m, f"models[{i}]") for i, m in enumerate(d["models"])]
        if d.get("data_efficiency") is not None:
            d["data_efficiency"] = DataEfficiencyConfig.from_dict(d["data_efficiency"])
        if "headline" in d:
            d["headline"] = HeadlineConfig.from_dict(d["headline"] or {})
        if "fit" in d:
            d["fit"] = FitConfig.from_dict(d["fit"] or {})
        cfg = cls(**d)
        return cfg.validate() if validate else cfg

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> StudyConfig:
        """Load from a JSON file (errors name the file and the problem)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no study config file at {path}")
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from err
        try:
            return cls.from_dict(d)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err

    def to_dict(self) -> dict:
        """Plain JSON-able dict (``from_dict(to_dict())`` gives an equal config)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def to_json(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write as JSON, atomically."""
        return _write_text(Path(path), json.dumps(self.to_dict(), indent=1) + "\n", overwrite)

    # -- checks ----------------------------------------------------------------------------------------
    def validate(self) -> StudyConfig:
        """Check everything that can be checked before collecting data; ValueError naming the problem."""
        from .models import build

        if not self.tasks:
            raise ValueError("a study needs at least one task")
        if not self.models:
            raise ValueError("a study needs at least one model")
        for i, t in enumerate(self.tasks):
            if not isinstance(t, TaskConfig):
                raise ValueError(f"tasks[{i}] must be a TaskConfig, got {type(t).__name__}")
            t.validate(f"tasks[{i}] ({t.name})")
        tnames = [t.name for t in self.tasks]
        if len(set(tnames)) != len(tnames):
            raise ValueError(f"task names must be unique, got {tnames}")
        for i, m in enumerate(self.models):
            if not isinstance(m, ModelConfig):
                raise ValueError(f"models[{i}] must be a ModelConfig, got {type(m).__name__}")
            m.validate(f"models[{i}] ({m.name})")
        mnames = [m.name for m in self.models]
        if len(set(mnames)) != len(mnames):
            raise ValueError(f"model names must be unique, got {mnames}")
        if not isinstance(self.seeds, list) or not self.seeds:
            raise ValueError(f"seeds must be a non-empty list of ints, got {self.seeds!r}")
        for s in self.seeds:
            _positive_int(s, "seeds", minimum=0)
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {self.seeds}")
        _positive_int(self.train_transitions, "train_transitions")
        _check_horizons(self.horizons, "horizons")
        _positive_int(self.max_windows, "max_windows")
        _positive_int(self.workers, "workers")
        _positive_int(self.threads, "threads")
        if not (isinstance(self.vpt_threshold, (int, float)) and self.vpt_threshold > 0):
            raise ValueError(f"vpt_threshold must be a positive number, got {self.vpt_threshold!r}")
        self.fit.validate("fit")
        for t in self.tasks:
            for s in t.tests:
                hs = s.horizons or self.horizons
                if max(hs) > s.max_steps:
                    raise ValueError(
                        f"task {t.name!r}, split {s.name!r}: horizons {hs} exceed its max_steps {s.max_steps}, so "
                        "it would have no window of data to evaluate; set the split's horizons or max_steps"
                    )
        de = self.data_efficiency
        if de is not None:
            if de.task not in tnames:
                raise ValueError(f"data_efficiency.task {de.task!r} is not a task; valid: {tnames}")
            if not isinstance(de.sizes, list) or not de.sizes:
                raise ValueError("data_efficiency.sizes must be a non-empty list of ints")
            for n in de.sizes:
                _positive_int(n, "data_efficiency.sizes")
            unknown = sorted(set(de.models or []) - set(mnames))
            if unknown:
                raise ValueError(f"data_efficiency.models {unknown} are not models of the study; valid: {mnames}")
            for s in de.seeds or []:
                _positive_int(s, "data_efficiency.seeds", minimum=0)
        h = self.headline
        if h.task is not None and h.task not in tnames:
            raise ValueError(f"headline.task {h.task!r} is not a task; valid: {tnames}")
        unknown = sorted(set(h.implicit or []) - set(mnames))
        if unknown:
            raise ValueError(f"headline.implicit {unknown} are not models of the study; valid: {mnames}")
        _positive_int(h.horizon, "headline.horizon")
        # Build every model once: unknown options fail now, not after the data are collected.
        for t in self.tasks:
            for m in self.models:
                try:
                    build(m.build_name, t.nominal_params(), **_build_options(m, t, seed=0))
                except (TypeError, ValueError) as err:
                    raise ValueError(f"model {m.name!r} on task {t.name!r}: {err}") from err
        return self

    # -- helpers ---------------------------------------------------------------------------------------
    def task(self, name: str) -> TaskConfig:
        for t in self.tasks:
            if t.name == name:
                return t
        raise ValueError(f"unknown task {name!r}; valid: {[t.name for t in self.tasks]}")

    def model(self, name: str) -> ModelConfig:
        for m in self.models:
            if m.name == name:
                return m
        raise ValueError(f"unknown model {name!r}; valid: {[m.name for m in self.models]}")

    def fit_for(self, model: ModelConfig) -> FitConfig:
        fc = dataclasses.replace(self.fit, **model.fit)
        fc.validate(f"models ({model.name}).fit")
        return fc

    def headline_task(self) -> str:
        return self.headline.task or self.tasks[-1].name


def _build_options(m: ModelConfig, task: TaskConfig, seed: int) -> dict:
    opts = dict(m.options)
    if m.build_name in _ODE_FAMILIES:
        opts.setdefault("integrator", task.integrator)
    if m.build_name == "ensemble":
        member = opts.get("member", "gaussian_mlp")
        if member in _ODE_FAMILIES:
            mo = dict(opts.get("member_options", {}))
            mo.setdefault("integrator", task.integrator)
            opts["member_options"] = mo
    opts["seed"] = int(seed)
    return opts


# --- the default study ------------------------------------------------------------------------------


def default_config(quick: bool = False) -> StudyConfig:
    """The default study: gymnasium's CartPole-v1 and a CartPole with friction; explicit, Neural ODE,
    hybrid, MLP and VAE models; extrapolation splits; data efficiency on the friction task.

    Tasks:

    * ``cartpole``: gymnasium ``CartPole-v1`` (Euler, no friction) under its random policy, episodes ending
      at 12 degrees / 2.4 m. Extrapolation: full swings (``terminate=False``, any angle, up to 6 rad/s),
      a heavier and a longer pole, stronger forces (physwm's environment with ``integrator="euler"``, so
      the same discrete-time system).
    * ``friction``: physwm's CartPole with cart friction (viscous and Coulomb) and pole damping
      (:data:`physwm.envs.FRICTION_PARAMS`), RK4 with 2 ms sub-steps, the pole hanging and swinging up to
      about 60 degrees from the bottom under uniform random forces of at most 5 N. The physics-based models
      start from the frictionless CartPole-v1 equations and identify the constants (friction included);
      the hybrid's residual learns what they still miss.
      Extrapolation: full swings over the top (any angle, up to 6 rad/s), forces up to 15 N, a heavier
      pole, a longer pole, three times the friction, and 500-step horizons.

    Args:
        quick: a small version (one seed, smaller data and budgets) that runs in well under a minute.
    """
    from .envs import FRICTION_PARAMS

    pi = math.pi
    friction = {k: FRICTION_PARAMS.to_dict()[k] for k in ("cart_viscous", "cart_coulomb", "pole_damping")}
    three_x = {k: 3 * v for k, v in friction.items()}
    hang_lo, hang_hi = [-0.5, -0.5, pi - 1.0, -1.0], [0.5, 0.5, pi + 1.0, 1.0]
    swing_lo, swing_hi = [-0.5, -0.5, -pi, -6.0], [0.5, 0.5, pi, 6.0]
    free = {"terminate": False}
    euler = {"terminate": False, "integrator": "euler", "substeps": 1}
    q = quick
    ep, steps = (2, 120) if q else (4, 250)
    hz = [1, 10, 50, 100] if q else [1, 10, 50, 100, 200]

    def split(name, dist, desc, **kw):
        base = dict(episodes=ep, max_steps=steps)
        base.update(kw)
        return SplitConfig(name=name, distribution=dist, description=desc, **base)

    cartpole = TaskConfig(
        name="cartpole",
        description="gymnasium CartPole-v1 (Euler, no friction), random policy; models start from its equations",
        integrator="euler",
        train=split(
            "train",
            "in",
            "CartPole-v1, random policy",
            env="CartPole-v1",
            policy="random",
            episodes=60 if q else 320,
            max_steps=500,
            seed=0,
        ),
        val=split(
            "val",
            "in",
            "CartPole-v1, random policy",
            env="CartPole-v1",
            policy="random",
            episodes=15 if q else 60,
            max_steps=500,
            seed=1,
        ),
        tests=[
            split(
                "in_dist",
                "in",
                "CartPole-v1, random policy (episodes end at 12 deg / 2.4 m)",
                env="CartPole-v1",
                policy="random",
                episodes=40 if q else 200,
                max_steps=500,
                seed=2,
                horizons=[1, 10],
            ),
            split(
                "full_swings",
                "out",
                "no termination, any angle, |theta_dot| <= 6 rad/s, random +-10 N",
                env_options=euler,
                policy="random",
                start_low=swing_lo,
                start_high=swing_hi,
                seed=3,
            ),
            split(
                "heavier_pole",
                "out",
                "pole mass 0.1 -> 0.2 kg, full swings",
                params={"masspole": 0.2},
                env_options=euler,
                policy="random",
                start_low=swing_lo,
                start_high=swing_hi,
                seed=4,
            ),
            split(
                "longer_pole",
                "out",
                "pole half-length 0.5 -> 0.75 m, full swings",
                params={"length": 0.75},
                env_options=euler,
                policy="random",
                start_low=swing_lo,
                start_high=swing_hi,
                seed=5,
            ),
            split(
                "strong_forces",
                "out",
                "random +-20 N instead of +-10 N, full swings",
                params={"force_mag": 20.0},
                env_options=euler,
                policy="random",
                start_low=swing_lo,
                start_high=swing_hi,
                seed=6,
            ),
        ],
    )
    five = {"force_mag": 5.0}
    fr = TaskConfig(
        name="friction",
        description="CartPole with cart friction and pole damping (physwm env, RK4), pole hanging, uniform "
        "forces <= 5 N; physics-based models start from the frictionless equations",
        params=friction,
        integrator="rk4",
        train=split(
            "train",
            "in",
            "hanging +-1 rad, uniform forces <= 5 N",
            env_options=free,
            policy_options=five,
            start_low=hang_lo,
            start_high=hang_hi,
            episodes=12 if q else 50,
            max_steps=100,
            seed=0,
        ),
        val=split(
            "val",
            "in",
            "hanging +-1 rad, uniform forces <= 5 N",
            env_options=free,
            policy_options=five,
            start_low=hang_lo,
            start_high=hang_hi,
            episodes=3 if q else 10,
            max_steps=100,
            seed=1,
        ),
        tests=[
            split(
                "in_dist",
                "in",
                "as training: hanging +-1 rad, uniform forces <= 5 N",
                env_options=free,
                policy_options=five,
                start_low=hang_lo,
                start_high=hang_hi,
                seed=2,
            ),
            split(
                "full_swings",
                "out",
                "any angle, |theta_dot| <= 6 rad/s: swings over the top",
                env_options=free,
                policy_options=five,
                start_low=swing_lo,
                start_high=swing_hi,
                seed=3,
            ),
            split(
                "strong_forces",
                "out",
                "uniform forces <= 15 N instead of 5 N",
                params={"force_mag": 15.0},
                env_options=free,
                start_low=hang_lo,
                start_high=hang_hi,
                seed=4,
            ),
            split(
                "heavier_pole",
                "out",
                "pole mass 0.1 -> 0.2 kg",
                params={"masspole": 0.2},
                env_options=free,
                policy_options=five,
                start_low=hang_lo,
                start_high=hang_hi,
                seed=5,
            ),
            split(
                "longer_pole",
                "out",
                "pole half-length 0.5 -> 0.75 m",
                params={"length": 0.75},
                env_options=free,
                policy_options=five,
                start_low=hang_lo,
                start_high=hang_hi,
                seed=6,
            ),
            split(
                "more_friction",
                "out",
                "3x cart friction and pole damping",
                params=three_x,
                env_options=free,
                policy_options=five,
                start_low=hang_lo,
                start_high=hang_hi,
                seed=7,
            ),
        ]
        + (
            []
            if q
            else [
                split(
                    "long_horizon",
                    "out",
                    "as training, rolled out 500 steps (10 s)",
                    env_options=free,
                    policy_options=five,
                    start_low=hang_lo,
                    start_high=hang_hi,
                    episodes=2,
                    max_steps=550,
                    seed=8,
                    horizons=[100, 200, 500],
                ),
            ]
        ),
    )
    # The hybrid is physwm's default (build("hybrid")): the nominal equations with learnable constants
    # (friction included, starting at zero) plus an acceleration residual with the APHYNITY penalty. Its
    # constants, like the explicit model's, move by about lr * scale per Adam step, hence the larger lr.
    # (A residual-only hybrid, learnable=[] and penalty 1e-3, was 5.7x less accurate in distribution and
    # 4.7x out of distribution at 5,000 transitions on the friction task.)
    models = [
        ModelConfig("explicit", fit={"lr": 0.03}),
        ModelConfig("node"),
        ModelConfig("hybrid", fit={"lr": 0.03}),
        ModelConfig("mlp"),
        ModelConfig("vae"),
    ]
    return StudyConfig(
        name="physwm default study" + (" (quick)" if q else ""),
        tasks=[cartpole, fr],
        models=models,
        seeds=[0] if q else [0, 1],
        train_transitions=600 if q else 5000,
        data_efficiency=DataEfficiencyConfig(task="friction", sizes=[150, 600] if q else [100, 300, 500, 1000, 5000]),
        headline=HeadlineConfig(task="friction", hybrid="hybrid", horizon=50 if q else 100),
        horizons=hz,
        max_windows=32 if q else 64,
        fit=FitConfig(steps=150, max_epochs=40, val_max_windows=64) if q else FitConfig(),
        workers=2,
        threads=1,
    ).validate()


# --- files -------------------------------------------------------------------------------------------


def _write_text(path: Path, text: str, overwrite: bool = True) -> Path:
    """Write ``text`` atomically (see :func:`physwm._io.atomic_write`)."""
    return atomic_write_text(path, text, overwrite=overwrite)


def _write_bytes(path: Path, data: bytes, overwrite: bool = True) -> Path:
    return atomic_write(path, lambda f: f.write(data), overwrite=overwrite)


def _json_dumps(obj: Any) -> str:
    """JSON with non-finite floats written as the strings "inf", "-inf", "nan" (strict JSON readers work)."""
    return json.dumps(_finite_json(obj), indent=1, sort_keys=False) + "\n"


def _finite_json(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, Mapping):
        return {str(k): _finite_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite_json(x) for x in v]
    if isinstance(v, (np.floating, np.integer)):
        return _finite_json(v.item())
    return v


def _from_json_value(v: Any) -> Any:
    if isinstance(v, str) and v in ("inf", "-inf", "nan"):
        return float(v)
    if isinstance(v, dict):
        return {k: _from_json_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_from_json_value(x) for x in v]
    return v


def _read_json(path: Path) -> Any:
    try:
        return _from_json_value(json.loads(Path(path).read_text()))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON (corrupt or truncated?): {err}") from err


def _data_path(out: Path, task: str, split: str) -> Path:
    return out / "runs" / "data" / task / f"{split}.npz"


def _run_path(out: Path, task: str, model: str, n: int, seed: int) -> Path:
    return out / "runs" / task / model / f"n{n}_s{seed}.json"


@contextlib.contextmanager
def _torch_threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# --- jobs (top-level functions: they run in worker processes) ----------------------------------------


def _make_env(task: TaskConfig, split: SplitConfig):
    import gymnasium

    from . import envs  # noqa: F401  (registers physwm/CartPole-v0)

    if split.env == "CartPole-v1":
        return gymnasium.make("CartPole-v1", max_episode_steps=max(500, split.max_steps))
    return gymnasium.make(
        split.env, params=task.true_params(split), max_episode_steps=split.max_steps, **split.env_options
    )


def _collect_job(task_d: dict, split_d: dict, path: str, threads: int) -> str:
    """Collect one split and save it (atomically) to ``path``."""
    from .data import collect, make_policy

    task = TaskConfig.from_dict(task_d)
    split = SplitConfig.from_dict(split_d)
    with _torch_threads(threads):
        env = _make_env(task, split)
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
            )
        finally:
            env.close()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not Path(path).exists():
        traj.save(path)
    return path


def _first_transitions(traj, n: int):
    """The first ``n`` transitions of ``traj`` (whole episodes in order, the last one cut short)."""
    from .data import Trajectories

    total = int(traj.num_transitions)
    if n > total:
        raise ValueError(f"asked for {n} training transitions but the training pool holds only {total}")
    cum = torch.cumsum(traj.lengths, 0)
    k = int((cum < n).sum()) + 1
    sub = traj[:k]
    lengths = sub.lengths.clone()
    lengths[-1] -= int(cum[k - 1]) - n
    return Trajectories(sub.states, sub.controls, lengths, dt=sub.dt, meta=sub.meta)


def _check_compatible(model: Any, data: Any, where: str) -> None:
    if model.state_dim != data.state_dim:
        raise ValueError(
            f"{where}: the model's state_dim is {model.state_dim} but the data's states have "
            f"{data.state_dim} dimensions"
        )
    if model.control_dim != data.control_dim:
        raise ValueError(
            f"{where}: the model's control_dim is {model.control_dim} but the data's controls have "
            f"{data.control_dim} dimensions"
        )
    if abs(float(model.dt) - float(data.dt)) > 1e-12:
        raise ValueError(f"{where}: the model's dt is {model.dt} s but the data's is {data.dt} s")


def _train_windows(fc: FitConfig, train) -> int:
    return int(torch.clamp(train.lengths - fc.horizon + 1, min=0).sum())


@torch.no_grad()
def _select_initial(model, initial_params: dict, val, fc: FitConfig, seed: int) -> tuple[Any, dict]:
    """Compare the trained model with the untrained one on validation rollouts; return the better and a note."""
    import copy

    from .evaluate import evaluate, state_scale

    longest = int(val.lengths.max())
    h = min(fc.select_horizon, longest)
    untrained = copy.deepcopy(model)
    untrained.load_state_dict({**untrained.state_dict(), **initial_params})
    scale = state_scale(val)
    kw = dict(horizons=[h], scale=scale, max_windows=fc.val_max_windows or 128, seed=seed)
    err_trained = evaluate(model, val, **kw)[f"rmse@{h}"]
    err_untrained = evaluate(untrained, val, **kw)[f"rmse@{h}"]
    note = {"select_horizon": h, "val_rmse_trained": err_trained, "val_rmse_untrained": err_untrained}
    if err_untrained < err_trained:
        note["selected"] = "untrained"
        return untrained, note
    note["selected"] = "trained"
    return model, note


def _run_job(cfg_d: dict, task_name: str, model_name: str, n: int, seed: int, out: str) -> str:
    """Train one model on the first ``n`` transitions of a task and evaluate it on every test split."""
    import warnings

    from . import __version__
    from .data import Trajectories
    from .evaluate import _identified, evaluate, parameter_error, state_scale
    from .models import build
    from .systems.cartpole import CartPole
    from .train import fit, save_checkpoint

    cfg = StudyConfig.from_dict(cfg_d, validate=False)
    outp = Path(out)
    task, mc = cfg.task(task_name), cfg.model(model_name)
    fc = cfg.fit_for(mc)
    where = f"task {task.name!r}, model {mc.name!r}, n={n}, seed={seed}"
    path = _run_path(outp, task.name, mc.name, n, seed)
    with _torch_threads(cfg.threads):
        pool = Trajectories.load(_data_path(outp, task.name, "train"))
        val = Trajectories.load(_data_path(outp, task.name, "val"))
        train = _first_transitions(pool, n)
        model = build(mc.build_name, task.nominal_params(), **_build_options(mc, task, seed))
        _check_compatible(model, train, where)
        batch_size, epochs = fc.schedule(_train_windows(fc, train))
        initial_params = {k: v.detach().clone() for k, v in model.named_parameters()}
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            history = fit(
                model,
                train,
                val,
                horizon=fc.horizon,
                epochs=epochs,
                batch_size=batch_size,
                lr=fc.lr,
                lr_schedule=fc.lr_schedule,
                weight_decay=fc.weight_decay,
                grad_clip=fc.grad_clip,
                val_horizon=fc.val_horizon,
                val_max_windows=fc.val_max_windows,
                seed=seed,
                progress=False,
            )
        selection = {"selected": "trained"}
        if fc.keep_initial:
            model, selection = _select_initial(model, initial_params, val, fc, seed)
        train_time = time.perf_counter() - t0
        save_checkpoint(
            path.with_suffix(".pt"),
            model,
            history=history,
            overwrite=True,
            extra={"task": task.name, "model": mc.name, "n_train": n, "seed": seed},
        )
        t1 = time.perf_counter()
        splits = {}
        for s in task.tests:
            data = Trajectories.load(_data_path(outp, task.name, s.name))
            _check_compatible(model, data, f"{where}, split {s.name!r}")
            metrics = evaluate(
                model,
                data,
                horizons=s.horizons or cfg.horizons,
                scale=state_scale(data),
                threshold=cfg.vpt_threshold,
                max_windows=cfg.max_windows,
                seed=0,
                energy_fn=CartPole(task.true_params(s)).energy,
            )
            splits[s.name] = {"distribution": s.distribution, **metrics}
        identified = _identified(model)
        perr = parameter_error(identified, task.true_params()) if identified else {}
    result = {
        "task": task.name,
        "model": mc.name,
        "family": mc.build_name,
        "n_train": int(train.num_transitions),
        "seed": int(seed),
        "epochs": len(history.epoch),
        "batch_size": batch_size,
        "train_time_s": train_time,
        "eval_time_s": time.perf_counter() - t1,
        "stop_reason": history.stop_reason,
        "diverged": bool(history.diverged),
        "best_val_error": history.best_val_error,
        "selection": selection,
        "build_spec": getattr(model, "build_spec", None),
        "fit": dataclasses.asdict(fc),
        "identified": identified,
        "param_err": perr,
        "param_err_mean": (sum(perr.values()) / len(perr)) if perr else None,
        "splits": splits,
        "physwm_version": __version__,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    _write_text(path, _json_dumps(result))  # last: a run without its JSON is redone on resume
    return str(path)


class _Workers:
    """Runs jobs in this process (``n == 1``) or in one pool of spawned processes, created on first use and
    shared by the stages of a study (spawning a worker costs seconds: importing torch)."""

    def __init__(self, n: int):
        self.n = n
        self._pool = None

    def __enter__(self) -> _Workers:
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def run(self, jobs: list[tuple], progress: bool, desc: str) -> None:
        """Run ``(fn, args)`` jobs; the first failure cancels the rest and is raised."""
        from tqdm.auto import tqdm

        if not jobs:
            return
        bar = tqdm(total=len(jobs), desc=desc, unit="job", disable=not progress)
        try:
            if self.n <= 1 or len(jobs) == 1:
                for fn, args in jobs:
                    fn(*args)
                    bar.update(1)
                return
            from concurrent.futures import FIRST_EXCEPTION, wait

            if self._pool is None:
                import multiprocessing as mp
                from concurrent.futures import ProcessPoolExecutor

                self._pool = ProcessPoolExecutor(max_workers=self.n, mp_context=mp.get_context("spawn"))
            pending = {self._pool.submit(fn, *args) for fn, args in jobs}
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for f in done:
                    err = f.exception()
                    if err is not None:
                        for p in pending:
                            p.cancel()
                        raise err
                    bar.update(1)
        finally:
            bar.close()


# --- stages ------------------------------------------------------------------------------------------


@dataclass
class StudyResult:
    """What a study run did and where its outputs are.

    Attributes:
        out: output directory.
        runs_total: runs the study consists of.
        runs_done: runs trained in this call (the others were loaded from their files).
        data_collected: data sets collected in this call.
        wall_time_s: seconds this call took.
        headline: the headline numbers (see :func:`write_report`).
        files: the report files written (results.md, results.json, results.csv, figures).
    """

    out: Path
    runs_total: int = 0
    runs_done: int = 0
    data_collected: int = 0
    wall_time_s: float = 0.0
    headline: dict = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


def _prepare_out(cfg: StudyConfig, out: Path, overwrite: bool) -> None:
    """Create ``out`` and write its config.json; a different study there is an error unless ``overwrite``."""
    out = Path(out)
    cfg_path = out / "config.json"
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory")
    if cfg_path.exists():
        try:
            old = _read_json(cfg_path)
        except ValueError:
            old = None
        same = _identity(old) == _identity(json.loads(json.dumps(cfg.to_dict())))
        if not same:
            if not overwrite:
                raise FileExistsError(
                    f"{out} holds the results of a different study (its config.json differs); choose another "
                    "output directory or pass overwrite=True (--overwrite) to replace them"
                )
            _clear_out(out)
        elif overwrite:
            _clear_out(out)
    elif out.is_dir() and any(out.iterdir()) and not overwrite:
        known = {"runs", "figures", "results.md", "results.json", "results.csv"}
        if not set(p.name for p in out.iterdir()) <= known:
            raise FileExistsError(
                f"{out} is not empty and holds no study config.json; choose another output directory or pass "
                "overwrite=True (--overwrite)"
            )
    elif overwrite and out.is_dir():
        _clear_out(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg.to_json(cfg_path, overwrite=True)


#: StudyConfig fields that change how a study is run, not its results (a resumed study may change them).
_EXECUTION_FIELDS = ("workers", "threads", "figures")


def _identity(d: Any) -> Any:
    """A config dict without its execution fields (what must match for a study to resume)."""
    if not isinstance(d, dict):
        return d
    return {k: v for k, v in d.items() if k not in _EXECUTION_FIELDS}


def _clear_out(out: Path) -> None:
    """Remove what a study writes (only those entries, never anything else in ``out``)."""
    for name in ("runs", "figures"):
        shutil.rmtree(out / name, ignore_errors=True)
    for name in ("results.md", "results.json", "results.csv", "config.json"):
        with contextlib.suppress(FileNotFoundError):
            (out / name).unlink()


def _collect_data(cfg: StudyConfig, out: Path, progress: bool, workers: _Workers) -> int:
    jobs = []
    for t in cfg.tasks:
        for name, s in [("train", t.train), ("val", t.val_split()), *((s.name, s) for s in t.tests)]:
            p = _data_path(out, t.name, name)
            if not p.exists():
                est = s.episodes * s.max_steps * (10 if s.env != "CartPole-v1" else 1)
                args = (dataclasses.asdict(t), dataclasses.asdict(s), str(p), cfg.threads)
                jobs.append((est, (_collect_job, args)))
    jobs.sort(key=lambda j: -j[0])
    workers.run([j for _, j in jobs], progress, "collect")
    _check_data(cfg, out)
    return len(jobs)


def _check_data(cfg: StudyConfig, out: Path) -> None:
    """Every split has data, long enough for its horizons; the pool is large enough."""
    from .data import Trajectories

    for t in cfg.tasks:
        pool = Trajectories.load(_data_path(out, t.name, "train"))
        need = max([cfg.train_transitions] + (cfg.data_efficiency.sizes if _de_task(cfg) == t.name else []))
        if pool.num_transitions < need:
            raise ValueError(
                f"task {t.name!r}: the training pool holds {pool.num_transitions} transitions, fewer than the "
                f"{need} requested; raise its train.episodes"
            )
        for s in t.tests:
            data = Trajectories.load(_data_path(out, t.name, s.name))
            hs = s.horizons or cfg.horizons
            longest = int(data.lengths.max()) if data.num_episodes else 0
            if data.num_transitions == 0 or longest < max(hs):
                raise ValueError(
                    f"task {t.name!r}, split {s.name!r} has no window of {max(hs)} steps to evaluate (its longest "
                    f"episode has {longest} transitions, {data.num_transitions} in all); set the split's horizons "
                    "or collect longer episodes (terminate=False)"
                )


def _de_task(cfg: StudyConfig) -> str | None:
    return cfg.data_efficiency.task if cfg.data_efficiency is not None else None


def _compare_runs(cfg: StudyConfig) -> list[tuple[str, str, int, int]]:
    return [(t.name, m.name, cfg.train_transitions, s) for t in cfg.tasks for m in cfg.models for s in cfg.seeds]


def _efficiency_runs(cfg: StudyConfig) -> list[tuple[str, str, int, int]]:
    de = cfg.data_efficiency
    if de is None:
        return []
    models = de.models or [m.name for m in cfg.models]
    seeds = de.seeds or cfg.seeds
    return [(de.task, m, n, s) for m in models for n in de.sizes for s in seeds]


def _run_all(
    cfg: StudyConfig, out: Path, runs: Iterable[tuple[str, str, int, int]], progress: bool, workers: _Workers
) -> int:
    runs = list(dict.fromkeys(runs))
    todo = [r for r in runs if not _run_path(out, *r).exists()]
    cost = {"hybrid": 3.0, "explicit": 2.0, "node": 2.0, "ensemble": 5.0, "transformer": 3.0}
    todo.sort(key=lambda r: -cost.get(cfg.model(r[1]).build_name, 1.0) * math.log(10 + r[2]))
    cfg_d = cfg.to_dict()
    workers.run([(_run_job, (cfg_d, *r, str(out))) for r in todo], progress, "train+evaluate")
    return len(todo)


def compare(
    config: StudyConfig, out: str | os.PathLike, *, overwrite: bool = False, progress: bool = True
) -> StudyResult:
    """Train every model on every task at ``train_transitions`` transitions, for every seed, and evaluate.

    Collects the data first (if not already in ``out``). Finished runs found in ``out`` are not redone.
    Writes the report (results.md/.json/.csv) but no figures (see :func:`run_study`).

    Returns:
        a :class:`StudyResult`.
    """
    return _run(config, out, overwrite, progress, efficiency=False, figures=False)


def data_efficiency(
    config: StudyConfig, out: str | os.PathLike, *, overwrite: bool = False, progress: bool = True
) -> StudyResult:
    """Sweep the training-set sizes of ``config.data_efficiency`` (every listed model and seed) and report.

    Returns:
        a :class:`StudyResult`.

    Raises:
        ValueError: if the config has no ``data_efficiency`` section.
    """
    if config.data_efficiency is None:
        raise ValueError("the study config has no data_efficiency section (task, sizes)")
    return _run(config, out, overwrite, progress, efficiency=True, figures=False, compare_runs=False)


def run_study(
    config: StudyConfig | None = None,
    out: str | os.PathLike = "runs/study",
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> StudyResult:
    """The whole study: data, comparison runs, data-efficiency sweep, report and figures.

    Re-running with the same config and ``out`` resumes: finished data sets and runs are loaded, not redone.

    Args:
        config: the study (default: :func:`default_config`).
        out: output directory (created).
        overwrite: replace the results of a *different* study found in ``out`` (else FileExistsError); with
            the same study, start again from scratch.
        progress: tqdm progress bars.

    Returns:
        a :class:`StudyResult` (paths, counts, headline numbers, wall time).
    """
    return _run(config or default_config(), out, overwrite, progress, efficiency=True, figures=True)


def _run(cfg, out, overwrite, progress, *, efficiency: bool, figures: bool, compare_runs: bool = True):
    if not isinstance(cfg, StudyConfig):
        raise TypeError(f"config must be a StudyConfig, got {type(cfg).__name__}")
    cfg.validate()
    t0 = time.perf_counter()
    out = Path(out)
    _prepare_out(cfg, out, overwrite)
    res = StudyResult(out=out)
    runs = (_compare_runs(cfg) if compare_runs else []) + (_efficiency_runs(cfg) if efficiency else [])
    runs = list(dict.fromkeys(runs))
    res.runs_total = len(runs)
    with _Workers(cfg.workers) as workers:
        res.data_collected = _collect_data(cfg, out, progress, workers)
        res.runs_done = _run_all(cfg, out, runs, progress, workers)
    rows = load_results(out, cfg)
    if figures and cfg.figures:
        _write_figure_data(cfg, out)
    res.headline, files = write_report(cfg, rows, out, wall_time_s=time.perf_counter() - t0, runs_done=res.runs_done)
    res.files.extend(files)
    if figures and cfg.figures:
        res.files.extend(draw_figures(out))
    res.wall_time_s = time.perf_counter() - t0
    return res


# --- results -----------------------------------------------------------------------------------------


def load_results(out: str | os.PathLike, config: StudyConfig | None = None) -> list[dict]:
    """The finished runs of a study directory, as a list of run dicts (see the run JSON files).

    Args:
        out: the study directory.
        config: only runs of this config (default: every run file found).
    """
    out = Path(out)
    if config is None:
        paths = sorted((out / "runs").glob("*/*/n*_s*.json"))
    else:
        runs = list(dict.fromkeys(_compare_runs(config) + _efficiency_runs(config)))
        paths = [p for p in (_run_path(out, *r) for r in runs) if p.exists()]
    return [_read_json(p) for p in paths]


def _core(metric: str) -> bool:
    return metric in _CORE_METRICS or (metric.startswith(_CORE_PREFIXES) and "[" not in metric)


def _stats(values: list[float]) -> tuple[float, float]:
    v = np.asarray([np.nan if x is None else float(x) for x in values], dtype=np.float64)
    if v.size == 0 or np.isnan(v).all():
        return math.nan, math.nan
    if np.isinf(v).any():
        return math.inf, math.nan
    v = v[~np.isnan(v)]
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def aggregate(rows: list[dict]) -> list[dict]:
    """Mean and standard deviation over seeds of every core metric, per (task, model, n_train, split).

    Returns:
        rows ``{"task", "model", "family", "n_train", "split", "distribution", "seeds", METRIC: mean,
        METRIC + "_std": std, ...}`` (a divergent run makes the mean ``inf``).
    """
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        for split, m in r["splits"].items():
            groups.setdefault((r["task"], r["model"], r["n_train"], split), []).append((r, m))
    outr = []
    for (task, model, n, split), items in groups.items():
        metrics = sorted({k for _, m in items for k in m if _core(k)}, key=_metric_order)
        row = {
            "task": task,
            "model": model,
            "family": items[0][0]["family"],
            "n_train": n,
            "split": split,
            "distribution": items[0][1]["distribution"],
            "seeds": len(items),
        }
        for k in metrics:
            row[k], row[k + "_std"] = _stats([m.get(k) for _, m in items])
        for k in _RUN_METRICS:
            vals = [r.get(k) for r, _ in items if r.get(k) is not None]
            if vals:
                row[k], row[k + "_std"] = _stats(vals)
        outr.append(row)
    return outr


def _metric_order(k: str) -> tuple:
    m = re.match(r"^(\w+)@(\d+)$", k)
    return (k.split("@")[0], int(m.group(2))) if m else (k, 0)


def _lookup(agg: list[dict], task: str, model: str, n: int, split: str) -> dict | None:
    for r in agg:
        if (r["task"], r["model"], r["n_train"], r["split"]) == (task, model, n, split):
            return r
    return None


def _geomean(vals: list[float]) -> float:
    v = [x for x in vals if x is not None and not math.isnan(x)]
    if not v or len(v) != len(vals):
        return math.nan
    if any(math.isinf(x) for x in v):
        return math.inf
    if any(x <= 0 for x in v):
        return 0.0
    return float(math.exp(sum(math.log(x) for x in v) / len(v)))


def _ratio(a: float, b: float) -> float:
    """a / b with the limits a diverged (inf) model calls for."""
    if math.isnan(a) or math.isnan(b):
        return math.nan
    if math.isinf(b):
        return 0.0 if not math.isinf(a) else math.nan
    if b == 0:
        return math.inf
    return a / b


def headline(cfg: StudyConfig, agg: list[dict]) -> dict:
    """The hybrid against the best implicit model on the headline task (see :class:`HeadlineConfig`).

    Returns a dict with, for the comparison size ``n = train_transitions``: per split the hybrid's
    ``rmse@h``, the best implicit model and its error, and their ratio (``> 1``: the hybrid is more
    accurate); the geometric mean of the ratios over in- and out-of-distribution splits; and, if the
    data-efficiency sweep covers them, the fewest transitions at which the hybrid reaches the best error
    any implicit model reached at any size (``transitions_ratio``, a lower bound if already at the smallest).
    """
    h = cfg.headline
    task = cfg.task(cfg.headline_task())
    key = f"rmse@{h.horizon}"
    mnames = [m.name for m in cfg.models]
    implicit = h.implicit or [m.name for m in cfg.models if m.build_name in IMPLICIT_FAMILIES]
    res: dict[str, Any] = {
        "task": task.name,
        "metric": key,
        "hybrid": h.hybrid,
        "implicit": implicit,
        "n_train": cfg.train_transitions,
        "splits": [],
    }
    if h.hybrid not in mnames or not implicit:
        res["note"] = "the study has no hybrid or no implicit model to compare"
        return res
    for s in task.tests:
        hyb = _lookup(agg, task.name, h.hybrid, cfg.train_transitions, s.name)
        if hyb is None or key not in hyb:
            continue
        best, best_err = None, math.inf
        for m in implicit:
            r = _lookup(agg, task.name, m, cfg.train_transitions, s.name)
            if r is not None and key in r and (best is None or r[key] < best_err):
                best, best_err = m, r[key]
        res["splits"].append(
            {
                "split": s.name,
                "distribution": s.distribution,
                "other_system": _system_shift(task, s),
                "hybrid": hyb[key],
                "hybrid_std": hyb.get(key + "_std"),
                "best_implicit": best,
                "best_implicit_err": best_err,
                "ratio": _ratio(best_err, hyb[key]),
                "explicit": {
                    m.name: (_lookup(agg, task.name, m.name, cfg.train_transitions, s.name) or {}).get(key)
                    for m in cfg.models
                    if m.build_name == "explicit"
                },
            }
        )
    for dist in _DISTRIBUTIONS:
        ratios = [r["ratio"] for r in res["splits"] if r["distribution"] == dist]
        res[f"ratio_{dist}"] = _geomean(ratios) if ratios else math.nan
        res[f"min_ratio_{dist}"] = min(ratios) if ratios else math.nan
    for label, shifted in (("same_system", False), ("other_system", True)):
        ratios = [r["ratio"] for r in res["splits"] if r["distribution"] == "out" and r["other_system"] == shifted]
        res[f"ratio_out_{label}"] = _geomean(ratios) if ratios else math.nan
    de = cfg.data_efficiency
    if de is not None and de.task == task.name:
        models = de.models or mnames
        sizes = sorted(set(de.sizes) | {cfg.train_transitions})
        for dist in _DISTRIBUTIONS:
            splits = [
                s.name for s in task.tests if s.distribution == dist and key in _split_keys(agg, task.name, s.name)
            ]
            if not splits or h.hybrid not in models:
                continue

            def err(model, n, splits=splits):
                vals = [(_lookup(agg, task.name, model, n, sp) or {}).get(key) for sp in splits]
                return _geomean([math.nan if v is None else v for v in vals])

            best = (None, None, math.inf)
            for m in implicit:
                if m not in models:
                    continue
                for n in sizes:
                    e = err(m, n)
                    if not math.isnan(e) and e < best[2]:
                        best = (m, n, e)
            if best[0] is None:
                continue
            reach = [n for n in sizes if not math.isnan(err(h.hybrid, n)) and err(h.hybrid, n) <= best[2]]
            n_h = min(reach) if reach else None
            res[f"efficiency_{dist}"] = {
                "splits": splits,
                "best_implicit": best[0],
                "best_implicit_n": best[1],
                "best_implicit_err": best[2],
                "hybrid_n_to_reach": n_h,
                "transitions_ratio": (best[1] / n_h) if n_h else None,
                "lower_bound": bool(n_h is not None and n_h == min(sizes)),
                "hybrid_curve": {n: err(h.hybrid, n) for n in sizes},
            }
    return res


def _system_shift(task: TaskConfig, split: SplitConfig) -> bool:
    """True if the split's true system has other physical constants than the training system's (the force
    bound ``force_mag`` only limits the inputs, it does not change the equations)."""
    a, b = task.true_params().to_dict(), task.true_params(split).to_dict()
    return any(a[k] != b[k] for k in a if k != "force_mag")


def _split_keys(agg: list[dict], task: str, split: str) -> set[str]:
    return {k for r in agg if r["task"] == task and r["split"] == split for k in r}


def _fmt(v: Any, std: Any = None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float) and math.isinf(v):
        return "diverged"
    s = f"{v:.3g}"
    if std is not None and isinstance(std, float) and math.isfinite(std) and std > 0:
        s += f" ± {std:.2g}"
    return s


def _fmt_ratio(v: float) -> str:
    if v is None or math.isnan(v):
        return "–"
    if math.isinf(v):
        return "∞"
    return f"{v:.3g}x" if v < 100 else f"{v:.0f}x"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(v: str) -> str:
        return str(v).replace("|", "\\|")  # a literal | would split the cell

    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(lines)


def write_report(
    cfg: StudyConfig,
    rows: list[dict],
    out: str | os.PathLike,
    wall_time_s: float | None = None,
    runs_done: int | None = None,
) -> tuple[dict, list[Path]]:
    """Write results.md, results.json and results.csv from the finished runs; returns (headline, paths).

    Args:
        cfg: the study.
        rows: the finished runs (:func:`load_results`).
        out: the study directory.
        wall_time_s: seconds the call that produced them took (reported).
        runs_done: how many of the runs that call trained (the others were resumed from their files).
    """
    from . import __version__

    out = Path(out)
    agg = aggregate(rows)
    head = headline(cfg, agg)
    files = []
    meta = {
        "physwm_version": __version__,
        "git": _git_describe(),
        "runs": len(rows),
        "wall_time_s": wall_time_s,
        "runs_done": runs_done,
        "run_compute_s": float(sum(r.get("train_time_s", 0.0) + r.get("eval_time_s", 0.0) for r in rows)),
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    rounded = [{k: (float(f"{v:.5g}") if isinstance(v, float) and math.isfinite(v) else v) for k, v in r.items()}
               for r in agg]  # fmt: skip
    data = {"study": cfg.name, "meta": meta, "headline": head, "config": cfg.to_dict(), "aggregated": rounded}
    # the aggregated table as columns + one row per line: compact, and it still diffs well
    cols = _columns(agg)
    text = _json_dumps({k: v for k, v in data.items() if k != "aggregated"})
    rows_text = ",\n  ".join(json.dumps(_finite_json([r.get(c) for c in cols]), separators=(",", ":")) for r in rounded)
    text = (
        text.rstrip().rstrip("}").rstrip()
        + ',\n "aggregated": {\n  "columns": '
        + json.dumps(cols)
        + ',\n  "rows": [\n  '
        + rows_text
        + "\n  ]\n }\n}\n"
    )
    json.loads(text)  # the hand-joined file must stay valid JSON
    files.append(_write_text(out / "results.json", text))
    files.append(_write_text(out / "results.csv", _csv(agg)))
    files.append(_write_text(out / "results.md", _markdown(cfg, agg, head, meta)))
    return head, files


def _git_describe() -> str | None:
    """The source tree's commit (``+dirty`` with uncommitted changes), or None outside a git checkout."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=5, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "physwm"], cwd=root,
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


_KEYS = ["task", "model", "family", "n_train", "split", "distribution", "seeds"]


def _columns(agg: list[dict]) -> list[str]:
    metrics = sorted({k for r in agg for k in r if k not in _KEYS and not k.endswith("_std")}, key=_metric_order)
    return _KEYS + [c for k in metrics for c in (k, k + "_std")]


def _aggregated_rows(results: dict) -> list[dict]:
    """The aggregated rows of a results.json (stored as columns + rows)."""
    a = results["aggregated"]
    if isinstance(a, list):
        return a
    return [{c: v for c, v in zip(a["columns"], row) if v is not None} for row in a["rows"]]


def _csv(agg: list[dict]) -> str:
    import csv
    import io

    cols = _columns(agg)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in sorted(agg, key=lambda r: (r["task"], r["model"], r["n_train"], r["split"])):
        w.writerow([_csv_value(r.get(c)) for c in cols])
    return buf.getvalue()


def _csv_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.5g}" if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    return str(v)


def _report_horizon(cfg: StudyConfig, s: SplitConfig) -> int:
    hs = s.horizons or cfg.horizons
    return cfg.headline.horizon if cfg.headline.horizon in hs else max(h for h in hs if h <= max(hs))


def _markdown(cfg: StudyConfig, agg: list[dict], head: dict, meta: dict) -> str:
    L = [f"# {cfg.name}", ""]
    wt = meta.get("wall_time_s")
    L.append(
        f"physwm {meta['physwm_version']}"
        + (f" (git {meta['git']})" if meta.get("git") else "")
        + f", {meta['runs']} runs, written {meta['written']}"
        + (f", {wt:.0f} s wall time ({cfg.workers} worker processes" if wt else "")
        + (
            f"; {meta['runs_done']} of the runs trained in that call, the others resumed"
            if wt and meta.get("runs_done") is not None and meta["runs_done"] < meta["runs"]
            else ""
        )
        + (")" if wt else "")
        + f", {meta['run_compute_s']:.0f} s of training and evaluation in the runs"
        + ". Configuration: `config.json`; per-run metrics: `runs/`; aggregated: `results.csv`, `results.json`."
    )
    L += [
        "",
        "Errors are open-loop rollout RMSEs from held-out starts under the recorded controls, in units of "
        "each split's per-dimension state standard deviation (the same units for every model on a split), "
        f'averaged over {len(cfg.seeds)} seed(s) (± standard deviation over seeds). "diverged": the '
        "prediction became NaN/inf. VPT: valid prediction time, steps until the normalised error first "
        f"exceeds {cfg.vpt_threshold}.",
        "",
    ]
    # headline
    if head.get("splits"):
        h = cfg.headline
        L += [
            f"## Headline: {head['hybrid']} vs the best implicit model, task `{head['task']}`",
            "",
            f"{head['metric']} ({h.horizon}-step open-loop RMSE), {head['n_train']} training transitions. "
            f"Implicit models: {', '.join(head['implicit'])}. Ratio = best implicit error / hybrid error "
            "(> 1: the hybrid is more accurate).",
            "",
        ]
        explicit = sorted({m for s in head["splits"] for m in s.get("explicit", {})})
        rows = [
            [
                s["split"] + (" (other constants)" if s["other_system"] else ""),
                s["distribution"],
                _fmt(s["hybrid"], s["hybrid_std"]),
                f"{_fmt(s['best_implicit_err'])} ({s['best_implicit']})",
                _fmt_ratio(s["ratio"]),
            ]
            + [_fmt(s.get("explicit", {}).get(m)) for m in explicit]
            for s in head["splits"]
        ]
        header = ["split", "distribution", head["hybrid"], "best implicit (model)", "ratio"]
        L += [_md_table(header + [f"{m} (reference)" for m in explicit], rows), ""]
        if explicit:
            L += [
                f"The {', '.join(explicit)} column is a reference, not a contender: the equations with the true "
                "form of the friction and constants identified from the training data. Where it fails too (other "
                "physical constants), the error is the change of system itself, which no model trained on the "
                "original system can know.",
                "",
            ]
        L.append(
            f"- In distribution: ratio {_fmt_ratio(head['ratio_in'])} (geometric mean over in-distribution splits)."
        )
        n_same = sum(1 for s in head["splits"] if s["distribution"] == "out" and not s["other_system"])
        n_other = sum(1 for s in head["splits"] if s["distribution"] == "out" and s["other_system"])
        L.append(
            f"- Out of distribution: ratio {_fmt_ratio(head['ratio_out'])} (geometric mean over "
            f"{n_same + n_other} extrapolation splits; smallest {_fmt_ratio(head['min_ratio_out'])}). "
            f"Same system, new states/forces/horizons ({n_same} splits): {_fmt_ratio(head['ratio_out_same_system'])}; "
            f"other physical constants ({n_other} splits, which no model trained on the original system can "
            f"know): {_fmt_ratio(head['ratio_out_other_system'])}."
        )
        for dist in _DISTRIBUTIONS:
            e = head.get(f"efficiency_{dist}")
            if not e:
                continue
            what = "in distribution" if dist == "in" else "out of distribution (geometric mean over splits)"
            if e["hybrid_n_to_reach"] is None:
                L.append(
                    f"- Data efficiency, {what}: the hybrid never reaches the best implicit error "
                    f"{_fmt(e['best_implicit_err'])} ({e['best_implicit']}, {e['best_implicit_n']} transitions) "
                    "at the sizes tried."
                )
            else:
                bound = "at least " if e["lower_bound"] else ""
                L.append(
                    f"- Data efficiency, {what}: the hybrid reaches the best implicit error "
                    f"{_fmt(e['best_implicit_err'])} ({e['best_implicit']} with {e['best_implicit_n']} "
                    f"transitions) with {e['hybrid_n_to_reach']} transitions: {bound}"
                    f"{e['transitions_ratio']:.3g}x fewer"
                    + (" (the smallest size tried)." if e["lower_bound"] else ".")
                )
        L.append("")
    # per task
    for t in cfg.tasks:
        L += [f"## Task `{t.name}`", "", t.description, ""]
        tr = cfg.train_transitions
        srows = [[f"`{s.name}`", s.distribution, s.description] for s in t.tests]
        L += [_md_table(["split", "distribution", "what differs from training"], srows), ""]
        header = ["model"] + [f"{s.name} @{_report_horizon(cfg, s)}" for s in t.tests]
        rows = []
        for m in cfg.models:
            row = [m.name]
            for s in t.tests:
                r = _lookup(agg, t.name, m.name, tr, s.name) or {}
                k = f"rmse@{_report_horizon(cfg, s)}"
                row.append(_fmt(r.get(k), r.get(k + "_std")))
            rows.append(row)
        L += [f"Rollout RMSE at the given horizon (steps), {tr} training transitions:", "", _md_table(header, rows), ""]
        rows = []
        for m in cfg.models:
            row = [m.name]
            for s in t.tests:
                r = _lookup(agg, t.name, m.name, tr, s.name) or {}
                row.append(_fmt(r.get("vpt_s"), r.get("vpt_s_std")))
            rows.append(row)
        L += ["Valid prediction time (s):", "", _md_table(["model"] + [s.name for s in t.tests], rows), ""]
        first_in = next((s for s in t.tests if s.distribution == "in"), t.tests[0])
        hs = first_in.horizons or cfg.horizons
        header = (
            ["model", "one-step MSE"]
            + [f"rmse@{h}" for h in hs]
            + [f"energy err @{hs[-1]} (J)", "param. error", "train time (s)"]
        )
        rows = []
        for m in cfg.models:
            r = _lookup(agg, t.name, m.name, tr, first_in.name) or {}
            row = [m.name, _fmt(r.get("one_step_mse_norm"))] + [
                _fmt(r.get(f"rmse@{h}"), r.get(f"rmse@{h}_std")) for h in hs
            ]
            row += [_fmt(r.get(f"energy_rmse@{hs[-1]}")), _fmt(r.get("param_err_mean")), _fmt(r.get("train_time_s"))]
            rows.append(row)
        L += [
            f"Split `{first_in.name}` in detail (one-step MSE normalised; parameter error: mean relative error "
            "of the identified constants, absolute where the true value is 0):",
            "",
            _md_table(header, rows),
            "",
        ]
        unc = [m for m in cfg.models if (_lookup(agg, t.name, m.name, tr, first_in.name) or {}).get("nll") is not None]
        if unc:
            rows = []
            for m in unc:
                r = _lookup(agg, t.name, m.name, tr, first_in.name)
                rows.append([m.name, _fmt(r.get("nll")), _fmt(r.get("coverage@0.9")), _fmt(r.get("calibration_error"))])
            L += [
                "Predictive uncertainty (one step, normalised units):",
                "",
                _md_table(["model", "Gaussian NLL", "coverage of 90% interval", "calibration error"], rows),
                "",
            ]
    # data efficiency
    de = cfg.data_efficiency
    if de is not None:
        t = cfg.task(de.task)
        models = de.models or [m.name for m in cfg.models]
        sizes = sorted(set(de.sizes))
        L += [f"## Data efficiency, task `{t.name}`", ""]
        for s in t.tests:
            k = f"rmse@{_report_horizon(cfg, s)}"
            rows = []
            for m in models:
                row = [m]
                for n in sizes:
                    r = _lookup(agg, t.name, m, n, s.name) or {}
                    row.append(_fmt(r.get(k), r.get(k + "_std")))
                rows.append(row)
            L += [
                f"Split `{s.name}` ({s.distribution}), {k} against training transitions:",
                "",
                _md_table(["model"] + [str(n) for n in sizes], rows),
                "",
            ]
    # budget
    f = cfg.fit
    L += [
        "## Training",
        "",
        f"Every model: Adam, ~{f.steps} gradient steps of {f.batch_size} windows ({f.horizon}-step loss), at most "
        f"{f.max_epochs} epochs, lr {f.lr} ({f.lr_schedule} schedule), weights of the epoch with the lowest "
        f"{f.val_horizon}-step validation error kept. Overrides: "
        + (", ".join(f"{m.name} {m.fit}" for m in cfg.models if m.fit) or "none")
        + ". Model options: "
        + (", ".join(f"{m.name} {m.options}" for m in cfg.models if m.options) or "defaults")
        + ".",
        "",
    ]
    L += ["## Figures", "", "See `figures/` (redraw with `physwm plot <this directory>`).", ""]
    return "\n".join(L)


# --- figures -----------------------------------------------------------------------------------------

_FIG_DATA = "figure_data.npz"


@torch.no_grad()
def _write_figure_data(cfg: StudyConfig, out: Path) -> Path | None:
    """Arrays for the figures of the headline task (seed ``seeds[0]``, ``train_transitions``), from the runs'
    checkpoints: showcase rollouts, energies, vector fields on the (theta, theta_dot) slice, hybrid residuals.
    """
    from .data import Trajectories
    from .evaluate import eval_windows, rollout_predictions
    from .models import ODEModel
    from .systems.cartpole import CartPole
    from .train import load_checkpoint

    task = cfg.task(cfg.headline_task())
    seed, n = cfg.seeds[0], cfg.train_transitions
    models = {}
    for m in cfg.models:
        p = _run_path(out, task.name, m.name, n, seed).with_suffix(".pt")
        if p.exists():
            models[m.name] = load_checkpoint(p)[0].eval()
    if not models:
        return None
    arrays: dict[str, np.ndarray] = {}
    train = _first_transitions(Trajectories.load(_data_path(out, task.name, "train")), n)
    valid = torch.arange(train.states.shape[1])[None, :] <= train.lengths[:, None]
    tr_states = train.states[valid]
    step = max(1, tr_states.shape[0] // 2000)
    arrays["train_states"] = tr_states[::step].numpy()
    showcase = []
    for dist in _DISTRIBUTIONS:
        s = next((s for s in task.tests if s.distribution == dist), None)
        if s is None:
            continue
        showcase.append(s.name)
        data = Trajectories.load(_data_path(out, task.name, s.name))
        H = max(s.horizons or cfg.horizons)
        w = eval_windows(data, H, max_windows=cfg.max_windows, seed=0)
        one = {"states": w["states"][:1], "controls": w["controls"][:1]}
        truth = one["states"][0].double()
        energy_fn = CartPole(task.true_params(s)).energy
        arrays[f"rollout__{s.name}__truth"] = truth.numpy()
        arrays[f"energy__{s.name}__truth"] = energy_fn(truth).numpy()
        arrays[f"controls__{s.name}"] = one["controls"][0].double().numpy()
        for name, model in models.items():
            pred = rollout_predictions(model, one)[0].double()
            arrays[f"rollout__{s.name}__{name}"] = pred.numpy()
            arrays[f"energy__{s.name}__{name}"] = energy_fn(pred).numpy()
    # vector field on the (theta, theta_dot) slice at x = x_dot = 0, u = 0
    theta_c = float(round(float(tr_states[:, 2].mean()) / math.pi) * math.pi)
    gx = np.linspace(theta_c - math.pi, theta_c + math.pi, 25)
    gy = np.linspace(-6.0, 6.0, 25)
    TH, TD = np.meshgrid(gx, gy)
    x = torch.zeros(TH.size, 4, dtype=torch.float64)
    x[:, 2], x[:, 3] = torch.from_numpy(TH.ravel()), torch.from_numpy(TD.ravel())
    u = torch.zeros(TH.size, 1, dtype=torch.float64)
    true_field = CartPole(task.true_params())
    arrays["field__grid_x"], arrays["field__grid_y"] = gx, gy
    arrays["field__truth"] = true_field(x, u)[:, [2, 3]].reshape(TH.shape + (2,)).numpy()
    for name, model in models.items():
        dtype = next(model.parameters()).dtype
        xm, um = x.to(dtype), u.to(dtype)
        if isinstance(model, ODEModel):
            f = model.field(xm, um)
        else:
            f = (model.step(xm, um) - xm) / model.dt
        arrays[f"field__{name}"] = f[:, [2, 3]].double().reshape(TH.shape + (2,)).numpy()
    # what each hybrid learned (identified constants + residual) against the term the nominal physics misses
    nominal = CartPole(task.nominal_params())
    hybrids = [m.name for m in cfg.models if m.build_name == "hybrid" and m.name in models]
    sweeps = {"x_dot": (1, 1, np.linspace(-3.0, 3.0, 121)), "theta_dot": (3, 3, np.linspace(-8.0, 8.0, 121))}
    for var, (col, row, grid) in sweeps.items():
        xs = torch.zeros(grid.size, 4, dtype=torch.float64)
        xs[:, 2] = theta_c
        xs[:, col] = torch.from_numpy(grid)
        us = torch.zeros(grid.size, 1, dtype=torch.float64)
        arrays[f"residual__{var}__x"] = grid
        arrays[f"residual__{var}__truth"] = (true_field(xs, us) - nominal(xs, us))[:, row].numpy()
        arrays[f"residual__{var}__train_range"] = np.array(
            [float(tr_states[:, col].min()), float(tr_states[:, col].max())]
        )
        for name in hybrids:
            field_ = models[name].field
            dtype = next(models[name].parameters()).dtype
            # what the hybrid learned beyond the nominal physics: identified constants plus residual
            r = field_(xs.to(dtype), us.to(dtype)) - nominal(xs.to(dtype), us.to(dtype))
            arrays[f"residual__{var}__{name}"] = r[:, row].double().numpy()
    meta = {
        "task": task.name,
        "seed": seed,
        "n_train": n,
        "dt": float(train.dt),
        "showcase": showcase,
        "models": list(models),
        "families": {m.name: m.build_name for m in cfg.models},
        "hybrids": hybrids,
        "theta_center": theta_c,
    }
    arrays["meta"] = np.array(json.dumps(meta))
    import io

    buf = io.BytesIO()
    # float32 is plenty for drawing and halves the file
    np.savez_compressed(buf, **{k: (v.astype(np.float32) if v.dtype == np.float64 else v) for k, v in arrays.items()})
    return _write_bytes(out / "figures" / _FIG_DATA, buf.getvalue())


def draw_figures(out: str | os.PathLike) -> list[Path]:
    """(Re)draw every figure of a study directory from its results.json and figures/figure_data.npz.

    Returns:
        the PNG files written to ``out/figures``.

    Raises:
        FileNotFoundError: if ``out`` holds no results.json (not a study directory).
    """
    import matplotlib.pyplot as plt  # any backend: figures are only saved, and closed after

    from . import plot

    out = Path(out)
    res_path = out / "results.json"
    if not res_path.is_file():
        raise FileNotFoundError(f"{out} holds no results.json: not a study directory (run `physwm compare` first)")
    res = _read_json(res_path)
    try:
        cfg = StudyConfig.from_dict(res["config"], validate=False)
        agg = _aggregated_rows(res)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{res_path} is not a physwm study result: {err}") from err
    fams = {m.name: m.build_name for m in cfg.models}
    figdir = out / "figures"
    files: list[Path] = []

    def save(fig, name, dpi=110):
        files.append(Path(plot.save(fig, figdir / name, dpi=dpi)))

    # error vs horizon: per task, the first in- and out-of-distribution split
    for t in cfg.tasks:
        shown = [s for s in (next((s for s in t.tests if s.distribution == d), None) for d in _DISTRIBUTIONS) if s]
        fig, axes = plt.subplots(1, len(shown), figsize=(5.5 * len(shown), 4.2), squeeze=False, layout="constrained")
        for ax, s in zip(axes.flat, shown):
            hs = s.horizons or cfg.horizons
            errors = {}
            for m in cfg.models:
                r = _lookup(agg, t.name, m.name, cfg.train_transitions, s.name)
                if r is not None:
                    errors[m.name] = (
                        hs,
                        [r.get(f"rmse@{h}", math.nan) for h in hs],
                        [r.get(f"rmse@{h}_std", math.nan) for h in hs],
                    )
            plot.error_vs_horizon(
                errors,
                families=fams,
                ax=ax,
                title=f"{t.name}: {s.name} ({'in' if s.distribution == 'in' else 'out of'} distribution)",
            )
        save(fig, f"error_vs_horizon_{t.name}.png")
    # data efficiency
    de = cfg.data_efficiency
    if de is not None:
        t = cfg.task(de.task)
        sizes = sorted(set(de.sizes))
        shown = [s for s in (next((s for s in t.tests if s.distribution == d), None) for d in _DISTRIBUTIONS) if s]
        fig, axes = plt.subplots(1, len(shown), figsize=(5.5 * len(shown), 4.2), squeeze=False, layout="constrained")
        for ax, s in zip(axes.flat, shown):
            k = f"rmse@{_report_horizon(cfg, s)}"
            curves = {}
            for m in de.models or [m.name for m in cfg.models]:
                rows = [_lookup(agg, t.name, m, n, s.name) or {} for n in sizes]
                curves[m] = (sizes, [r.get(k, math.nan) for r in rows], [r.get(k + "_std", math.nan) for r in rows])
            plot.data_efficiency(
                curves,
                families=fams,
                ax=ax,
                ylabel=f"{k.split('@')[1]}-step rollout RMSE (normalised)",
                title=f"{t.name}: {s.name}",
            )
        save(fig, "data_efficiency.png")
    # figures from the saved arrays
    fd_path = figdir / _FIG_DATA
    if fd_path.is_file():
        with np.load(fd_path, allow_pickle=False) as z:
            arr = {k: z[k] for k in z.files}
        meta = json.loads(str(arr["meta"]))
        fams = meta.get("families", fams)
        train = arr.get("train_states")
        for s in meta["showcase"]:
            truth = arr[f"rollout__{s}__truth"]
            preds = {m: arr[f"rollout__{s}__{m}"] for m in meta["models"] if f"rollout__{s}__{m}" in arr}
            fig = plot.phase_portrait(
                truth,
                preds,
                train=train,
                families=fams,
                title=f"{meta['task']}: {s}, {truth.shape[0] - 1}-step open-loop rollouts",
            )
            save(fig, f"phase_portrait_{s}.png")
            tt = np.arange(truth.shape[0]) * meta["dt"]
            epreds = {m: arr[f"energy__{s}__{m}"] for m in meta["models"] if f"energy__{s}__{m}" in arr}
            fig = plot.energy(tt, arr[f"energy__{s}__truth"], epreds, families=fams, title=f"{meta['task']}: {s}")
            save(fig, f"energy_{s}.png")
        learned = {m: arr[f"field__{m}"] for m in meta["models"] if f"field__{m}" in arr}
        fig = plot.vector_field(
            arr["field__grid_x"],
            arr["field__grid_y"],
            arr["field__truth"],
            learned,
            train=None if train is None else train[:, [2, 3]],
            families=fams,
            title=f"{meta['task']}: (θ, dθ/dt) slice at x = dx/dt = 0, u = 0",
        )
        save(fig, "vector_field.png", dpi=80)
        if meta["hybrids"]:
            labels = {
                "x_dot": (STATE_X_DOT, "cart acceleration correction (m/s²)"),
                "theta_dot": (STATE_THETA_DOT, "angular acceleration correction (rad/s²)"),
            }
            sweeps = []
            for var, (xl, yl) in labels.items():
                sweeps.append(
                    {
                        "x": arr[f"residual__{var}__x"],
                        "true": arr[f"residual__{var}__truth"],
                        "learned": {m: arr[f"residual__{var}__{m}"] for m in meta["hybrids"]},
                        "xlabel": xl,
                        "ylabel": yl,
                        "train_range": tuple(arr[f"residual__{var}__train_range"]),
                        "what": "learned correction",
                    }
                )
            fig = plot.residual(
                sweeps,
                families=fams,
                title=f"{meta['task']}: what the hybrid learned (constants + residual) vs what nominal physics misses",
            )
            save(fig, "residual.png")
    return files


STATE_X_DOT = "cart velocity dx/dt (m/s)"
STATE_THETA_DOT = "pole angular velocity dθ/dt (rad/s)"
