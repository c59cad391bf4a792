"""The options of :func:`~physwm.train.fit` as one dataclass: :class:`FitConfig`.

``fit(model, train, val, config=FitConfig(...))`` and ``fit(model, train, val, lr=..., ...)`` are the same
call: keyword arguments override the fields of ``config``. Without a config, ``fit`` starts from the
model's recipe (:meth:`FitConfig.for_model`, the family's entry of :data:`physwm.models.RECIPES`), so
``fit(model, data)`` trains every family the way it trains best; ``FitConfig()`` itself holds the plain
defaults (Adam at 1e-3, 100 epochs of 256-window batches).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from ..checks import check_choice, check_fields, finite_float, noise_levels, nonnegative_int, positive_int
from ..models.recipes import recipe_for

__all__ = ["FitConfig", "LR_SCHEDULES", "OPTIMIZERS", "ON_DIVERGENCE", "check_obs_noise"]

LR_SCHEDULES = (None, "cosine", "plateau")
OPTIMIZERS = ("adam", "lbfgs")
ON_DIVERGENCE = ("warn", "raise")


def check_obs_noise(value: Any) -> None:
    """``FitConfig.obs_noise``: ``None``, ``"estimate"`` or finite levels ``>= 0`` (their length is checked by
    ``fit``, which knows the state's size).

    Raises:
        ValueError: naming ``obs_noise``.
    """
    if value is None or value == "estimate":
        return
    if isinstance(value, str):
        raise ValueError(f"obs_noise must be None, 'estimate' or standard deviations, got {value!r}")
    arr = np.asarray(value, dtype=object)
    noise_levels(value, "obs_noise", 1 if arr.ndim == 0 else len(arr))


@dataclass(frozen=True)
class FitConfig:
    """How :func:`~physwm.train.fit` trains a model.

    Attributes:
        horizon: steps per training window: 1 is the one-step loss, more the multi-step rollout loss.
        epochs: number of passes over the training windows (the total, including resumed epochs); with
            ``steps`` set, the largest number of epochs allowed.
        batch_size: windows per minibatch (the last one of an epoch may be smaller); with ``steps`` set, the
            largest batch.
        steps: ``None``, or a budget of about this many gradient steps whatever the data size: the batch is
            ``min(batch_size, ceil(windows / min_batches))`` windows (small data sets get smaller batches,
            at least ``min_batches`` steps per epoch) and the epochs ``clip(ceil(steps / batches per epoch),
            1, epochs)``.
        min_batches: see ``steps``.
        lr: learning rate (Adam; L-BFGS: take 1).
        constants_lr: learning rate of the parameters of :class:`~physwm.systems.System` modules (the
            physical constants an explicit model or a hybrid's physics identifies), a parameter group of its
            own; ``None``: the same as ``lr``. The other parameters (networks) keep ``lr``; a learning-rate
            schedule scales both. Not with ``optimizer="lbfgs"``.
        weight_decay: decoupled (AdamW) weight decay; 0 is plain Adam.
        grad_clip: clip the global gradient norm to this value (``None``: no clipping).
        lr_schedule: ``None``, ``"cosine"`` (cosine annealing to 0 over the epochs) or ``"plateau"`` (halve
            the rate after ``max(1, early_stopping // 2)``, or 5, epochs without improvement of the
            monitored value).
        early_stopping: patience in epochs: stop when the monitored value (the validation error, or the
            training loss without validation data) has not improved (by more than ``min_delta``, relative)
            for that many epochs: training has converged. ``None``: no early stopping.
        min_delta: smallest relative decrease of the monitored value that counts as an improvement (0.01: 1%).
        val_horizon: open-loop steps of the validation rollout error.
        val_max_windows: evaluate at most this many validation windows (evenly spaced; ``None``: all).
        normalize: call ``model.fit_normalization`` on the training data first (not when resuming).
        restore_best: load the weights of the best epoch at the end (monitored value: the validation
            error, or the training loss without validation data).
        keep_initial: at the end, compare the trained model with the untrained one (its initial weights
            with the data's normalisation) by the open-loop validation RMSE over ``select_horizon`` steps
            (or the longest validation episode), and keep the better. For a hybrid or explicit model the
            untrained model is the nominal physics, so a residual fitted to too few data can never make the
            model worse than its physics on validation data. Needs validation data.
        select_horizon: see ``keep_initial``.
        seed: seeds the window shuffling and, inside ``fit`` only (the caller's global RNG state is
            restored afterwards), torch's global RNG used by stochastic models.
        max_time: stop after the first epoch that ends more than this many seconds into the run.
        on_divergence: ``"warn"`` (warn, flag the history and return) or ``"raise"`` (raise
            ``TrainingDiverged``) when a loss, gradient, weight or validation error becomes NaN/inf. Either
            way the best weights are restored and checkpointed first.
        optimizer: ``"adam"`` (minibatch AdamW) or ``"lbfgs"``: full-batch L-BFGS with a strong-Wolfe line
            search, 20 iterations per epoch, ``batch_size`` ignored (take ``lr=1``). For models with few
            parameters (system identification, a hybrid's polish) it converges to the optimum to round-off
            where Adam's minibatch noise stalls; no weight decay.
        prefit_steps: before training, at most this many Gauss-Newton (Levenberg-Marquardt) steps on the
            physical constants alone (:func:`~physwm.train.gauss_newton_constants`; the networks frozen: a
            hybrid's residual starts at zero, so this fits its physics to the data first), kept only if they
            lower the monitored value; the result counts as epoch 0 (the best epoch until an epoch beats
            it). 0: none.
        polish_steps: after training, at most this many Gauss-Newton steps on the physical constants alone
            (the networks frozen), kept only if they lower the monitored value (``History.polish``); 0: no
            polish. Adam's minibatch noise leaves constants a little off; the loss in a handful of
            constants is a smooth least-squares problem, which a second-order method finishes in a step or
            two.
        explained_loss: with ``prefit_steps``, skip training when the constants fitted first already explain
            the training data: their full-batch training loss (units of the one-step change's variance) is at
            most this (``History.stop_reason == "explained"``, no epoch, no polish). ``None``: always train.
        diagnose: after training a model with learnable physical constants, measure how well the
            training data pin them down (:func:`physwm.evaluate.identifiability`: the Gauss-Newton
            Hessian of the loss in the constants, its condition number, intervals, the pairs that trade
            off), store it in ``History.identifiability`` and warn (:class:`~physwm.evaluate.
            UnidentifiableWarning`) naming any constant the data cannot pin down.
        obs_noise: observation noise in the training data: ``None`` (default) reads the noise the
            data records (noisy :func:`~physwm.data.collect` output) and means exact data when it records
            none; ``"estimate"`` estimates it from the data; or standard deviations (a scalar or one per
            state, physical units; zeros: exact data). With noise, the physical constants are fitted by
            multiple shooting (:func:`~physwm.train.shooting_constants`: segments of ``shooting_horizon``
            transitions with initial states of their own and a continuity penalty, residuals weighted by
            the noise) instead of the one-step Gauss-Newton prefit, and nothing moves them afterwards: Adam
            leaves them alone (the networks of a hybrid train as configured, the constants held) and there is
            no polish (a residual trained on noisy data carries the one-step loss's bias, which a polish hands
            to the constants: the hybrid's largest error went from 1.6% to 4.0% at 1% noise with it,
            ``bench/noise.py``). On CartPole with friction at 1% noise this identifies every constant within 3%
            where the one-step loss is 4-12% off.
        shooting_horizon: transitions per segment of that fit (20: 0.4 s of CartPole; 10 and 40 gave the
            same constants to 1%).

    ``fit(model, data)`` without a config trains with the model's recipe, :meth:`for_model`.
    """

    horizon: int = 1
    epochs: int = 100
    batch_size: int = 256
    steps: int | None = None
    min_batches: int = 4
    lr: float = 1e-3
    constants_lr: float | None = None
    weight_decay: float = 0.0
    grad_clip: float | None = None
    lr_schedule: str | None = None
    early_stopping: int | None = None
    min_delta: float = 0.0
    val_horizon: int = 10
    val_max_windows: int | None = None
    normalize: bool = True
    restore_best: bool = True
    keep_initial: bool = False
    select_horizon: int = 50
    seed: int = 0
    max_time: float | None = None
    on_divergence: str = "warn"
    optimizer: str = "adam"
    prefit_steps: int = 0
    polish_steps: int = 0
    explained_loss: float | None = None
    diagnose: bool = True
    obs_noise: str | float | tuple[float, ...] | None = None
    shooting_horizon: int = 20

    def __post_init__(self) -> None:
        check_obs_noise(self.obs_noise)
        positive_int(self.shooting_horizon, "shooting_horizon")
        for name in ("horizon", "epochs", "batch_size", "min_batches", "val_horizon", "select_horizon"):
            positive_int(getattr(self, name), name)
        for name in ("steps", "early_stopping", "val_max_windows"):
            if getattr(self, name) is not None:
                positive_int(getattr(self, name), name)
        finite_float(self.lr, "lr", positive=True)
        finite_float(self.constants_lr, "constants_lr", positive=True, allow_none=True)
        finite_float(self.weight_decay, "weight_decay", nonnegative=True)
        finite_float(self.min_delta, "min_delta", nonnegative=True)
        finite_float(self.grad_clip, "grad_clip", positive=True, allow_none=True)
        finite_float(self.max_time, "max_time", positive=True, allow_none=True)
        finite_float(self.explained_loss, "explained_loss", nonnegative=True, allow_none=True)
        nonnegative_int(self.prefit_steps, "prefit_steps")
        nonnegative_int(self.polish_steps, "polish_steps")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")
        for name in ("normalize", "restore_best", "keep_initial", "diagnose"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        check_choice(self.lr_schedule, "lr_schedule", LR_SCHEDULES)
        check_choice(self.optimizer, "optimizer", OPTIMIZERS)
        check_choice(self.on_divergence, "on_divergence", ON_DIVERGENCE)
        if self.optimizer == "lbfgs" and self.weight_decay:
            raise ValueError("weight_decay is not supported with optimizer='lbfgs'")
        if self.optimizer == "lbfgs" and self.constants_lr is not None:
            raise ValueError("constants_lr is not supported with optimizer='lbfgs' (one learning rate for all)")

    @classmethod
    def for_model(cls, model: nn.Module, **options: Any) -> FitConfig:
        """The model's recipe (:func:`physwm.models.recipe_for`) with ``options`` (FitConfig fields) on top.

        An explicit ``epochs`` or ``batch_size`` without ``steps`` means exactly that many epochs (at most)
        and windows per batch: the recipe's step budget, which would derive both from the data size, is
        dropped. ``optimizer="lbfgs"`` without ``constants_lr`` drops the recipe's (L-BFGS has one rate).
        """
        base = cls.from_dict(recipe_for(model), "recipe")
        if {"epochs", "batch_size"} & set(options) and "steps" not in options:
            base = base.replace(steps=None)
        if options.get("optimizer") == "lbfgs" and "constants_lr" not in options:
            base = base.replace(constants_lr=None)
        return base.replace(**options)

    def replace(self, **changes: Any) -> FitConfig:
        """A copy with some fields changed (checked again); an unknown field is an error naming the valid ones."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise TypeError(f"unknown fit options {unknown}; valid: {[f.name for f in dataclasses.fields(self)]}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (JSON-able)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "fit") -> FitConfig:
        """Inverse of :meth:`to_dict`; an unknown key is a ValueError naming ``where`` and the valid keys."""
        d = check_fields(d, cls, where)
        try:
            return cls(**d)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from err

    def schedule(self, windows: int) -> tuple[int, int]:
        """``(batch_size, epochs)`` for a training set of ``windows`` windows (see ``steps``)."""
        if windows < 1:
            raise ValueError(f"no training window of {self.horizon} steps in the training data")
        if self.steps is None:
            return self.batch_size, self.epochs
        batch = max(1, min(self.batch_size, math.ceil(windows / self.min_batches)))
        batches = math.ceil(windows / batch)
        return batch, int(min(max(1, math.ceil(self.steps / batches)), self.epochs))
