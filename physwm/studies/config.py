"""Study configuration: dataclasses that load from and save to JSON, checked before any work starts.

A study (:class:`StudyConfig`) is a list of tasks (:class:`TaskConfig`: a true system, its training
distribution and test splits, :class:`SplitConfig`), a list of models (:class:`ModelConfig`), seeds, a
training-set size, an optional data-efficiency sweep and the headline comparison. The default study is
data, not code: ``default.json`` and ``quick.json`` beside this module (:func:`default_config`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..checks import check_fields, nonnegative_int, positive_int
from ..data import POLICIES
from ..files import atomic_write_text, read_json
from ..integrators import INTEGRATOR_NAMES
from ..models import IMPLICIT_FAMILIES, MODEL_NAMES, ODE_FAMILIES, build, recipe
from ..systems import DEFAULT_SYSTEM, SYSTEMS, Parameters, System, get_system
from ..train import FitConfig
from .adaptation import check_adapt

__all__ = [
    "SplitConfig",
    "TaskConfig",
    "ModelConfig",
    "DataEfficiencyConfig",
    "HeadlineConfig",
    "StudyConfig",
    "STUDY_FIT",
    "FAMILY_FIT_FIELDS",
    "DISCOVER_OPTIONS",
    "default_config",
    "build_options",
    "IMPLICIT_FAMILIES",
]

_DISTRIBUTIONS = ("in", "out")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

#: How a study trains every model unless its config says otherwise: about 1,000 Adam steps whatever the
#: data size (at most 200 epochs, batches of up to 256 windows, at least 4 per epoch), lr 3e-3 annealed by a
#: cosine, gradients clipped at 10, the epoch with the lowest 10-step validation error kept, and the
#: untrained model (for physics-based models: the nominal physics) kept if it validates better.
STUDY_FIT = FitConfig(
    steps=1000, epochs=200, batch_size=256, min_batches=4, lr=3e-3, lr_schedule="cosine", grad_clip=10.0,
    val_max_windows=128, keep_initial=True, select_horizon=50,
)  # fmt: skip

#: The fields of a model family's recipe (:data:`physwm.models.RECIPES`) that say how that family trains:
#: a study takes them from the recipe (its own ``fit`` sets the budget and the validation protocol shared by
#: every model), unless the study's ``fit`` changes them from :data:`STUDY_FIT` or the model's ``fit`` sets them.
FAMILY_FIT_FIELDS = ("lr", "constants_lr", "prefit_steps", "polish_steps", "explained_loss")

#: The :func:`physwm.discover` options a model's ``discover`` may set (the study gives the model, its
#: training data and the run's seed).
DISCOVER_OPTIONS = ("threshold", "target", "space", "val_fraction", "tolerance", "bootstrap_samples",
                    "horizon", "refit_epochs", "max_windows", "max_residual_left")  # fmt: skip


def _check_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"{where} name must be a non-empty string of letters, digits, '_', '-', '.', got {name!r}")
    return name


@dataclass
class SplitConfig:
    """One data set: an environment, a policy and a distribution of start states.

    Attributes:
        name: identifier (used in file names and tables).
        distribution: ``"in"`` (the training distribution) or ``"out"`` (an extrapolation split).
        env: gymnasium id of the task's system: its physwm environment (any constants, continuous control;
            default) or the gymnasium environment it reproduces (e.g. ``"CartPole-v1"``).
        params: overrides of the task's true constants for this split (fields of the system's Params), e.g.
            ``{"masspole": 0.2}`` (physwm env only).
        env_options: other ``gymnasium.make`` keywords (``terminate``, ``integrator``, ``substeps``).
        policy: data-collection policy name (``random``, ``uniform``, ``lqr``), see :func:`physwm.data.make_policy`.
        policy_options: its keyword arguments (e.g. ``{"force_mag": 5.0}``).
        episodes: number of episodes.
        max_steps: transitions per episode (fewer if the environment terminates).
        start_low, start_high: box of uniformly random start states ``[x, x_dot, theta, theta_dot]``
            (``None``: the environment's own reset).
        start_radius: instead of a box, ``[low, high]``: start states at a distance ``U[low, high)`` from zero
            in a random direction (APHYNITY's initial conditions; see :func:`physwm.envs.radius_start`).
        seed: seed of the collection.
        horizons: rollout horizons (steps) evaluated on this split (``None``: the study's).
        description: one line for the report.
        adapt: test splits only: also score each comparison run's model after :func:`physwm.adapt` to K
            transitions of this split's system, for each K listed (e.g. ``[30]``; see
            :mod:`physwm.studies.adaptation`); ``None``: not adapted.
    """

    name: str
    distribution: str = "out"
    env: str | None = None
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
    start_radius: list[float] | None = None
    adapt: list[int] | None = None

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "split") -> SplitConfig:
        return cls(**check_fields(d, cls, where))

    def env_id(self, system: type[System]) -> str:
        """The gymnasium id this split collects from (default: the system's physwm environment)."""
        return self.env or system.env_id

    def validate(self, where: str, system: type[System] = DEFAULT_SYSTEM) -> None:
        _check_name(self.name, where)
        if self.distribution not in _DISTRIBUTIONS:
            raise ValueError(f"{where}: distribution must be one of {list(_DISTRIBUTIONS)}, got {self.distribution!r}")
        ids = [i for i in (system.env_id, system.reference_env_id) if i is not None]
        env = self.env_id(system)
        if env not in ids:
            raise ValueError(f"{where}: env must be one of {ids} (the {system.name} environments), got {env!r}")
        if env != system.env_id and (self.params or self.env_options):
            raise ValueError(f"{where}: gymnasium's {env} takes no params/env_options; use {system.env_id}")
        if self.policy not in POLICIES:
            raise ValueError(f"{where}: unknown policy {self.policy!r}; valid: {sorted(POLICIES)}")
        valid_params = list(system.Params().to_dict())
        unknown = sorted(set(self.params) - set(valid_params))
        if unknown:
            raise ValueError(f"{where}: unknown params {unknown}; valid: {valid_params}")
        bad_env = sorted(set(self.env_options) - {"terminate", "integrator", "substeps"})
        if bad_env:
            raise ValueError(f"{where}: unknown env_options {bad_env}; valid: ['integrator', 'substeps', 'terminate']")
        positive_int(self.episodes, f"{where}: episodes")
        positive_int(self.max_steps, f"{where}: max_steps")
        nonnegative_int(self.seed, f"{where}: seed")
        if (self.start_low is None) != (self.start_high is None):
            raise ValueError(f"{where}: give both start_low and start_high, or neither")
        if self.start_radius is not None:
            if self.start_low is not None:
                raise ValueError(f"{where}: give start_low/start_high or start_radius, not both")
            r = self.start_radius
            if not (isinstance(r, (list, tuple)) and len(r) == 2 and all(isinstance(v, (int, float)) for v in r)
                    and 0 <= r[0] <= r[1]):
                raise ValueError(f"{where}: start_radius must be [low, high] with 0 <= low <= high, got {r!r}")
        if self.horizons is not None:
            hs = _check_horizons(self.horizons, f"{where}: horizons")
            if max(hs) > self.max_steps:
                raise ValueError(
                    f"{where}: horizons {hs} exceed max_steps {self.max_steps}: the split would have no window "
                    "of data to evaluate; lower the horizons or collect longer episodes"
                )
        if self.adapt is not None:
            check_adapt(self.adapt, where, system)


def _check_horizons(hs: Any, where: str) -> list[int]:
    if not isinstance(hs, (list, tuple)) or not hs:
        raise ValueError(f"{where} must be a non-empty list of positive ints, got {hs!r}")
    return [positive_int(h, where) for h in hs]


@dataclass
class TaskConfig:
    """A true system, its training distribution and its test splits.

    Attributes:
        name: identifier.
        system: the system's name (a key of :data:`physwm.systems.SYSTEMS`; default ``"cartpole"``).
        params: the true system's constants (overrides of the system's ``Params()``, e.g. friction).
        nominal: the constants the physics-based models (explicit, hybrid) start from (overrides of
            ``Params()``; default: the system's defaults, for CartPole gymnasium CartPole-v1's, without
            friction).
        integrator: integrator of the ODE-based models (``"euler"`` matches gymnasium's CartPole-v1).
        train: the training distribution; its episodes form the pool from which the first ``n``
            transitions are taken.
        val: validation data (early model selection); default: ``train`` with a fifth of its episodes and
            seed ``train.seed + 1``.
        tests: test splits (``distribution`` "in" or "out").
        description: one line for the report.
        lyapunov: estimate the true system's largest Lyapunov exponent ``lambda`` (1/s) along each test split
            when it is collected (stored in its data's meta) and report valid prediction times in Lyapunov
            times, ``vpt_lyapunov = lambda * vpt_s`` (for chaotic systems).
        models: names of the study's models run on this task (``None``: all of them).
    """

    name: str
    train: SplitConfig
    tests: list[SplitConfig]
    system: str = DEFAULT_SYSTEM.name
    params: dict = field(default_factory=dict)
    nominal: dict = field(default_factory=dict)
    integrator: str = "rk4"
    val: SplitConfig | None = None
    description: str = ""
    lyapunov: bool = False
    models: list[str] | None = None

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "task") -> TaskConfig:
        d = check_fields(d, cls, where)
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

    @property
    def system_class(self) -> type[System]:
        """The :class:`~physwm.systems.System` class of the task."""
        return get_system(self.system)

    def true_params(self, split: SplitConfig | None = None) -> Parameters:
        """The true constants of the task (with a split's overrides)."""
        cls = self.system_class
        base = cls.Params().to_dict()
        base.update(self.params)
        if split is not None:
            base.update(split.params)
        return cls.Params.from_dict(base)

    def to_dict(self) -> dict:
        """Plain JSON-able dict (``TaskConfig.from_dict`` rebuilds it)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def model_system(self) -> dict:
        """The nominal system as ``build`` takes it: ``{"name": system, "params": nominal constants}``."""
        return {"name": self.system, "params": self.nominal_params().to_dict()}

    def nominal_params(self) -> Parameters:
        """The constants the physics-based models start from."""
        cls = self.system_class
        base = cls.Params().to_dict()
        base.update(self.nominal)
        return cls.Params.from_dict(base)

    def validate(self, where: str) -> None:
        _check_name(self.name, where)
        if self.system not in SYSTEMS:
            raise ValueError(f"{where}: unknown system {self.system!r}; valid: {sorted(SYSTEMS)}")
        if self.integrator not in INTEGRATOR_NAMES:
            raise ValueError(f"{where}: unknown integrator {self.integrator!r}; valid: {list(INTEGRATOR_NAMES)}")
        try:
            self.true_params()
            self.nominal_params()
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: {err}") from err
        if self.train.adapt is not None or (self.val is not None and self.val.adapt is not None):
            raise ValueError(f"{where}: adapt is for test splits only, not train or val")
        if self.train.distribution != "in":
            raise ValueError(f"{where}.train: the training split's distribution must be 'in'")
        self.train.validate(f"{where}.train", self.system_class)
        self.val_split().validate(f"{where}.val", self.system_class)
        if not self.tests:
            raise ValueError(f"{where}: tests must hold at least one split")
        names = [s.name for s in self.tests]
        dup = sorted({n for n in names if names.count(n) > 1} | ({"train", "val"} & set(names)))
        if dup:
            raise ValueError(f"{where}: test split names must be unique and not 'train'/'val', got {dup}")
        for i, s in enumerate(self.tests):
            s.validate(f"{where}.tests[{i}] ({s.name})", self.system_class)
            try:
                self.true_params(s)
            except (TypeError, ValueError) as err:
                raise ValueError(f"{where}.tests[{i}] ({s.name}): {err}") from err


@dataclass
class ModelConfig:
    """A model in the study.

    Attributes:
        name: label in tables and figures (unique).
        family: :func:`physwm.models.build` name (default: ``name``): explicit, node, hybrid, mlp, vae,
            gru, transformer, ensemble, gaussian_mlp.
        options: build options (``system``, ``dt`` and ``seed`` are set by the study; ODE families get the
            task's ``integrator`` unless given here).
        fit: overrides of :class:`~physwm.train.FitConfig` fields for this model (e.g. ``{"lr": 0.03}``); the
            family's recipe already sets its learning rates (see :data:`FAMILY_FIT_FIELDS`).
        discover: ``None``, or keyword arguments of :func:`physwm.discover`: the model (an explicit or hybrid
            ODE model) is replaced by what ``discover(model, train, seed=seed, **discover)`` returns (a symbolic
            hybrid, or the model kept), and its equations are stored with the run; plus ``"start"``:
            ``"fitted"`` (default: discover after ``fit``, from the identified constants) or ``"built"``
            (from the model as built, its nominal physics, without ``fit``: discover's joint refit of the
            terms and constants is then its only training).
    """

    name: str
    family: str | None = None
    options: dict = field(default_factory=dict)
    fit: dict = field(default_factory=dict)
    discover: dict | None = None

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "model") -> ModelConfig:
        if isinstance(d, str):
            return cls(name=d)
        return cls(**check_fields(d, cls, where))

    @property
    def build_name(self) -> str:
        return self.family or self.name

    def validate(self, where: str) -> None:
        _check_name(self.name, where)
        if self.build_name not in MODEL_NAMES:
            raise ValueError(f"{where}: unknown model {self.build_name!r}; valid: {list(MODEL_NAMES)}")
        bad = sorted({"system", "dt", "seed"} & set(self.options))
        if bad:
            raise ValueError(f"{where}: options {bad} are set by the study; remove them")
        if not isinstance(self.fit, Mapping):
            raise ValueError(f"{where}.fit must be a dict of FitConfig fields")
        check_fields(self.fit, FitConfig, f"{where}.fit")
        try:
            STUDY_FIT.replace(**self.fit)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}.fit: {err}") from err
        if self.discover is not None:
            if self.build_name not in ("explicit", "hybrid") or not isinstance(self.discover, Mapping):
                raise ValueError(f"{where}.discover: a dict of physwm.discover options, for explicit or hybrid models")
            bad = sorted(set(self.discover) - set(DISCOVER_OPTIONS) - {"start"})
            if bad:
                raise ValueError(f"{where}.discover: unknown options {bad}; valid: {sorted(DISCOVER_OPTIONS)}, start")
            if self.discover.get("start", "fitted") not in ("fitted", "built"):
                raise ValueError(f"{where}.discover.start must be 'fitted' or 'built', got {self.discover['start']!r}")


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
        return cls(**check_fields(d, cls, where))


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
        return cls(**check_fields(d, cls, where))


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
        fit: how every model is trained (a :class:`~physwm.train.FitConfig`, default :data:`STUDY_FIT`);
            models may override fields.
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
    fit: FitConfig = STUDY_FIT
    workers: int = 1
    threads: int = 1
    figures: bool = True

    # -- (de)serialisation -----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping, validate: bool = True) -> StudyConfig:
        """Build (and validate) from a plain dict; unknown fields are errors naming the valid ones."""
        d = check_fields(d, cls, "study config")
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
            d["fit"] = FitConfig.from_dict({**STUDY_FIT.to_dict(), **(d["fit"] or {})}, "fit")
        cfg = cls(**d)
        return cfg.validate() if validate else cfg

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> StudyConfig:
        """Load from a JSON file (errors name the file and the problem)."""
        path = Path(path)
        d = read_json(path, "study config file")
        try:
            return cls.from_dict(d)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err

    def to_dict(self) -> dict:
        """Plain JSON-able dict (``from_dict(to_dict())`` gives an equal config)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def to_json(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write as JSON, atomically."""
        return atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=1) + "\n", overwrite=overwrite)

    # -- checks ----------------------------------------------------------------------------------------
    def validate(self) -> StudyConfig:
        """Check everything that can be checked before collecting data; ValueError naming the problem."""
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
            nonnegative_int(s, "seeds")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {self.seeds}")
        positive_int(self.train_transitions, "train_transitions")
        _check_horizons(self.horizons, "horizons")
        positive_int(self.max_windows, "max_windows")
        positive_int(self.workers, "workers")
        positive_int(self.threads, "threads")
        if not (isinstance(self.vpt_threshold, (int, float)) and self.vpt_threshold > 0):
            raise ValueError(f"vpt_threshold must be a positive number, got {self.vpt_threshold!r}")
        if not isinstance(self.fit, FitConfig):
            raise ValueError(f"fit must be a FitConfig, got {type(self.fit).__name__}")
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
                positive_int(n, "data_efficiency.sizes")
            unknown = sorted(set(de.models or []) - set(mnames))
            if unknown:
                raise ValueError(f"data_efficiency.models {unknown} are not models of the study; valid: {mnames}")
            for s in de.seeds or []:
                nonnegative_int(s, "data_efficiency.seeds")
        h = self.headline
        if h.task is not None and h.task not in tnames:
            raise ValueError(f"headline.task {h.task!r} is not a task; valid: {tnames}")
        unknown = sorted(set(h.implicit or []) - set(mnames))
        if unknown:
            raise ValueError(f"headline.implicit {unknown} are not models of the study; valid: {mnames}")
        positive_int(h.horizon, "headline.horizon")
        for t in (t for t in self.tasks if t.models is not None):
            if not isinstance(t.models, list) or not t.models:
                raise ValueError(f"task {t.name!r}: models must be a non-empty list of model names (or null: all)")
            unknown = sorted(set(t.models) - set(mnames))
            if unknown:
                raise ValueError(f"task {t.name!r}: models {unknown} are not models of the study; valid: {mnames}")
        # Build every model once: unknown options fail now, not after the data are collected.
        for t in self.tasks:
            for m in self.task_models(t):
                try:
                    build(m.build_name, t.model_system(), **build_options(m, t, seed=0))
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

    def task_models(self, task: TaskConfig) -> list[ModelConfig]:
        """The models run on ``task`` (its ``models``, in the study's order; all if ``None``)."""
        return [m for m in self.models if task.models is None or m.name in task.models]

    def fit_for(self, model: ModelConfig) -> FitConfig:
        """The study's FitConfig with the family's recipe (its :data:`FAMILY_FIT_FIELDS` the study's ``fit``
        leaves at :data:`STUDY_FIT`'s values) and the model's overrides on top."""
        family = {k: v for k, v in recipe(model.build_name).items()
                  if k in FAMILY_FIT_FIELDS and getattr(self.fit, k) == getattr(STUDY_FIT, k)}  # fmt: skip
        return self.fit.replace(**{**family, **model.fit})

    def headline_task(self) -> str:
        return self.headline.task or self.tasks[-1].name


def build_options(m: ModelConfig, task: TaskConfig, seed: int) -> dict:
    """The ``build`` options of a study's model on a task: its own, the task's integrator for ODE families
    (and ODE members of an ensemble), and the run's seed."""
    opts = dict(m.options)
    if m.build_name in ODE_FAMILIES:
        opts.setdefault("integrator", task.integrator)
    if m.build_name == "ensemble":
        member = opts.get("member", "gaussian_mlp")
        if member in ODE_FAMILIES:
            mo = dict(opts.get("member_options", {}))
            mo.setdefault("integrator", task.integrator)
            opts["member_options"] = mo
    opts["seed"] = int(seed)
    return opts


def default_config(quick: bool = False, systems: bool = False) -> StudyConfig:
    """The default study: gymnasium's CartPole-v1 and a CartPole with friction; explicit, Neural ODE,
    hybrid, MLP and VAE models, and GAN and physics-informed MLP rows (300 training steps, outside the
    data-efficiency sweep); extrapolation splits; data efficiency on the friction task.

    It is stored as data, ``physwm/studies/default.json`` (``quick.json``: a small version, one seed,
    smaller data and budgets, that runs in well under a minute); see their ``description`` fields.

    Tasks:

    * ``cartpole``: gymnasium ``CartPole-v1`` (Euler, no friction) under its random policy, episodes ending
      at 12 degrees / 2.4 m. Extrapolation: full swings (``terminate=False``, any angle, up to 6 rad/s),
      a heavier and a longer pole, stronger forces (physwm's environment with ``integrator="euler"``, so
      the same discrete-time system).
    * ``friction``: physwm's CartPole with cart friction (viscous and Coulomb) and pole damping
      (the ``friction`` variant), RK4 with 2 ms sub-steps, the pole hanging and swinging up to about 60
      degrees from the bottom under uniform random forces of at most 5 N. The physics-based models start
      from the frictionless CartPole-v1 equations and identify the constants (friction included); the
      hybrid's residual learns what they still miss. Extrapolation: full swings over the top (any angle, up
      to 6 rad/s), forces up to 15 N, a heavier pole, a longer pole, three times the friction, and
      500-step horizons; the three changed systems are also scored after every model adapts to 30 of their
      transitions (``adapt``, see :mod:`physwm.studies.adaptation`).
    * ``drag``: the friction task's truth plus aerodynamic drag (the ``drag`` variant, effects of another form
      than the friction family, through the equations of motion); rows ``explicit``, ``hybrid``, ``mlp`` and
      ``hybrid_symbolic`` (discovered from the nominal physics). Extrapolation: full swings, forces up to
      15 N, and both (faster than any training velocity).

    ``systems=True``: the study of the other built-in systems instead (``systems.json``, quick:
    ``systems_quick.json``), kept apart so the default study keeps its time budget:

    * ``pendulum``: APHYNITY's damped pendulum (Yin et al. 2021) on their protocol: T0 = 6 s, alpha = 0.2,
      25 training and 25 test trajectories of 40 states every 0.5 s from starts at radius U[1.3, 2.3); the
      physics-based models start from the frictionless pendulum with a wrong frequency. Extrapolation: more
      energetic starts (radius U[2.3, 2.8)) and 80-state trajectories.
    * ``acrobot``: gymnasium's Acrobot with joint damping under random torques from any angle: chaotic;
      valid prediction times are also reported in Lyapunov times.
    """
    if systems:
        name = "systems_quick.json" if quick else "systems.json"
    else:
        name = "quick.json" if quick else "default.json"
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    return StudyConfig.from_dict(json.loads(text))
