"""Model-level evaluation: windows cut out of data, rollouts of a model, and :func:`evaluate`, every metric
of one model on one data set."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

from ..checks import module_dtype_device, positive_int
from ..data import Trajectories
from ..models.base import quiet_rollout
from .metrics import (
    DEFAULT_HORIZONS,
    DEFAULT_VPT_THRESHOLD,
    as_tensor,
    check_scale,
    energy_error,
    mse_per_dim,
    parameter_error,
    rmse_vs_horizon,
    squared_error,
    state_scale,
    valid_prediction_time,
)
from .uncertainty import DEFAULT_LEVELS, calibration_error, gaussian_nll, interval_coverage

__all__ = [
    "check_data_dt",
    "eval_windows",
    "rollout_predictions",
    "windows_rmse",
    "rollout_rmse",
    "time_derivative",
    "one_step_errors",
    "predictive_distribution",
    "uncertainty_metrics",
    "identified_constants",
    "evaluate",
]


def eval_windows(data: Any, horizon: int, max_windows: int | None = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    """Windows of ``horizon`` steps to evaluate on, from a Trajectories or a batch dict.

    Args:
        data: a :class:`~physwm.data.Trajectories` (every valid window of ``horizon`` steps that does not
            cross an episode end) or a batch ``{"states": [B, T+1, n], "controls": [B, T, m]}`` (its
            first ``horizon`` steps).
        horizon: steps per window, >= 1.
        max_windows: keep at most this many windows, drawn without replacement with ``seed``
            (``None``: all).
        seed: seed of that draw.

    Returns:
        ``{"states": [W, horizon+1, n], "controls": [W, horizon, m]}`` in the data's dtype.

    Raises:
        ValueError: if no window of that length exists (e.g. episodes that terminate too early).
    """
    horizon = positive_int(horizon, "horizon")
    if isinstance(data, Mapping):
        if "states" not in data or "controls" not in data:
            raise ValueError("a batch must be a dict with 'states' [B, T+1, n] and 'controls' [B, T, m]")
        s, c = as_tensor(data["states"], "states"), as_tensor(data["controls"], "controls")
        if s.ndim != 3 or c.ndim != 3 or s.shape[0] != c.shape[0] or s.shape[1] != c.shape[1] + 1:
            raise ValueError(
                f"batch states [B, T+1, n] and controls [B, T, m] disagree: {tuple(s.shape)}, {tuple(c.shape)}"
            )
        if c.shape[1] < horizon:
            raise ValueError(f"the batch has {c.shape[1]} steps, fewer than the horizon {horizon}")
        s, c = s[:, : horizon + 1], c[:, :horizon]
    elif isinstance(data, Trajectories):
        longest = int(data.lengths.max()) if getattr(data, "lengths", None) is not None and len(data) else 0
        if len(data) == 0 or longest < horizon:
            raise ValueError(
                f"no evaluation window of {horizon} steps: the longest episode has {longest} transitions"
                f" ({len(data)} episodes); collect longer episodes or use shorter horizons"
            )
        w = data.windows(horizon)
        s, c = w["states"], w["controls"]
    else:
        raise TypeError(f"data must be a Trajectories or a batch dict, got {type(data).__name__}")
    if s.shape[0] == 0:
        raise ValueError(f"no evaluation window of {horizon} steps in the data")
    if max_windows is not None and s.shape[0] > max_windows:
        g = torch.Generator().manual_seed(int(seed))
        idx = torch.randperm(s.shape[0], generator=g)[:max_windows].sort().values
        s, c = s[idx], c[idx]
    return {"states": s, "controls": c}


def check_data_dt(model: Any, data: Any) -> None:
    """ValueError if ``data`` records a control period (a Trajectories' ``dt``) other than the model's ``dt``."""
    data_dt, model_dt = getattr(data, "dt", None), getattr(model, "dt", None)
    if data_dt is None or model_dt is None:
        return
    if abs(float(data_dt) - float(model_dt)) > 1e-9 * max(1.0, float(model_dt)):
        raise ValueError(
            f"the data was recorded every {float(data_dt)} s but {type(model).__name__} steps "
            f"dt = {float(model_dt)} s; evaluate a model built for the data's dt"
        )


def _check_model_data(model: Any, states: torch.Tensor, controls: torch.Tensor) -> None:
    n, m = getattr(model, "state_dim", None), getattr(model, "control_dim", None)
    if n is None or m is None:
        raise TypeError(f"model must be a WorldModel with state_dim and control_dim, got {type(model).__name__}")
    if states.shape[-1] != n:
        raise ValueError(f"{type(model).__name__} has state_dim {n} but the data's states have {states.shape[-1]}")
    if controls.shape[-1] != m:
        raise ValueError(
            f"{type(model).__name__} has control_dim {m} but the data's controls have {controls.shape[-1]}"
        )


@torch.no_grad()
def rollout_predictions(model: Any, batch: Mapping[str, torch.Tensor], chunk: int = 1024) -> torch.Tensor:
    """Open-loop predictions of ``model`` from each window's first state under its recorded controls.

    Args:
        model: a :class:`~physwm.models.WorldModel`.
        batch: ``{"states": [B, T+1, n], "controls": [B, T, m]}`` (physical units).
        chunk: windows per model call.

    Returns:
        ``[B, T+1, n]`` in the model's dtype (index 0 is the true start). Non-finite values are kept:
        a model that diverges, or raises a floating-point error mid-rollout, gives NaN.
    """
    s, c = batch["states"], batch["controls"]
    _check_model_data(model, s, c)
    dtype, device = module_dtype_device(model)
    was_training = model.training
    model.eval()
    try:
        outs = []
        for i in range(0, s.shape[0], chunk):
            x0 = s[i : i + chunk, 0].to(dtype=dtype, device=device)
            u = c[i : i + chunk].to(dtype=dtype, device=device)
            outs.append(quiet_rollout(model, x0, u).cpu())
        return torch.cat(outs, 0)
    finally:
        model.train(was_training)


@torch.no_grad()
def windows_rmse(
    model: Any, states: torch.Tensor, controls: torch.Tensor, scale: Any = None, chunk: int = 4096
) -> float:
    """RMSE of open-loop rollouts over windows, over every predicted step and state dimension.

    ``sqrt(mean_{b, t >= 1, d} ((pred - true) / scale)^2)`` for ``states [B, H+1, n]`` and ``controls
    [B, H, m]`` in the model's dtype (physical units), rolled out from each window's first state. This is
    the validation error of :func:`~physwm.train.fit` (``scale``: the training data's state spread, the
    model's ``state_norm.std``). ``scale=None``: physical units. A non-finite prediction gives ``inf``.
    """
    sq_sum, count = 0.0, 0
    for i in range(0, states.shape[0], chunk):
        s, c = states[i : i + chunk], controls[i : i + chunk]
        pred = quiet_rollout(model, s[:, 0], c)[:, 1:]
        sq = squared_error(pred, s[:, 1:], scale)
        sq_sum += float(sq.sum())
        count += sq.numel()
    return math.sqrt(sq_sum / count)


def rollout_rmse(
    model: Any, data: Any, horizon: int, *, scale: Any = None, max_windows: int | None = 64, seed: int = 0
) -> float:
    """Normalised ``horizon``-step open-loop RMSE of a model on data: the ``rmse@horizon`` of :func:`evaluate`.

    Args:
        model: a WorldModel.
        data: Trajectories or batch dict (see :func:`eval_windows`).
        horizon: steps after each window's start.
        scale: unit per dimension; default: :func:`state_scale` of ``data``.
        max_windows, seed: the windows drawn (see :func:`eval_windows`).
    """
    check_data_dt(model, data)
    if scale is None:
        scale = state_scale(data) if not isinstance(data, Mapping) else state_scale(data["states"])
    w = eval_windows(data, horizon, max_windows=max_windows, seed=seed)
    pred = rollout_predictions(model, w)
    return float(rmse_vs_horizon(pred, w["states"], [horizon], scale)[0])


@torch.no_grad()
def time_derivative(model: Any, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """A model's estimate of ``dx/dt [..., n]`` at states ``x [..., n]`` under controls ``u [..., m]``.

    The field itself for a continuous-time model (one with a ``field``), else the one-step finite
    difference ``(step(x, u) - x) / dt`` of a discrete-time model; in the model's dtype.
    """
    dtype, device = module_dtype_device(model)
    x, u = x.to(dtype=dtype, device=device), u.to(dtype=dtype, device=device)
    field = getattr(model, "field", None)
    if field is not None:
        return field(x, u)
    return (model.step(x, u) - x) / model.dt


def one_step_errors(
    model: Any, data: Any, scale: Any = None, max_windows: int | None = None, seed: int = 0
) -> dict[str, torch.Tensor]:
    """One-step prediction MSE per state dimension.

    Args:
        model: a WorldModel.
        data: Trajectories or batch dict (see :func:`eval_windows`).
        scale: unit per dimension for the normalised MSE; default: :func:`state_scale` of the data.
        max_windows: evaluate at most this many transitions (``None``: all).
        seed: seed of the subsample.

    Returns:
        ``{"mse": [n] physical units^2, "mse_norm": [n] in units of scale^2}`` (float64).
    """
    check_data_dt(model, data)
    w = eval_windows(data, 1, max_windows=max_windows, seed=seed)
    pred = rollout_predictions(model, w)
    true = w["states"]
    if scale is None:
        scale = state_scale(true)
    return {"mse": mse_per_dim(pred[:, 1], true[:, 1]), "mse_norm": mse_per_dim(pred[:, 1], true[:, 1], scale)}


def predictive_distribution(model: Any, x: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """One-step predictive ``(mean, var)`` of a probabilistic model, or None for a deterministic one.

    Uses the model's ``predict(x, u) -> (mean, std)`` (``WorldModel.predict``: zero spread for
    deterministic models, which give None here; Gaussian models and ensembles override it). An
    ensemble-like model with ``members`` but no ``predict`` gives its members' mean and population variance.

    Args:
        x: ``[B, n]`` states, u: ``[B, m]`` controls, in the model's dtype.

    Returns:
        ``(mean [B, n], var [B, n])`` in physical units (variance floored at the dtype's smallest normal
        number), or None.
    """
    if hasattr(model, "predict"):
        mean, std = model.predict(x, u)
        if std is None or torch.count_nonzero(std) == 0:
            return None
        return mean, std.pow(2).clamp_min(torch.finfo(std.dtype).tiny)
    members = getattr(model, "members", None)
    if members is not None and len(members) > 1:
        preds = torch.stack([m.step(x, u) for m in members])
        return preds.mean(0), preds.var(0, unbiased=False).clamp_min(torch.finfo(preds.dtype).tiny)
    return None


@torch.no_grad()
def uncertainty_metrics(
    model: Any,
    data: Any,
    scale: Any = None,
    levels: Sequence[float] = DEFAULT_LEVELS,
    max_windows: int | None = 4096,
    seed: int = 0,
) -> dict[str, float] | None:
    """One-step Gaussian NLL (normalised units) and interval coverage of a probabilistic model.

    Returns:
        ``{"nll": float, "coverage@0.9": float, ..., "calibration_error": float}`` or None if the model
        gives no predictive distribution (see :func:`predictive_distribution`).
    """
    w = eval_windows(data, 1, max_windows=max_windows, seed=seed)
    _check_model_data(model, w["states"], w["controls"])
    dtype, device = module_dtype_device(model)
    x = w["states"][:, 0].to(dtype=dtype, device=device)
    u = w["controls"][:, 0].to(dtype=dtype, device=device)
    was_training = model.training
    model.eval()
    try:
        dist = predictive_distribution(model, x, u)
    finally:
        model.train(was_training)
    if dist is None:
        return None
    mean, var = (t.cpu().to(torch.float64) for t in dist)
    target = w["states"][:, 1].to(torch.float64)
    if scale is None:
        scale = state_scale(w["states"])
    cov = interval_coverage(mean, var, target, levels)
    out = {"nll": float(gaussian_nll(mean, var, target, scale))}
    out.update({f"coverage@{p:g}": c for p, c in cov.items()})
    out["calibration_error"] = calibration_error(cov)
    return out


def evaluate(
    model: Any,
    data: Any,
    *,
    horizons: Iterable[int] = DEFAULT_HORIZONS,
    scale: Any = None,
    threshold: float = DEFAULT_VPT_THRESHOLD,
    max_windows: int | None = 64,
    seed: int = 0,
    energy_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    true_params: Any = None,
) -> dict[str, float]:
    """Every metric of one model on one data set, as a flat dict of floats (JSON- and CSV-ready).

    Keys (``h`` over ``horizons``, ``d`` over state dimensions ``0..n-1``):

    * ``one_step_mse_norm`` (mean over dims), ``one_step_mse_norm[d]``, ``one_step_mse[d]`` (physical);
    * ``rmse@h`` (normalised, all dims), ``rmse@h[d]`` (physical units of dimension d);
    * ``vpt_steps`` (mean valid prediction time over windows, steps), ``vpt_s`` (seconds),
      ``vpt_censored`` (fraction of windows that never passed the threshold);
    * ``energy_rmse@h`` (J) if ``energy_fn`` is given;
    * ``param_err[name]`` and ``param_err_mean`` if the model exposes identified constants
      (a field, or a hybrid's physics, with ``identified()``) and ``true_params`` is given;
    * ``nll``, ``coverage@p``, ``calibration_error`` for probabilistic models (ensembles);
    * ``windows``: number of rollout windows evaluated.

    Args:
        model: a WorldModel.
        data: Trajectories or batch dict with windows at least ``max(horizons)`` steps long.
        horizons: rollout horizons in steps.
        scale: unit per dimension of normalised errors; default: :func:`state_scale` of ``data``.
        threshold: valid-prediction-time threshold (normalised units).
        max_windows: rollout windows drawn from the data (one-step errors use up to 64x as many).
        seed: seed of the window draws.
        energy_fn: energy of the true system, ``[..., n] -> [...]`` J.
        true_params: the true system's constants (for the parameter error).
    """
    check_data_dt(model, data)
    hs = sorted({int(h) for h in horizons})
    if not hs or hs[0] < 1:
        raise ValueError(f"horizons must be positive steps, got {list(horizons)}")
    H = hs[-1]
    if scale is None:
        scale = state_scale(data) if not isinstance(data, Mapping) else state_scale(data["states"])
    scale = check_scale(scale, _data_state_dim(data))
    out: dict[str, float] = {}
    one = one_step_errors(
        model, data, scale=scale, max_windows=None if max_windows is None else 64 * max_windows, seed=seed
    )
    out["one_step_mse_norm"] = float(one["mse_norm"].mean())
    for d, v in enumerate(one["mse_norm"].tolist()):
        out[f"one_step_mse_norm[{d}]"] = v
    for d, v in enumerate(one["mse"].tolist()):
        out[f"one_step_mse[{d}]"] = v

    w = eval_windows(data, H, max_windows=max_windows, seed=seed)
    pred = rollout_predictions(model, w)
    true = w["states"]
    out["windows"] = float(true.shape[0])
    norm = rmse_vs_horizon(pred, true, hs, scale)
    phys = rmse_vs_horizon(pred, true, hs, None, per_dim=True)
    for i, h in enumerate(hs):
        out[f"rmse@{h}"] = float(norm[i])
        for d in range(phys.shape[1]):
            out[f"rmse@{h}[{d}]"] = float(phys[i, d])
    vpt = valid_prediction_time(pred, true, scale, threshold)
    out["vpt_steps"] = float(vpt.double().mean())
    out["vpt_s"] = out["vpt_steps"] * float(getattr(model, "dt", float("nan")))
    out["vpt_censored"] = float((vpt == H).double().mean())
    if energy_fn is not None:
        e = energy_error(pred, true, energy_fn)
        for h in hs:
            out[f"energy_rmse@{h}"] = float(e[h])
    if true_params is not None:
        ident = identified_constants(model)
        if ident:
            errs = parameter_error(ident, true_params)
            for k, v in errs.items():
                out[f"param_err[{k}]"] = v
            out["param_err_mean"] = sum(errs.values()) / len(errs)
    unc = uncertainty_metrics(model, data, scale=scale, seed=seed)
    if unc is not None:
        out.update(unc)
    return out


def _data_state_dim(data: Any) -> int:
    if isinstance(data, Mapping):
        return int(as_tensor(data["states"], "states").shape[-1])
    return int(data.states.shape[-1])


def identified_constants(model: Any) -> dict[str, float]:
    """Identified (learnable) constants of a model's physics: an explicit model's field or a hybrid's physics.

    Every submodule with ``identified()`` and a non-empty ``learnable`` tuple contributes its learnable
    constants (fixed constants are never scored); the first module to name a constant wins.
    """
    seen: dict[str, float] = {}
    for mod in model.modules():
        if mod is model:
            continue
        ident = getattr(mod, "identified", None)
        if callable(ident) and getattr(mod, "learnable", ()):
            for k, v in ident().items():
                seen.setdefault(k, float(v))
    return seen
