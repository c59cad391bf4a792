"""Identification from noisy observations: multiple shooting (:func:`shooting_constants`) and the noise level
(:func:`estimate_obs_noise`).

A one-step loss on noisy states regresses noisy changes on noisy inputs: the noise of a state enters both the
input and (with the opposite sign) the target, the classic errors-in-variables bias (on the CartPole with
friction at 1% noise, the one-step fit's viscous friction is 4.5% off). Multiple shooting removes it: each
episode is cut into segments of ``H`` transitions, every segment gets an initial state of its own, a free
unknown fitted together with the physical constants; the model's rollout from it is compared with the noisy
observations of the segment (each dimension weighted by ``1 / noise std``), and a continuity penalty ties the
end of each segment's rollout to the next segment's initial state (its weight ``continuity`` in the same
units; the last segment of an episode meets its last observation instead). The states are never taken from
the data as exact, so no noise sits in a model input: this is the maximum-likelihood (output-error) estimate
of the constants under Gaussian observation noise, the continuity penalty standing in for the one long
simulation a chaotic system does not allow.

The unknowns (``p`` constants and ``K * n`` segment states, thousands) are solved by Levenberg-Marquardt with a
sparse Jacobian: a segment's residuals depend on its own state, the next one's and the constants only, so the
normal equations are sparse and ``scipy.sparse.linalg.spsolve`` solves them in milliseconds. The Jacobian is
taken by forward differences on a float64 copy of the model: ``n + p + 1`` batched rollouts of all segments
(one perturbation of each state dimension moves every segment at once).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from torch import nn

from ..checks import noise_levels, positive_int
from ..data import EpisodeData
from ..evaluate import learnable_constants

__all__ = [
    "shooting_constants",
    "estimate_obs_noise",
    "shooting_segments",
    "resolve_obs_noise",
    "identify_noisy_constants",
]

# the normal-scale constant of a Gaussian's median absolute deviation, and Var(4th difference) / Var(noise)
_MAD_TO_STD = 1.482602218505602
_FOURTH_DIFF_VAR = 70.0


def estimate_obs_noise(data: Any, state_dim: int) -> np.ndarray:
    """The observation noise ``[n]`` (standard deviations, physical units) of episodes, estimated from them.

    The fourth differences of a smooth signal sampled finely are almost zero, those of white noise of std
    ``s`` have std ``sqrt(70) * s``; a robust spread (the median absolute deviation) of every episode's fourth
    differences ignores the few steps where the motion is not smooth (a friction force switching sign).

    Args:
        data: Trajectories or a dict of arrays (see :class:`~physwm.data.EpisodeData`).
        state_dim: n.

    Raises:
        ValueError: no episode has the 5 states a fourth difference needs.
    """
    d = EpisodeData(data, "data", state_dim, _control_dim(data), "estimate_obs_noise")
    s = d.states.detach().cpu().double().numpy()
    L = d.lengths.numpy() if d.lengths is not None else np.full(s.shape[0], s.shape[1] - 1)
    diffs = [np.diff(s[i, : L[i] + 1], n=4, axis=0) for i in range(s.shape[0]) if L[i] >= 4]
    if not diffs:
        raise ValueError("estimating the observation noise needs episodes of at least 4 transitions")
    d4 = np.concatenate(diffs)
    mad = np.median(np.abs(d4 - np.median(d4, axis=0)), axis=0)
    return mad * _MAD_TO_STD / math.sqrt(_FOURTH_DIFF_VAR)


def _control_dim(data: Any) -> int:
    if hasattr(data, "control_dim"):
        return int(data.control_dim)
    c = data.get("controls") if isinstance(data, dict) else None
    return 0 if c is None else int(np.shape(c)[-1])


def shooting_segments(
    states: torch.Tensor, controls: torch.Tensor, lengths: torch.Tensor | None, horizon: int
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Episodes cut into consecutive segments of ``horizon`` transitions (an episode's last ``L mod H`` ones
    are dropped).

    Returns:
        ``(obs [K, H+1, n], controls [K, H, m], next [K])``: segment ``k``'s observations (its last one is
        the next segment's first), its controls and the index of the next segment of its episode (-1 for
        the last).
    """
    H = positive_int(horizon, "horizon")
    N, T = controls.shape[:2]
    L = lengths.cpu().numpy() if lengths is not None else np.full(N, T)
    obs, ctl, nxt = [], [], []
    for i in range(N):
        k = int(L[i]) // H
        for j in range(k):
            obs.append(states[i, j * H : (j + 1) * H + 1])
            ctl.append(controls[i, j * H : (j + 1) * H])
            nxt.append(len(nxt) + 1 if j + 1 < k else -1)
    if not obs:
        raise ValueError(f"no episode holds a segment of {H} transitions")
    return torch.stack(obs), torch.stack(ctl), np.asarray(nxt, dtype=np.int64)


