"""Training: :func:`fit` any WorldModel to trajectories, with checkpoints that resume exactly.

``fit`` and the models meet at one method, ``model.loss(batch) -> (scalar, metrics)``, where a batch is
``{"states": [B, H+1, n], "controls": [B, H, m]}`` in physical units: ``H = 1`` windows give the
one-step loss, ``H > 1`` windows the multi-step (shooting) loss of an open-loop rollout. ``fit`` cuts the
training episodes into all windows of ``horizon`` steps, shuffles them with a seeded generator, and runs
Adam on minibatches; it measures the validation **rollout** error (RMSE in normalised state units over
``val_horizon`` open-loop steps from every validation window) after each epoch, keeps the best weights,
and restores them at the end.

Checkpoints (:func:`save_checkpoint`, :func:`load_checkpoint`) are ``torch.save`` files holding only plain
data (loaded with ``weights_only=True``): a format tag and version, the physwm version, the model class,
its ``build_spec`` / ``config()``, the weights (normalisation statistics are buffers, so they are part of
them), and, for checkpoints written by ``fit``, everything needed to resume: optimizer, scheduler, RNG
states, epoch, history and best weights. ``fit(..., checkpoint=path, resume=True)`` after an interruption
ends with the same weights, bit for bit on CPU, as a run that was never interrupted.

Divergence: when a loss, gradient, parameter or validation error becomes NaN/inf, ``fit`` stops, restores
the best weights seen so far (or the weights it started from), writes them to the checkpoint, sets
``history.diverged`` and ``history.stop_reason = "diverged"``, and then, by default
(``on_divergence="warn"``), emits a :class:`TrainingDivergedWarning` and returns the history; with
``on_divergence="raise"`` it raises :class:`TrainingDiverged` (which carries the history) instead.
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import json
import math
import numbers
import os
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._io import atomic_write

__all__ = [
    "fit",
    "History",
    "TrainingDiverged",
    "TrainingDivergedWarning",
    "save_checkpoint",
    "load_checkpoint",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "LR_SCHEDULES",
    "OPTIMIZERS",
]

CHECKPOINT_FORMAT = "physwm-checkpoint"
CHECKPOINT_VERSION = 1
LR_SCHEDULES = (None, "cosine", "plateau")
OPTIMIZERS = ("adam", "lbfgs")
_ON_DIVERGENCE = ("warn", "raise")
# fit() arguments that must be the same when a run is resumed (others, e.g. epochs or max_time, may change).
_RESUME_KEYS = (
    "horizon",
    "batch_size",
    "lr",
    "weight_decay",
    "grad_clip",
    "lr_schedule",
    "early_stopping",
    "min_delta",
    "val_horizon",
    "val_max_windows",
    "normalize",
    "seed",
    "validation",
    "optimizer",
)
_EVAL_CHUNK = 4096


class TrainingDiverged(RuntimeError):
    """Raised by ``fit(..., on_divergence="raise")`` when training hits NaN/inf; ``.history`` has the run."""

    def __init__(self, message: str, history: History):
        super().__init__(message)
        self.history = history


class TrainingDivergedWarning(RuntimeWarning):
    """Warned by ``fit`` (default ``on_divergence="warn"``) when training hits NaN/inf and stops."""


# --------------------------------------------------------------------------------------------------------
# history
# --------------------------------------------------------------------------------------------------------
@dataclass
class History:
    """What :func:`fit` did, one entry per epoch.

    Attributes:
        epoch: epoch numbers, starting at 1.
        train_loss: mean training loss of each epoch (``nan`` for the epoch that diverged).
        val_error: validation rollout RMSE in normalised state units after each epoch (``None`` without
            validation data).
        lr: learning rate used during each epoch.
        time: seconds of training since the run started (summed over resumed sessions) at each epoch's end.
        metrics: per-epoch means of the metrics ``model.loss`` reports, by name.
        monitor: what selects the best epoch and drives early stopping / the plateau schedule:
            ``"val_error"`` with validation data, else ``"train_loss"``.
        best_epoch: epoch of the lowest monitored value (``None`` if no epoch finished).
        best_value: that value.
        stop_reason: ``"epochs"``, ``"early_stopping"``, ``"max_time"``, ``"callback"`` or ``"diverged"``.
        diverged: True if training stopped on NaN/inf.
        message: human-readable note on how the run ended.
    """

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_error: list[float | None] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    time: list[float] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    monitor: str = "val_error"
    best_epoch: int | None = None
    best_value: float | None = None
    stop_reason: str = ""
    diverged: bool = False
    message: str = ""

    @property
    def stopped_early(self) -> bool:
        """True if early stopping ended the run."""
        return self.stop_reason == "early_stopping"

    @property
    def best_val_error(self) -> float | None:
        """Validation error of the best epoch (``None`` without validation data)."""
        if self.best_epoch is None or self.monitor != "val_error":
            return None
        return self.val_error[self.epoch.index(self.best_epoch)]

    def to_dict(self, json_safe: bool = False) -> dict[str, Any]:
        """Plain dict; ``json_safe=True`` turns NaN/inf into ``None`` (strict JSON)."""
        d = dataclasses.asdict(self)
        return _json_safe(d) if json_safe else d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> History:
        """Inverse of :meth:`to_dict` (unknown keys are an error naming them)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown History fields {unknown}; valid: {sorted(names)}")
        d = dict(d)
        for key in ("train_loss", "lr", "time"):
            if key in d:
                d[key] = [float("nan") if v is None else v for v in d[key]]
        if "metrics" in d:
            d["metrics"] = {k: [float("nan") if v is None else v for v in vs] for k, vs in d["metrics"].items()}
        return cls(**d)

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the history as JSON (NaN/inf as ``null``), atomically; ``FileExistsError`` unless ``overwrite``."""
        path = Path(path)
        data = (json.dumps(self.to_dict(json_safe=True), indent=1) + "\n").encode()
        atomic_write(path, lambda f: f.write(data), overwrite=overwrite)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> History:
        """Read a history written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no history file at {path}")
        try:
            d = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path} is not a JSON history file: {err}") from err
        if not isinstance(d, dict):
            raise ValueError(f"{path} is not a JSON history file (top level is a {type(d).__name__})")
        return cls.from_dict(d)

    def __repr__(self) -> str:
        last = f", last train_loss={self.train_loss[-1]:.4g}" if self.train_loss else ""
        best = f", best_epoch={self.best_epoch} ({self.monitor}={self.best_value:.4g})" if self.best_epoch else ""
        return f"History(epochs={len(self.epoch)}{last}{best}, stop_reason={self.stop_reason!r})"


