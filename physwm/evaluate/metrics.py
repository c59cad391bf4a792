"""Metrics as pure functions of predicted and true tensors (no model, no data container).

Each metric has one definition here that can be checked against hand-computed values; the model-level
functions of :mod:`physwm.evaluate.model` cut windows out of data, run the model and call these.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

__all__ = [
    "DEFAULT_HORIZONS",
    "DEFAULT_VPT_THRESHOLD",
    "as_tensor",
    "check_pair",
    "check_scale",
    "state_scale",
    "squared_error",
    "mse_per_dim",
    "rmse_vs_horizon",
    "valid_prediction_time",
    "energy_error",
    "parameter_error",
]

#: Open-loop horizons (steps) at which rollout errors are reported.
DEFAULT_HORIZONS: tuple[int, ...] = (1, 10, 50, 100, 200)
#: Normalised error (RMS over state dimensions, in units of ``scale``) beyond which a prediction is invalid.
DEFAULT_VPT_THRESHOLD: float = 0.5


# --- helpers -----------------------------------------------------------------------------------------


def as_tensor(v: Any, name: str) -> torch.Tensor:
    if isinstance(v, torch.Tensor):
        return v
    try:
        return torch.as_tensor(v)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{name} must be a tensor or array, got {type(v).__name__}") from err


def check_pair(pred: torch.Tensor, true: torch.Tensor, ndim: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    pred = as_tensor(pred, "pred").to(torch.float64)
    true = as_tensor(true, "true").to(torch.float64)
    if pred.shape != true.shape:
        raise ValueError(f"pred and true must have the same shape, got {tuple(pred.shape)} and {tuple(true.shape)}")
    if ndim is not None and pred.ndim != ndim:
        raise ValueError(f"expected [B, T+1, n] rollouts ({ndim} dims), got shape {tuple(pred.shape)}")
    if pred.ndim == 0 or pred.numel() == 0:
        raise ValueError(f"cannot compute an error on empty predictions of shape {tuple(pred.shape)}")
    if not torch.isfinite(true).all():
        raise ValueError("the true states contain NaN or inf (padding must be removed before evaluating)")
    return pred, true


def check_scale(scale: Any, n: int) -> torch.Tensor:
    s = as_tensor(scale, "scale").to(torch.float64).reshape(-1)
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
    s = as_tensor(states, "states").to(torch.float64)
    if lengths is not None and s.ndim == 3:
        lengths = as_tensor(lengths, "lengths").to(torch.long)
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
    pred, true = check_pair(pred, true)
    err = pred - true
    if scale is not None:
        err = err / check_scale(scale, true.shape[-1])
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
    pred, true = check_pair(pred, true, ndim=3)
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
    pred, true = check_pair(pred, true, ndim=3)
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
    pred, true = check_pair(pred, true, ndim=3)
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