def _residuals(model, s0, u, y, nxt, w, cont, targets=None):
    """Residual blocks: observations ``[K, H, n]`` (steps 0..H-1) and segment ends ``[K, n]`` (the next
    segment's state taken from ``targets``, by default ``s0``)."""
    pred = model.rollout(s0, u, warn_divergence=False)
    r_obs = (pred[:, :-1] - y[:, :-1]) * w
    targets = s0 if targets is None else targets
    end_target = torch.where(torch.as_tensor(nxt >= 0)[:, None], targets[torch.as_tensor(np.maximum(nxt, 0))],
                             y[:, -1])  # fmt: skip
    scale = torch.where(torch.as_tensor(nxt >= 0)[:, None], torch.full_like(w, cont), torch.ones_like(w))
    r_end = (pred[:, -1] - end_target) * w * scale
    return r_obs, r_end, pred


@torch.no_grad()
def shooting_constants(
    model: nn.Module,
    data: Any,
    obs_noise: Any,
    *,
    horizon: int = 20,
    iterations: int = 20,
    continuity: float = 10.0,
    rtol: float = 1e-7,
) -> dict[str, Any]:
    """Fit a model's learnable physical constants to noisy episodes by multiple shooting (module docstring).

    Args:
        model: a WorldModel with learnable constants (an explicit model, a hybrid's physics; the networks are
            held fixed); the constants found are written into it.
        data: the episodes (Trajectories or a dict of arrays), noisy observations of the states.
        obs_noise: the observation noise's standard deviations ``[n]`` (physical units; a scalar for all), the
            weights of the residuals; zeros are floored at 1e-9 of the largest.
        horizon: transitions per segment ``H``.
        iterations: at most this many Levenberg-Marquardt steps (accepted or rejected).
        continuity: weight of the continuity penalty relative to an observation's.
        rtol: stop when a step lowers the objective by less than this fraction.

    Returns:
        ``{"iterations", "objective_before", "objective_after", "segments", "horizon", "states",
        "residual_std"}``: the mean square weighted residual before and after, the segment count, the fitted
        segment initial states ``[K, n]`` (float64 tensor) and the standard deviation ``[n]`` of the fitted
        model's errors at the observations (physical units, corrected for the fitted states and constants):
        an estimate of the observation noise once the model fits.

    Raises:
        ValueError: the model has no learnable constants, bad noise levels, no segment of ``horizon`` steps.
    """
    consts = learnable_constants(model)
    if not consts:
        raise ValueError(f"{type(model).__name__} has no learnable physical constants to fit by shooting")
    n, m = model.state_dim, model.control_dim
    sigma = noise_levels(obs_noise, "obs_noise", n)
    if not sigma.max() > 0:
        raise ValueError("obs_noise must be positive in some dimension for a shooting fit")
    sigma = np.maximum(sigma, 1e-9 * sigma.max())
    d = EpisodeData(data, "data", n, m, type(model).__name__, getattr(model, "dt", None))
    y, u, nxt = shooting_segments(d.states.double(), d.controls.double(), d.lengths, horizon)
    work = copy.deepcopy(model).double().eval()
    raws = [(mod.raw[name], type(mod).constants[name].floor) for _, mod, name in learnable_constants(work)]
    K, H, p = y.shape[0], u.shape[1], len(raws)
    w = torch.as_tensor(1.0 / sigma, dtype=torch.float64)
    s0 = y[:, 0].clone()
    for raw, floor in raws:
        raw.clamp_(min=floor)

    def objective(s: torch.Tensor) -> tuple[float, np.ndarray]:
        r_obs, r_end, _ = _residuals(work, s, u, y, nxt, w, continuity)
        r = torch.cat([r_obs.reshape(-1), r_end.reshape(-1)]).numpy()
        v = float(np.mean(r**2))
        return (v if math.isfinite(v) else math.inf), r

    loss, r = objective(s0)
    before, damping, steps = loss, 1e-3, 0
    while steps < iterations and math.isfinite(loss):
        J = _jacobian(work, raws, s0, u, y, nxt, w, continuity, r)
        JT = J.T.tocsr()
        A, g = (JT @ J).tocsc(), JT @ r
        diag = A.diagonal() + 1e-12
        x = np.array([float(raw) for raw, _ in raws])
        floors = np.array([f for _, f in raws])
        improved = False
        while steps < iterations:
            steps += 1
            delta = spla.spsolve((A + sp.diags(damping * diag)).tocsc(), -g)
            if not np.isfinite(delta).all():
                damping *= 10
                continue
            trial = np.maximum(x + delta[:p], floors)
            for (raw, _), v in zip(raws, trial):
                raw.fill_(float(v))
            s_trial = s0 + torch.from_numpy(delta[p:].reshape(K, n))
            new, r_new = objective(s_trial)
            if new < loss:
                improved, damping = True, max(damping / 10, 1e-12)
                break
            damping *= 10
            if damping > 1e8:
                break
        if not improved:
            for (raw, _), v in zip(raws, x):
                raw.fill_(float(v))
            break
        gain, loss, r, s0 = loss - new, new, r_new, s_trial
        if gain <= rtol * (loss + gain):
            break
    for (_, mod, name), (raw, _) in zip(learnable_constants(model), raws):
        mod.raw[name].copy_(raw.to(mod.raw[name].dtype))
    r_obs = r[: K * H * n].reshape(K * H, n) / w.numpy()  # physical units
    dof = K * H * n / max(K * H * n - K * n - p, 1)
    return {"iterations": steps, "objective_before": before, "objective_after": loss, "segments": K,
            "horizon": H, "states": s0, "residual_std": np.sqrt(np.mean(r_obs**2, axis=0) * dof)}  # fmt: skip