def _json_safe(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


# --------------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------------
def _model_dtype_device(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    for t in itertools.chain(model.parameters(), model.buffers()):
        if t.is_floating_point():
            return t.dtype, t.device
    return torch.get_default_dtype(), torch.device("cpu")


class _Data:
    """Trajectories (or a ``{"states", "controls"[, "lengths"]}`` dict) checked against a model."""

    def __init__(self, data: Any, name: str, model: nn.Module, dtype: torch.dtype, device: torch.device):
        self.name, self.dtype, self.device = name, dtype, device
        if isinstance(data, Mapping):
            if "states" not in data or "controls" not in data:
                raise ValueError(
                    f"{name} data as a dict needs 'states' [N, T+1, n] and 'controls' [N, T, m], "
                    f"got keys {sorted(data)}"
                )
            self.source = None
            states, controls, lengths = data["states"], data["controls"], data.get("lengths")
        elif hasattr(data, "states") and hasattr(data, "controls") and hasattr(data, "windows"):
            self.source = data
            states, controls, lengths = data.states, data.controls, getattr(data, "lengths", None)
        else:
            raise TypeError(
                f"{name} data must be a physwm.data.Trajectories or a dict with 'states' and 'controls', "
                f"got {type(data).__name__}"
            )
        self.states = torch.as_tensor(states)
        self.controls = torch.as_tensor(controls)
        self.lengths = None if lengths is None else torch.as_tensor(lengths).long()
        s, c = self.states, self.controls
        n, m = model.state_dim, model.control_dim
        if s.ndim != 3:
            raise ValueError(f"{name} states must have shape [N, T+1, {n}], got {tuple(s.shape)}")
        if c.ndim != 3:
            raise ValueError(f"{name} controls must have shape [N, T, {m}], got {tuple(c.shape)}")
        if s.shape[-1] != n:
            raise ValueError(
                f"{name} states have dimension {s.shape[-1]} but {type(model).__name__} expects state_dim={n}"
            )
        if c.shape[-1] != m:
            raise ValueError(
                f"{name} controls have dimension {c.shape[-1]} but {type(model).__name__} expects control_dim={m}"
            )
        if s.shape[0] != c.shape[0] or s.shape[1] != c.shape[1] + 1:
            raise ValueError(
                f"{name} states [N, T+1, n] and controls [N, T, m] disagree: {tuple(s.shape)} vs {tuple(c.shape)}"
            )
        if s.shape[0] == 0 or c.shape[1] == 0:
            raise ValueError(f"{name} data is empty: {s.shape[0]} episodes of {c.shape[1]} transitions")
        if self.lengths is not None and (self.lengths.shape != (s.shape[0],)):
            raise ValueError(f"{name} lengths must have shape [N={s.shape[0]}], got {tuple(self.lengths.shape)}")

    def windows(self, horizon: int) -> tuple[torch.Tensor, torch.Tensor]:
        """All valid windows ``([W, H+1, n], [W, H, m])`` in the model's dtype and device, checked."""
        if self.source is not None:
            w = self.source.windows(horizon)
            s, c = torch.as_tensor(w["states"]), torch.as_tensor(w["controls"])
        else:
            s, c = _windows_from_arrays(self.states, self.controls, self.lengths, horizon)
        if s.shape[0] == 0:
            longest = int(self.lengths.max()) if self.lengths is not None else self.controls.shape[1]
            raise ValueError(
                f"{self.name} data has no window of {horizon} steps: {self.states.shape[0]} episodes, "
                f"the longest with {longest} transitions"
            )
        s = s.to(device=self.device, dtype=self.dtype)
        c = c.to(device=self.device, dtype=self.dtype)
        bad = ~(torch.isfinite(s).flatten(1).all(1) & torch.isfinite(c).flatten(1).all(1))
        if bool(bad.any()):
            hint = " (pass 'lengths' for NaN-padded episodes)" if self.source is None and self.lengths is None else ""
            raise ValueError(
                f"{self.name} data contains NaN or inf (or values beyond {self.dtype}'s range) in "
                f"{int(bad.sum())} of its {s.shape[0]} windows of horizon {horizon}{hint}"
            )
        return s, c

    def fit_normalization(self, model: nn.Module) -> None:
        """``model.fit_normalization`` on the valid data (whole episodes if none is padded, else transitions)."""
        full = self.lengths is None or bool((self.lengths == self.controls.shape[1]).all())
        if full and bool(torch.isfinite(self.states).all() and torch.isfinite(self.controls).all()):
            s = self.states.to(device=self.device, dtype=self.dtype)
            c = self.controls.to(device=self.device, dtype=self.dtype)
        else:  # padded episodes: every valid transition once
            s, c = self.windows(1)
        model.fit_normalization(s, c)


def _windows_from_arrays(
    states: torch.Tensor, controls: torch.Tensor, lengths: torch.Tensor | None, horizon: int
) -> tuple[torch.Tensor, torch.Tensor]:
    N, T = controls.shape[:2]
    n, m = states.shape[-1], controls.shape[-1]
    if horizon > T:
        return states.new_zeros((0, horizon + 1, n)), controls.new_zeros((0, horizon, m))
    ws = states.unfold(1, horizon + 1, 1).permute(0, 1, 3, 2)  # [N, K, H+1, n]
    wc = controls.unfold(1, horizon, 1).permute(0, 1, 3, 2)[:, : ws.shape[1]]  # [N, K, H, m]
    if lengths is None:
        return ws.reshape(-1, horizon + 1, n), wc.reshape(-1, horizon, m)
    start = torch.arange(ws.shape[1])
    valid = start[None, :] + horizon <= lengths[:, None].clamp(max=T)
    return ws[valid], wc[valid]


@torch.no_grad()
def _rollout_rmse(model: nn.Module, states: torch.Tensor, controls: torch.Tensor) -> float:
    """RMSE of open-loop rollouts over the windows, in normalised state units (physical if no state_norm)."""
    norm = getattr(model, "state_norm", None)
    total, count = 0.0, 0
    for i in range(0, states.shape[0], _EVAL_CHUNK):
        s, c = states[i : i + _EVAL_CHUNK], controls[i : i + _EVAL_CHUNK]
        pred, target = model.rollout(s[:, 0], c)[:, 1:], s[:, 1:]
        if norm is not None:
            pred, target = norm.normalize(pred), norm.normalize(target)
        total += float((pred - target).double().pow(2).sum())
        count += pred.numel()
    return math.sqrt(total / count)


# --------------------------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------------------------
def _check_int(name: str, v: Any, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}")
    return v


def _check_float(name: str, v: Any, *, positive: bool = True, allow_none: bool = False) -> float | None:
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    if (positive and v <= 0) or (not positive and v < 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {v!r}")
    return float(v)


def _unpack_loss(out: Any, model: nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
    if isinstance(out, tuple) and len(out) == 2:
        loss, metrics = out
    else:
        loss, metrics = out, {}
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise TypeError(
            f"{type(model).__name__}.loss(batch) must return (scalar tensor, metrics dict), got {type(out).__name__}"
        )
    if not loss.requires_grad:
        raise ValueError(f"{type(model).__name__}.loss(batch) does not depend on any trainable parameter")
    return loss.reshape(()), dict(metrics or {})


def _state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _params_finite(params: list[torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in params)


def _check_resumable(ckpt: Path, tr: dict | None, config: dict, fingerprint: list) -> dict:
    if not tr:
        raise ValueError(f"checkpoint {ckpt} holds no training state to resume (not written by fit)")
    diff = [k for k in _RESUME_KEYS if tr["fit_config"].get(k) != config[k]]
    if diff:
        pairs = ", ".join(f"{k}: saved {tr['fit_config'].get(k)!r} vs now {config[k]!r}" for k in diff)
        raise ValueError(f"cannot resume {ckpt}: fit arguments differ ({pairs})")
    if config["lr_schedule"] == "cosine" and tr["fit_config"].get("epochs") != config["epochs"]:
        raise ValueError(
            f"cannot resume {ckpt} with epochs={config['epochs']}: its cosine schedule anneals over "
            f"epochs={tr['fit_config'].get('epochs')}"
        )
    old = tr["data_fingerprint"]
    if old[0] != fingerprint[0] or any(
        not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) for a, b in zip(old[1:], fingerprint[1:])
    ):
        raise ValueError(f"cannot resume {ckpt}: the training data differs from the saved run's")
    return tr


def _make_scheduler(opt: torch.optim.Optimizer, kind: str | None, epochs: int, patience: int | None):
    if kind is None:
        return None
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    if kind == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=0.5, patience=max(1, patience // 2) if patience else 5
        )
    raise ValueError(f"unknown lr_schedule {kind!r}; valid: {list(LR_SCHEDULES)}")


def _lbfgs_closure(model, opt, params, batch, grad_clip):
    """The closure L-BFGS re-evaluates: full-batch loss and gradient (non-finite values stop the search)."""

    def closure():
        opt.zero_grad(set_to_none=True)
        loss, _ = _unpack_loss(model.loss(batch), model)
        if torch.isfinite(loss):
            loss.backward()
            nn.utils.clip_grad_norm_(params, grad_clip if grad_clip is not None else math.inf)
        return loss.detach()

    return closure


def fit(
    model: nn.Module,
    train: Any,
    val: Any = None,
    *,
    horizon: int = 1,
    epochs: int = 100,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    grad_clip: float | None = None,
    lr_schedule: str | None = None,
    early_stopping: int | None = None,
    min_delta: float = 0.0,
    val_horizon: int = 10,
    val_max_windows: int | None = None,
    normalize: bool = True,
    restore_best: bool = True,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    seed: int = 0,
    progress: bool = True,
    max_time: float | None = None,
    on_divergence: str = "warn",
    callback: Callable[[int, History, nn.Module], bool | None] | None = None,
    optimizer: str = "adam",
) -> History:
    """Fit a world model to trajectories by minibatch gradient descent on ``model.loss``.

    Args:
        model: any WorldModel (anything with ``state_dim``, ``control_dim``, ``loss(batch)``,
            ``rollout(x0, u)`` and, if ``normalize``, ``fit_normalization``). Trained in place, in its own
            dtype and device: the data is converted to them, the model never is.
        train: training data, a ``Trajectories`` or a dict ``{"states": [N, T+1, n], "controls": [N, T, m]}``
            (optional ``"lengths": [N]`` valid transitions per NaN-padded episode).
        val: validation data of the same kinds, or ``None``.
        horizon: steps per training window: 1 is the one-step loss, more the multi-step rollout loss.
        epochs: number of passes over the training windows (the total, including resumed epochs).
        batch_size: windows per minibatch (the last one of an epoch may be smaller).
        lr: Adam learning rate.
        weight_decay: decoupled (AdamW) weight decay; 0 is plain Adam.
        grad_clip: clip the global gradient norm to this value (``None``: no clipping).
        lr_schedule: ``None``, ``"cosine"`` (cosine annealing to 0 over ``epochs``) or ``"plateau"`` (halve
            the rate after ``max(1, early_stopping // 2)``, or 5, epochs without improvement of the
            monitored value).
        early_stopping: patience in epochs: stop when the validation error has not improved (by more than
            ``min_delta``) for that many epochs. Needs ``val``. ``None``: no early stopping.
        min_delta: smallest decrease of the monitored value that counts as an improvement.
        val_horizon: open-loop steps of the validation rollout error.
        val_max_windows: evaluate at most this many validation windows (evenly spaced; ``None``: all).
        normalize: call ``model.fit_normalization`` on the training data first (not when resuming).
        restore_best: load the weights of the best epoch at the end (monitored value: the validation
            error, or the training loss without ``val``).
        checkpoint: file written (atomically) after every epoch and at the end, with everything needed to
            resume; ``None``: none.
        resume: continue the run saved in ``checkpoint`` if that file exists (else start fresh). The
            training data and ``horizon, batch_size, lr, weight_decay, grad_clip, lr_schedule,
            early_stopping, min_delta, val_horizon, val_max_windows, normalize, seed`` and whether ``val``
            is given must be those of the saved run (a ``ValueError`` names any difference); ``epochs``
            and ``max_time`` may change, so a finished run can be extended. A run that ended by early
            stopping or divergence is returned as saved.
        overwrite: allow a fresh run to replace an existing ``checkpoint`` file.
        seed: seeds the window shuffling and, inside ``fit`` only (the caller's global RNG state is
            restored afterwards), torch's global RNG used by stochastic models.
        progress: show a tqdm progress bar over epochs.
        max_time: stop after the first epoch that ends more than this many seconds into the run.
        on_divergence: ``"warn"`` (warn, flag the history and return) or ``"raise"`` (raise
            :class:`TrainingDiverged`) when a loss, gradient, weight or validation error becomes NaN/inf.
            Either way the best weights are restored and checkpointed first.
        callback: ``callback(epoch, history, model)`` after each epoch (and its checkpoint); return True to
            stop.
        optimizer: ``"adam"`` (minibatch AdamW, the default) or ``"lbfgs"``: full-batch L-BFGS with a
            strong-Wolfe line search, 20 iterations per epoch, ``batch_size`` ignored (take ``lr=1``). For
            models with few parameters (system identification, a hybrid's polish) it converges to the
            optimum to round-off where Adam's minibatch noise stalls; no weight decay.

    Returns:
        The :class:`History` of the run (of all sessions when resumed).

    An exception inside ``fit`` (``KeyboardInterrupt``, an error in the model) propagates as is: the
    model keeps its current weights and the checkpoint holds the last completed epoch, ready to resume.
    Determinism: the same seed, data, initial weights and arguments give bitwise the same weights on CPU.

    Raises:
        ValueError: data of the wrong dimensions, empty data (no window of ``horizon`` steps), NaN/inf in
            the data, invalid arguments, or a checkpoint that does not match this run.
        FileExistsError: ``checkpoint`` exists and neither ``resume`` nor ``overwrite`` is set.
        TrainingDiverged: with ``on_divergence="raise"``.
    """
    # -- arguments -------------------------------------------------------------------------------------
    for attr in ("state_dim", "control_dim", "loss", "rollout"):
        if not hasattr(model, attr):
            raise TypeError(f"model must be a WorldModel (missing {attr!r}), got {type(model).__name__}")
    horizon = _check_int("horizon", horizon)
    epochs = _check_int("epochs", epochs)
    batch_size = _check_int("batch_size", batch_size)
    val_horizon = _check_int("val_horizon", val_horizon)
    lr = _check_float("lr", lr)
    weight_decay = _check_float("weight_decay", weight_decay, positive=False)
    min_delta = _check_float("min_delta", min_delta, positive=False)
    grad_clip = _check_float("grad_clip", grad_clip, allow_none=True)
    max_time = _check_float("max_time", max_time, allow_none=True)
    if early_stopping is not None:
        early_stopping = _check_int("early_stopping", early_stopping)
    if val_max_windows is not None:
        val_max_windows = _check_int("val_max_windows", val_max_windows)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown lr_schedule {lr_schedule!r}; valid: {list(LR_SCHEDULES)}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; valid: {list(OPTIMIZERS)}")
    if optimizer == "lbfgs" and weight_decay:
        raise ValueError("weight_decay is not supported with optimizer='lbfgs'")
    if on_divergence not in _ON_DIVERGENCE:
        raise ValueError(f"unknown on_divergence {on_divergence!r}; valid: {list(_ON_DIVERGENCE)}")
    if early_stopping is not None and val is None:
        raise ValueError("early_stopping needs validation data: pass val=")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=<path of the run to resume>")
    ckpt = Path(checkpoint) if checkpoint is not None else None
    resuming = bool(resume and ckpt is not None and ckpt.exists())
    if ckpt is not None and ckpt.exists() and not resume and not overwrite:
        raise FileExistsError(f"checkpoint {ckpt} exists; pass resume=True to continue it or overwrite=True")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{type(model).__name__} has no trainable parameters")

    # -- data ------------------------------------------------------------------------------------------
    dtype, device = _model_dtype_device(model)
    train_data = _Data(train, "train", model, dtype, device)
    ws, wc = train_data.windows(horizon)
    vs = vc = None
    if val is not None:
        vs, vc = _Data(val, "val", model, dtype, device).windows(val_horizon)
        if val_max_windows is not None and vs.shape[0] > val_max_windows:
            keep = torch.linspace(0, vs.shape[0] - 1, val_max_windows).round().long().to(device)
            vs, vc = vs[keep], vc[keep]
    fingerprint = [int(ws.shape[0]), float(ws.double().sum()), float(wc.double().sum())]
    config = dict(
        horizon=horizon, batch_size=batch_size, lr=lr, weight_decay=weight_decay, grad_clip=grad_clip,
        lr_schedule=lr_schedule, early_stopping=early_stopping, min_delta=min_delta, val_horizon=val_horizon,
        val_max_windows=val_max_windows, normalize=normalize, seed=seed, epochs=epochs, validation=val is not None,
        optimizer=optimizer,
    )  # fmt: skip

    # -- state -----------------------------------------------------------------------------------------
    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS(
            params, lr=lr, max_iter=20, history_size=20, line_search_fn="strong_wolfe",
            tolerance_grad=0.0, tolerance_change=0.0,
        )  # fmt: skip
        batch_size = max(1, ws.shape[0])  # one full batch per epoch
    else:
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = _make_scheduler(opt, lr_schedule, epochs, early_stopping)
    gen = torch.Generator().manual_seed(seed)
    history = History(monitor="val_error" if val is not None else "train_loss")
    was_training = model.training
    fork_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        start_epoch, elapsed0 = 0, 0.0
        best_value, best_epoch, bad_epochs = math.inf, None, 0
        if resuming:
            before = _state_copy(model)
            _, saved = load_checkpoint(ckpt, model)
            try:
                tr = _check_resumable(ckpt, saved.get("training"), config, fingerprint)
            except ValueError:
                model.load_state_dict(before)  # a refused resume leaves the model as it was
                raise
            history = History.from_dict(saved["history"])
            start_epoch, elapsed0 = int(saved["epoch"]), float(tr["elapsed"])
            best_value = tr["best_value"]
            best_epoch, bad_epochs = tr["best_epoch"], tr["bad_epochs"]
            best_state = tr["best_model_state"]
            finished = tr["finished"]
            if finished and (history.stop_reason in ("early_stopping", "diverged") or start_epoch >= epochs):
                model.train(was_training)  # the checkpoint's model_state (already loaded) is the final one
                return history
            model.load_state_dict(tr["last_model_state"])
            opt.load_state_dict(tr["optimizer"])
            if sched is not None and tr["scheduler"] is not None:
                sched.load_state_dict(tr["scheduler"])
            gen.set_state(tr["generator"])
            torch.set_rng_state(tr["torch_rng"])
            history.stop_reason, history.message = "", ""
        else:
            if normalize:
                if not hasattr(model, "fit_normalization"):
                    raise TypeError(f"{type(model).__name__} has no fit_normalization; pass normalize=False")
                train_data.fit_normalization(model)
            best_state = _state_copy(model)  # fallback if the very first epoch diverges

        def save(finished: bool, final_state: dict | None = None) -> None:
            if ckpt is None:
                return
            last = _state_copy(model)
            training = {
                "fit_config": config,
                "data_fingerprint": fingerprint,
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict() if sched is not None else None,
                "generator": gen.get_state(),
                "torch_rng": torch.get_rng_state(),
                "last_model_state": last,
                "best_model_state": best_state,
                "best_value": best_value,
                "best_epoch": best_epoch,
                "bad_epochs": bad_epochs,
                "elapsed": elapsed0 + (time.perf_counter() - t0),
                "finished": finished,
            }
            _save(ckpt, model, state=final_state if final_state is not None else last, epoch=len(history.epoch),
                  history=history, training=training, overwrite=True)  # fmt: skip

        t0 = time.perf_counter()
        W = ws.shape[0]
        diverged = ""
        bar = _progress_bar(epochs, start_epoch, progress)
        try:
            for epoch in range(start_epoch + 1, epochs + 1):
                # -- one pass over the training windows ---------------------------------------------------
                model.train()
                lr_now = float(opt.param_groups[0]["lr"])
                perm = torch.randperm(W, generator=gen).to(device)
                loss_sum, seen, msums = 0.0, 0, {}
                for k, b in enumerate(range(0, W, batch_size)):
                    idx = perm[b : b + batch_size]
                    batch = {"states": ws[idx], "controls": wc[idx]}
                    opt.zero_grad(set_to_none=True)
                    loss, metrics = _unpack_loss(model.loss(batch), model)
                    if not torch.isfinite(loss):
                        diverged = f"the training loss became {float(loss.detach())} at epoch {epoch}, batch {k + 1}"
                        break
                    loss.backward()
                    gnorm = nn.utils.clip_grad_norm_(params, grad_clip if grad_clip is not None else math.inf)
                    if not torch.isfinite(gnorm):
                        diverged = f"the gradient became non-finite at epoch {epoch}, batch {k + 1}"
                        break
                    if optimizer == "lbfgs":
                        opt.step(_lbfgs_closure(model, opt, params, batch, grad_clip))
                    else:
                        opt.step()
                    nb = int(idx.shape[0])
                    loss_sum += float(loss.detach()) * nb
                    seen += nb
                    for name, v in metrics.items():
                        msums[name] = msums.get(name, 0.0) + float(v) * nb
                if not diverged and not _params_finite(params):
                    diverged = f"the weights became non-finite during epoch {epoch}"
                train_loss = loss_sum / seen if not diverged else math.nan
                val_err = None
                if not diverged and vs is not None:
                    model.eval()
                    val_err = _rollout_rmse(model, vs, vc)
                    model.train()
                    if not math.isfinite(val_err):
                        diverged = f"the validation rollout error became {val_err} at epoch {epoch}"

                # -- bookkeeping --------------------------------------------------------------------------
                history.epoch.append(epoch)
                history.train_loss.append(train_loss)
                history.val_error.append(val_err)
                history.lr.append(lr_now)
                history.time.append(elapsed0 + time.perf_counter() - t0)
                for name in set(history.metrics) | set(msums):
                    history.metrics.setdefault(name, [math.nan] * (len(history.epoch) - 1))
                    history.metrics[name].append(msums[name] / seen if name in msums and not diverged else math.nan)
                if diverged:
                    break
                monitored = val_err if val_err is not None else train_loss
                if monitored < best_value - min_delta or best_epoch is None:
                    best_value, best_epoch, bad_epochs = monitored, epoch, 0
                    best_state = _state_copy(model)
                else:
                    bad_epochs += 1
                history.best_epoch, history.best_value = best_epoch, best_value
                if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    sched.step(monitored)
                elif sched is not None:
                    sched.step()
                bar.set_postfix(_postfix(train_loss, val_err, lr_now), refresh=False)
                bar.update(1)

                stop = ""
                if early_stopping is not None and bad_epochs >= early_stopping:
                    stop = "early_stopping"
                elif epoch == epochs:
                    stop = "epochs"
                elif max_time is not None and time.perf_counter() - t0 >= max_time:
                    stop = "max_time"
                if not stop:
                    save(finished=False)
                if callback is not None and callback(epoch, history, model):
                    stop = stop or "callback"
                if stop:
                    history.stop_reason = stop
                    break
        finally:
            bar.close()

        # -- end of the run ---------------------------------------------------------------------------------
        if diverged:
            history.stop_reason, history.diverged = "diverged", True
            what = f"the weights of epoch {best_epoch}" if best_epoch is not None else "the initial weights"
            history.message = f"training diverged: {diverged}; restored {what}"
        else:
            history.stop_reason = history.stop_reason or "epochs"
            history.message = {
                "epochs": f"finished {len(history.epoch)} epochs",
                "early_stopping": f"stopped early after {early_stopping} epochs without improvement",
                "max_time": f"stopped after {history.time[-1]:.1f} s (max_time={max_time})",
                "callback": "stopped by the callback",
            }[history.stop_reason]
            if restore_best and best_epoch is not None:
                history.message += f"; restored the best epoch {best_epoch} ({history.monitor}={best_value:.4g})"
        last_state = _state_copy(model)
        if diverged or (restore_best and best_epoch is not None):
            model.load_state_dict(best_state)
        final_state = _state_copy(model)
        if ckpt is not None:
            model.load_state_dict(last_state)
            save(finished=True, final_state=final_state)
            model.load_state_dict(final_state)
    model.train(was_training)
    if diverged:
        if on_divergence == "raise":
            raise TrainingDiverged(history.message, history)
        warnings.warn(history.message, TrainingDivergedWarning, stacklevel=2)
    return history


def _progress_bar(total: int, initial: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc="fit", unit="epoch", dynamic_ncols=True)


def _postfix(train_loss: float, val_err: float | None, lr: float) -> dict[str, str]:
    d = {"loss": f"{train_loss:.4g}"}
    if val_err is not None:
        d["val"] = f"{val_err:.4g}"
    d["lr"] = f"{lr:.2g}"
    return d


# --------------------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------------------
def _class_name(model: nn.Module) -> str:
    cls = type(model)
    return f"{cls.__module__}.{cls.__qualname__}"


def _encode(v: Any, where: str) -> Any:
    """Plain-data form of a build spec / config (loadable with ``weights_only=True``)."""
    if v is None:
        return v
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, numbers.Integral):  # plain types only (no numpy scalars or str subclasses)
        return int(v)
    if isinstance(v, numbers.Real):
        return float(v)
    if isinstance(v, str):
        return str(v)
    if isinstance(v, torch.dtype):
        return {"__dtype__": str(v).removeprefix("torch.")}
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().clone()
    if isinstance(v, tuple):
        return {"__tuple__": [_encode(x, where) for x in v]}
    if isinstance(v, list):
        return [_encode(x, where) for x in v]
    if isinstance(v, Mapping):
        if not all(isinstance(k, str) for k in v):
            raise TypeError(f"{where}: dict keys must be strings")
        return {k: _encode(x, where) for k, x in v.items()}
    if hasattr(v, "to_dict") and hasattr(type(v), "from_dict"):
        return {"__object__": f"{type(v).__module__}:{type(v).__qualname__}", "value": _encode(v.to_dict(), where)}
    raise TypeError(f"{where}: cannot store a {type(v).__name__} in a checkpoint")


def _decode(v: Any) -> Any:
    if isinstance(v, list):
        return [_decode(x) for x in v]
    if isinstance(v, dict):
        if set(v) == {"__tuple__"}:
            return tuple(_decode(x) for x in v["__tuple__"])
        if set(v) == {"__dtype__"}:
            return getattr(torch, v["__dtype__"])
        if set(v) == {"__object__", "value"}:
            module, _, qualname = v["__object__"].partition(":")
            if module != "physwm" and not module.startswith("physwm."):
                raise ValueError(f"checkpoint refers to {v['__object__']}, outside physwm; refusing to import it")
            obj: Any = importlib.import_module(module)
            for part in qualname.split("."):
                obj = getattr(obj, part)
            return obj.from_dict(_decode(v["value"]))
        return {k: _decode(x) for k, x in v.items()}
    return v


def _save(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    state: dict[str, torch.Tensor] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    epoch: int | None = None,
    history: History | Mapping | None = None,
    training: dict | None = None,
    extra: dict | None = None,
    overwrite: bool = False,
) -> Path:
    from . import __version__

    state = state if state is not None else model.state_dict()
    dtype, _ = _model_dtype_device(model)
    notes = {}
    spec = getattr(model, "build_spec", None)
    try:
        spec = _encode(spec, "build_spec")
    except TypeError as err:
        spec, notes["build_spec"] = None, str(err)
    cfg = None
    if hasattr(model, "config"):
        try:
            cfg = _encode(model.config(), "config()")
        except TypeError as err:
            notes["config"] = str(err)
    if isinstance(history, History):
        history = history.to_dict()
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "physwm_version": str(__version__),
        "torch_version": str(torch.__version__),
        "model_class": _class_name(model),
        "build_spec": spec,
        "config": cfg,
        "not_stored": notes,
        "dtype": str(dtype).removeprefix("torch."),
        "model_state": {k: v.detach().cpu().clone() for k, v in state.items()},
        "epoch": epoch,
        "history": dict(history) if history is not None else None,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "training": training,
        "extra": extra,
    }
    path = Path(path)
    atomic_write(path, lambda f: torch.save(payload, f), overwrite=overwrite)
    return path


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    epoch: int | None = None,
    history: History | Mapping | None = None,
    overwrite: bool = False,
    *,
    scheduler: Any = None,
    extra: dict | None = None,
) -> Path:
    """Save a model (and optionally its optimizer) atomically to ``path``.

    The file holds a format tag and version, the physwm and torch versions, the model's class,
    ``model.build_spec`` (if set) and ``model.config()``, its dtype and ``state_dict`` (weights and
    normalisation buffers), and the given optimizer/scheduler state, epoch, history and ``extra`` (plain
    data). Written to a temporary file in the same directory, then renamed over ``path``.

    Args:
        path: file to write (parent directories are created).
        model: the model.
        optimizer: optional optimizer whose ``state_dict`` is stored.
        epoch: optional number of completed epochs.
        history: optional :class:`History` (or its dict).
        overwrite: replace an existing file (default: ``FileExistsError``).
        scheduler: optional LR scheduler whose ``state_dict`` is stored.
        extra: optional dict of plain data (numbers, strings, lists, dicts, tensors).

    Returns:
        The path written.
    """
    return _save(path, model, optimizer=optimizer, scheduler=scheduler, epoch=epoch, history=history,
                 extra=extra, overwrite=overwrite)  # fmt: skip


def _check_state_dict(model: nn.Module, saved: Mapping[str, torch.Tensor], source: str) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(saved))
    unexpected = sorted(set(saved) - set(own))
    shapes = [f"{k}: saved {tuple(saved[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in saved and tuple(saved[k].shape) != tuple(own[k].shape)]  # fmt: skip
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing from the checkpoint: {missing[:6]}")
        if unexpected:
            parts.append(f"not in the model: {unexpected[:6]}")
        if shapes:
            parts.append(f"shape mismatches: {shapes[:6]}")
        raise ValueError(f"{source}: weights do not fit {type(model).__name__} ({'; '.join(parts)})")


def load_checkpoint(
    path: str | os.PathLike, model: nn.Module | None = None, *, map_location: Any = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint` or :func:`fit`.

    Args:
        path: checkpoint file.
        model: a model to load the weights into (its class and ``config()`` must match the saved ones;
            the weights are cast to its dtype and device, which are never changed). ``None``: rebuild it
            with ``physwm.models.build(**build_spec)`` from the saved ``build_spec``,
            in the saved dtype, on the CPU.
        map_location: passed to ``torch.load``.

    Returns:
        ``(model, state)``: the model with the saved weights, and a dict with ``epoch``, ``history``,
        ``optimizer``, ``scheduler``, ``training`` (fit's resume state or ``None``), ``extra``,
        ``physwm_version``, ``model_class``, ``build_spec`` and ``config``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: a corrupt or foreign file, another format version, another model class or
            configuration, weights that do not fit, or no way to rebuild the model.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for truncated/corrupt/foreign files
        raise ValueError(
            f"{path} is not a readable physwm checkpoint (corrupt or truncated?): {type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a physwm checkpoint (no {CHECKPOINT_FORMAT!r} format tag)")
    version = payload.get("format_version")
    if version != CHECKPOINT_VERSION:
        raise ValueError(
            f"{path} has checkpoint format version {version!r}, written by physwm "
            f"{payload.get('physwm_version')}; this physwm reads version {CHECKPOINT_VERSION}"
        )
    missing = [k for k in ("model_class", "model_state", "config", "build_spec") if k not in payload]
    if missing or not isinstance(payload["model_state"], Mapping):
        raise ValueError(f"{path} is an incomplete physwm checkpoint (missing {missing or ['model_state']})")
    saved_class = payload["model_class"]
    if model is None:
        model = _rebuild(path, payload)
    elif _class_name(model) != saved_class:
        raise ValueError(f"{path} holds a {saved_class}, but the model given is a {_class_name(model)}")
    if payload["config"] is not None and hasattr(model, "config"):
        try:
            own = _encode(model.config(), "config()")
        except TypeError:
            own = payload["config"]  # not comparable; the weights check below still applies
        diffs = _differences(_decode(payload["config"]), _decode(own))
        if diffs:
            raise ValueError(f"{path}: the model's config differs from the checkpoint's ({diffs})")
    if payload["build_spec"] is not None and getattr(model, "build_spec", None) is not None:
        try:
            own_spec = _decode(_encode(model.build_spec, "build_spec"))
        except TypeError:
            own_spec = None
        saved_spec = _decode(payload["build_spec"])
        if isinstance(own_spec, dict) and isinstance(saved_spec, dict):
            # the initialisation seed does not change the architecture (the weights are loaded anyway)
            flat = [{"name": d.get("name"), **{k: v for k, v in dict(d.get("options") or {}).items() if k != "seed"}}
                    for d in (saved_spec, own_spec)]  # fmt: skip
            diffs = _differences(*flat)
            if diffs:
                raise ValueError(f"{path}: the model's build_spec differs from the checkpoint's ({diffs})")
    _check_state_dict(model, payload["model_state"], str(path))
    model.load_state_dict(payload["model_state"])
    state = {k: payload.get(k) for k in ("epoch", "history", "optimizer", "scheduler", "training", "extra",
                                          "physwm_version", "torch_version", "model_class", "config")}  # fmt: skip
    state["build_spec"] = _decode(payload["build_spec"]) if payload["build_spec"] is not None else None
    state["config"] = _decode(payload["config"]) if payload["config"] is not None else None
    return model, state


def _differences(saved: Any, own: Any) -> str:
    """``"key: saved a vs model b, ..."`` for the entries that differ ("" if equal)."""
    if saved == own:
        return ""
    if not (isinstance(saved, dict) and isinstance(own, dict)):
        saved, own = {"value": saved}, {"value": own}
    keys = sorted(k for k in set(saved) | set(own) if saved.get(k, "<absent>") != own.get(k, "<absent>"))
    return ", ".join(f"{k}: saved {saved.get(k, '<absent>')!r} vs model {own.get(k, '<absent>')!r}" for k in keys)


def _rebuild(path: Path, payload: dict) -> nn.Module:
    spec = payload.get("build_spec")
    cls = payload["model_class"]
    if not spec:
        why = payload.get("not_stored", {}).get("build_spec", "the model has no build_spec")
        raise ValueError(
            f"{path}: cannot rebuild the {cls} without a stored build_spec ({why}); pass model=<a {cls} "
            "built with the same options>"
        )
    spec = _decode(spec)
    try:
        from .models import build
    except ImportError as err:
        raise ValueError(f"{path}: cannot rebuild the model: physwm.models.build is not available ({err})") from err
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"{path}: malformed build_spec {spec!r}; expected {{'name': ..., 'options': {{...}}}}")
    model = build(spec["name"], options=dict(spec.get("options") or {}))
    if _class_name(model) != cls:
        raise ValueError(f"{path}: build_spec {spec!r} builds a {_class_name(model)}, but the checkpoint holds a {cls}")
    dtype = getattr(torch, str(payload.get("dtype", "float32")), None)
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        model = model.to(dtype)
    return model
