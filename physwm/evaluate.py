r"""Metrics of world models, defined once: every study, figure and notebook uses these.

Two layers:

* **pure functions** of predicted and true tensors (no model, no data container), so each metric has
  one definition that can be checked against hand-computed values:
  :func:`mse_per_dim`, :func:`rmse_vs_horizon`, :func:`valid_prediction_time`, :func:`energy_error`,
  :func:`parameter_error`, :func:`gaussian_nll`, :func:`interval_coverage`;
* **model-level** functions that cut evaluation windows out of data, run the model and call the pure
  functions: :func:`one_step_errors`, :func:`rollout_predictions`, :func:`evaluate`.

Conventions

* ``pred`` and ``true`` rollouts are ``[B, T+1, n]`` in physical units, the first entry being the
  (shared) start state; "horizon ``h``" is the state ``h`` steps after the start.
* **Normalised** errors divide each state dimension by a ``scale [n]`` (a typical size of that
  dimension). Pass the *training* data's :func:`state_scale` so that numbers on different test splits
  are comparable; by default the scale is computed from the true states being evaluated.
* A divergent model may predict NaN or inf. Its squared error is then ``inf`` (a diverged prediction
  is infinitely wrong, never silently dropped), so a RMSE over windows that include a divergent one is
  ``inf``; :func:`valid_prediction_time` counts a non-finite prediction as past the threshold.
* Data given to a model is cast to the model's dtype and device (a model never changes them); errors
  are computed in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

__all__ = [
    "DEFAULT_HORIZONS",
    "DEFAULT_VPT_THRESHOLD",
    "DEFAULT_LEVELS",
    "state_scale",
    "squared_error",
    "mse_per_dim",
    "rmse_vs_horizon",
    "valid_prediction_time",
    "energy_error",
    "parameter_error",
    "gaussian_nll",
    "interval_coverage",
    "calibration_error",
    "eval_windows",
    "one_step_errors",
    "rollout_predictions",
    "predictive_distribution",
    "uncertainty_metrics",
    "evaluate",
]

#: Open-loop horizons (steps) at which rollout errors are reported.
DEFAULT_HORIZONS: tuple[int, ...] = (1, 10, 50, 100, 200)
#: Normalised error (RMS over state dimensions, in units of ``scale``) beyond which a prediction is invalid.
DEFAULT_VPT_THRESHOLD: float = 0.5
#: Central-interval probabilities at which ensembles' calibration is measured.
DEFAULT_LEVELS: tuple[float, ...] = (0.5, 0.9, 0.95)


# --- helpers -----------------------------------------------------------------------------------------


def _as_tensor(v: Any, name: str) -> torch.Tensor:
    if isinstance(v, torch.Tensor):
        return v
    try:
        return torch.as_tensor(v)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{name} must be a tensor or array, got {type(v).__name__}") from err


def _check_pair(pred: torch.Tensor, true: torch.Tensor, ndim: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    pred = _as_tensor(pred, "pred").to(torch.float64)
    true = _as_tensor(true, "true").to(torch.float64)
    if pred.shape != true.shape:
        raise ValueError(f"pred and true must have the same shape, got {tuple(pred.shape)} and {tuple(true.shape)}")
    if ndim is not None and pred.ndim != ndim:
        raise ValueError(f"expected [B, T+1, n] rollouts ({ndim} dims), got shape {tuple(pred.shape)}")
    if pred.ndim == 0 or pred.numel() == 0:
        raise ValueError(f"cannot compute an error on empty predictions of shape {tuple(pred.shape)}")
    if not torch.isfinite(true).all():
        raise ValueError("the true states contain NaN or inf (padding must be removed before evaluating)")
    return pred, true


def _check_scale(scale: Any, n: int) -> torch.Tensor:
    s = _as_tensor(scale, "scale").to(torch.float64).reshape(-1)
    if s.numel() == 1:
        s = s.expand(n)
    if s.shape != (n,):
        raise ValueError(f"scale must be a scalar or have shape [{n}], got {tuple(s.shape)}")
    if not (torch.isfinite(s).all() and (s > 0).all()):
        raise ValueError(f"scale must be positive and finite, got {s.tolist()}")
    return s


def state_scale(states: Any, lengths: Any = None, min_std: float = 1e-6) -> torch.Tensor:
    """Per-dimension standard deviation of states, the default unit of normalised errors.

    Args:
        states: ``[..., n]`` states, or a :class:`~physwm.data.Trajectories` (its valid states are used;
            NaN padding beyond each episode's length is ignored).
        lengths: unused with a Trajectories; with a ``[N, T+1, n]`` tensor, optional ``[N]`` numbers of
            valid transitions per episode.
        min_std: floor so constant dimensions give a usable unit.

    Returns:
        float64 ``[n]`` standard deviations (population), floored at ``min_std``.
    """
    if hasattr(states, "states") and hasattr(states, "controls"):
        lengths = getattr(states, "lengths", None)
        states = states.states
    s = _as_tensor(states, "states").to(torch.float64)
    if lengths is not None and s.ndim == 3:
        lengths = _as_tensor(lengths, "lengths").to(torch.long)
        mask = torch.arange(s.shape[1])[None, :] <= lengths[:, None]
        s = s[mask]
    s = s.reshape(-1, s.shape[-1])
    s = s[torch.isfinite(s).all(-1)]
    if s.shape[0] < 2:
        raise ValueError("state_scale needs at least 2 finite states")
    return s.std(0, unbiased=False).clamp_min(min_std)


def squared_error(pred: torch.Tensor, true: torch.Tensor, scale: Any = None) -> torch.Tensor:
    """Elementwise squared error, optionally in units of ``scale [n]``; non-finite predictions give ``inf``.

    Args:
        pred, true: ``[..., n]`` with equal shapes (physical units).
        scale: ``None`` (physical units) or ``[n]``/scalar positive unit per dimension.

    Returns:
        float64 ``[..., n]``.
    """
    pred, true = _check_pair(pred, true)
    err = pred - true
    if scale is not None:
        err = err / _check_scale(scale, true.shape[-1])
    sq = err.pow(2)
    return torch.where(torch.isfinite(sq), sq, torch.full_like(sq, math.inf))


def mse_per_dim(pred: torch.Tensor, true: torch.Tensor, scale: Any = None) -> torch.Tensor:
    """Mean squared error per state dimension, averaged over all leading dimensions.

    Args:
        pred, true: ``[..., n]`` (physical units).
        scale: ``None`` for physical units, or ``[n]`` for errors in units of ``scale``.

    Returns:
        float64 ``[n]``; ``inf`` in a dimension where any prediction is non-finite.
    """
    sq = squared_error(pred, true, scale)
    return sq.reshape(-1, sq.shape[-1]).mean(0)


def rmse_vs_horizon(
    pred: torch.Tensor,
    true: torch.Tensor,
    horizons: Iterable[int] = DEFAULT_HORIZONS,
    scale: Any = None,
    per_dim: bool = False,
) -> torch.Tensor:
    r"""Root-mean-square error of open-loop rollouts at given horizons.

    ``RMSE(h) = sqrt(mean_{b, d} e[b, h, d]^2)`` over windows ``b`` and state dimensions ``d``
    (``per_dim=False``), or ``sqrt(mean_b e[b, h, d]^2)`` for each ``d`` (``per_dim=True``), where
    ``e = (pred - true) / scale`` (or ``pred - true`` when ``scale`` is None: physical units; a mean
    over dimensions of different units is then only meaningful per dimension).

    Args:
        pred, true: ``[B, T+1, n]`` rollouts; index 0 is the start state.
        horizons: steps after the start, each in ``1..T``.
        scale: ``None`` or ``[n]`` unit per dimension.
        per_dim: return one RMSE per dimension.

    Returns:
        float64 ``[len(horizons)]`` or ``[len(horizons), n]``.
    """
    pred, true = _check_pair(pred, true, ndim=3)
    hs = _check_horizons(horizons, true.shape[1] - 1)
    sq = squared_error(pred[:, hs], true[:, hs], scale)  # [B, H, n]
    if per_dim:
        return sq.mean(0).sqrt()
    return sq.mean(dim=(0, 2)).sqrt()


def _check_horizons(horizons: Iterable[int], T: int) -> list[int]:
    hs = [int(h) for h in horizons]
    if not hs:
        raise ValueError("horizons must not be empty")
    bad = [h for h in hs if h < 1 or h > T]
    if bad:
        raise ValueError(f"horizons {bad} are outside 1..{T}, the length of the rollouts given")
    return hs


def valid_prediction_time(
    pred: torch.Tensor, true: torch.Tensor, scale: Any = None, threshold: float = DEFAULT_VPT_THRESHOLD
) -> torch.Tensor:
    r"""Valid prediction time of each rollout, in steps.

    The normalised error at step ``t`` is ``e_t = sqrt(mean_d ((pred - true) / scale)^2)``. With ``t*``
    the first step (1-based) where ``e_t > threshold`` or ``e_t`` is not finite (NaN/inf from a
    divergent model), the valid prediction time is ``t* - 1``: the number of steps predicted within the
    threshold. If the error never passes the threshold it is ``T`` (a lower bound: the rollout was too
    short to see the failure). Multiply by ``dt`` for seconds.

    Args:
        pred, true: ``[B, T+1, n]`` rollouts (index 0 is the start, not counted).
        scale: unit per dimension ``[n]``; default: the std of ``true`` per dimension.
        threshold: positive error level, in units of ``scale``.

    Returns:
        int64 ``[B]`` in ``0..T``.
    """
    pred, true = _check_pair(pred, true, ndim=3)
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold must be a positive number, got {threshold!r}")
    if scale is None:
        scale = state_scale(true)
    T = true.shape[1] - 1
    if T < 1:
        raise ValueError("valid_prediction_time needs rollouts of at least one step ([B, T+1, n] with T >= 1)")
    err = squared_error(pred[:, 1:], true[:, 1:], scale).mean(-1).sqrt()  # [B, T]
    bad = ~(err <= threshold)  # NaN compares False, so NaN/inf count as failures
    first = torch.where(bad.any(1), bad.float().argmax(1), torch.full((bad.shape[0],), T))
    return first.to(torch.long)


def energy_error(
    pred: torch.Tensor, true: torch.Tensor, energy_fn: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    r"""RMSE over windows of the mechanical energy of predicted against true states, at every step.

    ``E_err[t] = sqrt(mean_b (E(pred[b, t]) - E(true[b, t]))^2)``. For a conservative setting (no
    friction, no force) ``E(true[b, t])`` is constant, so this is the predicted energy's drift.

    Args:
        pred, true: ``[B, T+1, n]`` rollouts (physical units).
        energy_fn: maps states ``[..., n]`` to energies ``[...]`` in J, e.g. ``CartPole(params).energy``
            of the *true* system.

    Returns:
        float64 ``[T+1]`` in J (``inf`` where a prediction is non-finite).
    """
    pred, true = _check_pair(pred, true, ndim=3)
    with torch.no_grad():
        e_pred = energy_fn(pred).to(torch.float64)
        e_true = energy_fn(true).to(torch.float64)
    if e_pred.shape != true.shape[:2]:
        raise ValueError(f"energy_fn must map [B, T+1, n] to [B, T+1], got {tuple(e_pred.shape)}")
    sq = (e_pred - e_true).pow(2)
    sq = torch.where(torch.isfinite(sq), sq, torch.full_like(sq, math.inf))
    return sq.mean(0).sqrt()


def parameter_error(identified: Mapping[str, Any], true: Any) -> dict[str, float]:
    """Error of identified physical constants.

    For each name in ``identified``: the relative error ``|est - true| / |true|``, or the absolute error
    ``|est - true|`` when the true value is 0 (e.g. a friction coefficient of a frictionless system).

    Args:
        identified: name -> estimated value (e.g. ``CartPole.identified()``).
        true: the true constants: a mapping or an object with those attributes (``CartPoleParams``).

    Returns:
        name -> error (float).
    """
    if not isinstance(identified, Mapping):
        raise TypeError(f"identified must be a mapping name -> value, got {type(identified).__name__}")
    true_map = true if isinstance(true, Mapping) else (true.to_dict() if hasattr(true, "to_dict") else vars(true))
    missing = sorted(set(identified) - set(true_map))
    if missing:
        raise ValueError(f"no true value for identified constants {missing}; known: {sorted(true_map)}")
    out = {}
    for name, est in identified.items():
        est_f, true_f = float(est), float(true_map[name])
        diff = abs(est_f - true_f)
        out[name] = diff / abs(true_f) if true_f != 0 else diff
    return out


def gaussian_nll(mean: torch.Tensor, var: torch.Tensor, target: torch.Tensor, scale: Any = None) -> torch.Tensor:
    r"""Mean Gaussian negative log-likelihood per element (nats), optionally in normalised units.

    ``NLL = mean(0.5 * (log(2 pi var) + (target - mean)^2 / var))`` with ``mean``, ``var`` and
    ``target`` divided by ``scale`` (``var`` by ``scale^2``) first when a scale is given, so that
    dimensions of different units weigh alike.

    Args:
        mean, var, target: ``[..., n]`` predictive mean, predictive variance (> 0) and observed values.
        scale: ``None`` or ``[n]``.

    Returns:
        float64 scalar (``inf`` if any mean/var is non-finite).
    """
    mean, target = _check_pair(mean, target)
    var = _as_tensor(var, "var").to(torch.float64)
    if var.shape != mean.shape:
        raise ValueError(f"var must have the shape of mean {tuple(mean.shape)}, got {tuple(var.shape)}")
    if (var[torch.isfinite(var)] <= 0).any():
        raise ValueError("var must be positive")
    if scale is not None:
        s = _check_scale(scale, mean.shape[-1])
        mean, target, var = mean / s, target / s, var / s**2
    nll = 0.5 * (torch.log(2 * math.pi * var) + (target - mean).pow(2) / var)
    nll = torch.where(torch.isfinite(nll), nll, torch.full_like(nll, math.inf))
    return nll.mean()


def interval_coverage(
    mean: torch.Tensor, var: torch.Tensor, target: torch.Tensor, levels: Sequence[float] = DEFAULT_LEVELS
) -> dict[float, float]:
    r"""Fraction of observed values inside the predicted central Gaussian intervals.

    For each level ``p``, the interval is ``mean +- z_p sqrt(var)`` with ``z_p = Phi^{-1}((1 + p) / 2)``;
    a calibrated model has coverage ``p``. Computed over every element (all windows and dimensions).

    Args:
        mean, var, target: ``[..., n]``.
        levels: probabilities in (0, 1).

    Returns:
        level -> observed coverage in [0, 1].
    """
    mean, target = _check_pair(mean, target)
    var = _as_tensor(var, "var").to(torch.float64)
    if var.shape != mean.shape:
        raise ValueError(f"var must have the shape of mean {tuple(mean.shape)}, got {tuple(var.shape)}")
    z = ((target - mean).abs() / var.sqrt()).reshape(-1)
    out = {}
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    for p in levels:
        if not 0 < float(p) < 1:
            raise ValueError(f"levels must be in (0, 1), got {p}")
        zp = normal.icdf(torch.tensor((1 + float(p)) / 2, dtype=torch.float64))
        inside = z <= zp  # NaN -> outside
        out[float(p)] = float(inside.double().mean())
    return out


def calibration_error(coverage: Mapping[float, float]) -> float:
    """Mean absolute difference between observed coverage and nominal level (0 = perfectly calibrated)."""
    if not coverage:
        raise ValueError("coverage must not be empty")
    return float(sum(abs(c - p) for p, c in coverage.items()) / len(coverage))


# --- model-level evaluation --------------------------------------------------------------------------


def _model_dtype_device(model: torch.nn.Module) -> tuple[torch.dtype, torch.device]:
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.dtype, t.device
    return torch.get_default_dtype(), torch.device("cpu")


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
    if not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon must be a positive int, got {horizon!r}")
    if isinstance(data, Mapping):
        if "states" not in data or "controls" not in data:
            raise ValueError("a batch must be a dict with 'states' [B, T+1, n] and 'controls' [B, T, m]")
        s, c = _as_tensor(data["states"], "states"), _as_tensor(data["controls"], "controls")
        if s.ndim != 3 or c.ndim != 3 or s.shape[0] != c.shape[0] or s.shape[1] != c.shape[1] + 1:
            raise ValueError(
                f"batch states [B, T+1, n] and controls [B, T, m] disagree: {tuple(s.shape)}, {tuple(c.shape)}"
            )
        if c.shape[1] < horizon:
            raise ValueError(f"the batch has {c.shape[1]} steps, fewer than the horizon {horizon}")
        s, c = s[:, : horizon + 1], c[:, :horizon]
    elif hasattr(data, "windows"):
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
    dtype, device = _model_dtype_device(model)
    was_training = model.training
    model.eval()
    try:
        outs = []
        for i in range(0, s.shape[0], chunk):
            x0 = s[i : i + chunk, 0].to(dtype=dtype, device=device)
            u = c[i : i + chunk].to(dtype=dtype, device=device)
            outs.append(model.rollout(x0, u).cpu())
        return torch.cat(outs, 0)
    finally:
        model.train(was_training)


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
    dtype, device = _model_dtype_device(model)
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
    hs = sorted({int(h) for h in horizons})
    if not hs or hs[0] < 1:
        raise ValueError(f"horizons must be positive steps, got {list(horizons)}")
    H = hs[-1]
    if scale is None:
        scale = state_scale(data) if not isinstance(data, Mapping) else state_scale(data["states"])
    scale = _check_scale(scale, _data_state_dim(data))
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
        ident = _identified(model)
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
        return int(_as_tensor(data["states"], "states").shape[-1])
    return int(data.states.shape[-1])


def _identified(model: Any) -> dict[str, float]:
    """Identified constants of a model's physics (explicit field or a hybrid's physics), if any."""
    seen: dict[str, float] = {}
    for mod in model.modules():
        if mod is model:
            continue
        ident = getattr(mod, "identified", None)
        if callable(ident) and getattr(mod, "learnable", ()):
            for k, v in ident().items():
                seen.setdefault(k, float(v))
    return seen