def _jacobian(work, raws, s0, u, y, nxt, w, cont, r0) -> sp.csr_matrix:
    """The sparse Jacobian of the residuals in ``[constants (p), segment states (K * n)]`` (forward differences)."""
    K, H, n = y.shape[0], u.shape[1], y.shape[-1]
    p = len(raws)
    R = K * H * n + K * n

    def flat(s: torch.Tensor) -> np.ndarray:
        r_obs, r_end, _ = _residuals(work, s, u, y, nxt, w, cont)
        return torch.cat([r_obs.reshape(-1), r_end.reshape(-1)]).numpy()

    cols = []
    for raw, _ in raws:  # dense columns of the constants
        x0 = float(raw)
        h = 1e-6 * max(1.0, abs(x0))
        raw.fill_(x0 + h)
        cols.append((flat(s0) - r0) / h)
        raw.fill_(x0)
    rows_i, cols_i, vals = [], [], []
    dense = np.stack(cols, 1)
    ri, ci = np.nonzero(dense)
    rows_i.append(ri), cols_i.append(ci), vals.append(dense[ri, ci])
    # a segment's residuals depend on its own state: perturbing dimension j of every state at once (the next
    # states held as targets) gives the j-th column of every segment's block
    seg_obs_rows = np.arange(K * H * n).reshape(K, H, n)
    seg_end_rows = K * H * n + np.arange(K * n).reshape(K, n)
    has_next = nxt >= 0
    for j in range(n):
        h = 1e-6 * torch.clamp(s0[:, j].abs(), min=1.0)
        s = s0.clone()
        s[:, j] += h
        r_obs, r_end, _ = _residuals(work, s, u, y, nxt, w, cont, targets=s0)
        r_obs0 = r0[: K * H * n].reshape(K, H, n)
        r_end0 = r0[K * H * n :].reshape(K, n)
        hn = h.numpy()
        d_obs = (r_obs.numpy() - r_obs0) / hn[:, None, None]
        d_end = (r_end.numpy() - r_end0) / hn[:, None]
        col = p + np.arange(K) * n + j
        rows_i.append(seg_obs_rows.reshape(K, -1).ravel())
        cols_i.append(np.repeat(col, H * n))
        vals.append(d_obs.reshape(K, -1).ravel())
        rows_i.append(seg_end_rows.ravel())
        cols_i.append(np.repeat(col, n))
        vals.append(d_end.ravel())
    # the exact dependence of the continuity rows on the next segment's state: -cont * w_i on its own dimension
    k_idx = np.flatnonzero(has_next)
    wn = w.numpy()
    for i in range(n):
        rows_i.append(seg_end_rows[k_idx, i])
        cols_i.append(p + nxt[k_idx] * n + i)
        vals.append(np.full(k_idx.size, -cont * wn[i]))
    J = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows_i), np.concatenate(cols_i))), shape=(R, p + K * n))
    return J.tocsr()


def resolve_obs_noise(obs_noise: Any, data: Any, state_dim: int) -> np.ndarray | str | None:
    """What ``fit(..., obs_noise=...)`` means for this data: standard deviations ``[n]``, ``"estimate"`` or
    ``None`` (exact data: the plain loss).

    ``None`` reads the noise the data records (:attr:`physwm.data.Trajectories.obs_noise`, or a dict's
    ``"obs_noise"`` entry) and is ``None`` when it records none; ``"estimate"`` stays (see
    :func:`identify_noisy_constants`); numbers are checked (a scalar or one per state, finite, ``>= 0``); all
    zeros mean exact data.

    Raises:
        ValueError: naming ``obs_noise``: an unknown string, NaN, a negative level, the wrong length.
    """
    if obs_noise is None:
        recorded = getattr(data, "obs_noise", None)
        if recorded is None and isinstance(data, dict):
            recorded = data.get("obs_noise")
        if recorded is None:
            return None
        obs_noise = recorded
    if isinstance(obs_noise, str):
        if obs_noise != "estimate":
            raise ValueError(f"obs_noise must be None, 'estimate' or standard deviations, got {obs_noise!r}")
        return obs_noise
    sigma = noise_levels(obs_noise, "obs_noise", state_dim)
    return sigma if sigma.max() > 0 else None


def identify_noisy_constants(model: nn.Module, data: Any, obs_noise: np.ndarray | str, horizon: int) -> dict:
    """The constants of ``model`` from noisy ``data`` by multiple shooting (:func:`shooting_constants`).

    With ``obs_noise="estimate"`` the noise is first estimated from the data's fourth differences
    (:func:`estimate_obs_noise`, which overrates it where the controls change every step), then once more from
    the errors of the fitted model at the observations, with which the constants are fitted again.

    Returns:
        :func:`shooting_constants`' record (without the states) plus ``"obs_noise"``, the standard deviations
        used (list).
    """
    n = model.state_dim
    if isinstance(obs_noise, str):
        out = shooting_constants(model, data, estimate_obs_noise(data, n), horizon=horizon)
        sigma = out["residual_std"]
    else:
        sigma = np.asarray(obs_noise, dtype=np.float64)
    out = shooting_constants(model, data, sigma, horizon=horizon)
    out.pop("states")
    return {**out, "residual_std": out["residual_std"].tolist(), "obs_noise": sigma.tolist()}
