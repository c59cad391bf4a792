r"""How well data pin down a model's physical constants: :func:`identifiability`.

A model's learnable constants (the parameters of its :class:`~physwm.systems.System` modules: an explicit
model's field, a hybrid's physics) are fitted by least squares on the model's own loss, the residuals

.. math:: r = (\hat x_{t+k} - x_{t+k}) / \sigma_\Delta

of open-loop predictions over windows of the data, in units of the one-step change's spread (see
:meth:`~physwm.models.WorldModel.scaled_error`). Near the fitted values the loss in the constants ``c`` is
the quadratic form of the **Gauss-Newton Hessian** :math:`H = J^\top J`, with :math:`J = \partial r /
\partial c` (taken by finite differences in float64 on a copy of the model, which works for every
integrator and field). From it:

* the eigen-spectrum and **condition number** of ``H`` in the constants' own scales (``value / scale``,
  the units the optimiser works in): a large condition number means some combination of constants barely
  changes the predictions;
* **standard errors** :math:`\sqrt{\sigma^2 [H^{-1}]_{ii}}`, with :math:`\sigma^2` the residual variance
  (floored at ``resolution**2``: noiseless data fitted to round-off do not make every constant exact),
  and 95% **intervals** ``value +- 1.96 std`` clipped at the constant's bound;
* **correlations** of the estimates: pairs with ``|corr| >= 0.9`` **trade off** (e.g. viscous and
  Coulomb friction when the cart always moves at about the same speed);
* the constants the data **cannot pin down**: a standard error above ``tolerance`` times the larger of
  the value and the constant's scale. Each gets a reason: either the predictions barely depend on it
  (its own sensitivity is too small: a cart that never moves says nothing of its friction), or it
  trades off against another constant (only their combination is determined).

:func:`~physwm.train.fit` runs this after training a model with learnable constants and warns with
:class:`UnidentifiableWarning` naming the constants the data cannot pin down.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checks import finite_float, positive_int
from ..systems import System
from .model import eval_windows

__all__ = [
    "Identifiability",
    "UnidentifiableWarning",
    "identifiability",
    "learnable_constants",
    "loss_residuals",
    "constants_jacobian",
    "analyse_jacobian",
]

#: Two-sided 95% quantile of the normal distribution.
_Z95 = 1.959963984540054
#: Estimates with ``|corr| >= TRADE_OFF`` are reported as trading off.
TRADE_OFF = 0.9


class UnidentifiableWarning(UserWarning):
    """The data cannot pin down some physical constants: their fitted values are guesses, not measurements."""


def learnable_constants(model: nn.Module) -> list[tuple[str, System, str]]:
    """``(label, System module, constant name)`` of every learnable constant inside ``model``.

    The label is the constant's name, prefixed by the module's path when several System modules hold
    constants (an ensemble of hybrids).
    """
    found = [(path, mod) for path, mod in model.named_modules() if isinstance(mod, System) and mod.learnable]
    many = len(found) > 1
    return [
        (f"{path}.{name}" if many else name, mod, name)
        for path, mod in found
        for name in mod.learnable
        if mod.raw[name].requires_grad
    ]


@dataclass
class Identifiability:
    """What the data determine of a model's constants (see the module docstring).

    Attributes:
        names: the constants (labels of :func:`learnable_constants`).
        values: their fitted values, physical units.
        std: standard errors, physical units (``inf``: not determined at all).
        low, high: 95% intervals, clipped at each constant's bound.
        scales: each constant's typical size (``Constant.scale``), physical units.
        eigenvalues: of the Gauss-Newton Hessian ``J^T J`` in scaled units (``value / scale``), ascending.
        eigenvectors: the matching unit vectors (``eigenvectors[k][i]``: weight of constant ``i``).
        condition_number: largest over smallest eigenvalue (``inf`` if singular).
        correlation: ``[p][p]`` correlations of the estimates (``nan`` where a standard error is ``inf``).
        sensitivity: RMS change of the residuals per change of each constant by its scale, alone.
        residual_rms: RMS of the residuals at the fitted values (units of the one-step change's spread).
        sigma: the residual spread used for the errors, ``max(residual RMS, resolution)``.
        residuals: number of residuals (windows x steps x state entries).
        unidentifiable: name -> why, for the constants the data cannot pin down.
        trade_offs: ``(a, b, corr)`` for every pair with ``|corr| >= 0.9``.
    """

    names: list[str]
    values: list[float]
    std: list[float]
    low: list[float]
    high: list[float]
    scales: list[float]
    eigenvalues: list[float]
    eigenvectors: list[list[float]]
    condition_number: float
    correlation: list[list[float]]
    sensitivity: list[float]
    residual_rms: float
    sigma: float
    residuals: int
    unidentifiable: dict[str, str] = field(default_factory=dict)
    trade_offs: list[tuple[str, str, float]] = field(default_factory=list)

    @property
    def identifiable(self) -> bool:
        """True if the data pin down every constant."""
        return not self.unidentifiable

    def interval(self, name: str) -> tuple[float, float]:
        """The 95% interval of one constant."""
        i = self._index(name)
        return self.low[i], self.high[i]

    def _index(self, name: str) -> int:
        if name not in self.names:
            raise ValueError(f"unknown constant {name!r}; valid: {self.names}")
        return self.names.index(name)

    def warning(self) -> str:
        """The warning text naming the constants the data cannot pin down (``""`` if none)."""
        if not self.unidentifiable:
            return ""
        what = "; ".join(f"{n} = {self.values[self._index(n)]:.4g}: {why}" for n, why in self.unidentifiable.items())
        fit = f"the fit leaves residuals of RMS {self.residual_rms:.2g} (units of the one-step change's spread)"
        return (
            f"the data cannot pin down {', '.join(self.unidentifiable)} ({what}; {fit}). These values are guesses, "
            "not measurements: collect data that excite them, or fix them (learnable=...)."
        )

    def summary(self) -> str:
        """A few lines: each constant with its interval, the condition number, the pairs that trade off."""
        lines = [f"identifiability of {len(self.names)} constants ({self.residuals} residuals, "
                 f"residual RMS {self.residual_rms:.3g}; condition number {self.condition_number:.3g}):"]  # fmt: skip
        for i, n in enumerate(self.names):
            flag = "  NOT IDENTIFIABLE" if n in self.unidentifiable else ""
            lines.append(f"  {n:>14s} = {self.values[i]:.6g}  95% [{self.low[i]:.6g}, {self.high[i]:.6g}]{flag}")
        for a, b, r in self.trade_offs:
            lines.append(f"  {a} and {b} trade off (correlation {r:+.3f})")
        if self.unidentifiable:
            lines.append("  warning: " + self.warning())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (infinities as strings are avoided: ``inf`` stays a float)."""
        d = dataclasses.asdict(self)
        d["trade_offs"] = [list(t) for t in self.trade_offs]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Identifiability:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["trade_offs"] = [tuple(t) for t in d.get("trade_offs", [])]
        return cls(**d)


def loss_residuals(model: nn.Module, states: torch.Tensor, controls: torch.Tensor) -> torch.Tensor:
    """The residuals ``[W * H * n]`` whose mean square is a WorldModel's data loss: open-loop predictions over
    windows ``states [W, H+1, n]``, ``controls [W, H, m]``, in units of the one-step change's spread."""
    pred = model.rollout(states[:, 0], controls)[:, 1:]
    return model.scaled_error(pred, states[:, 1:]).reshape(-1)


@torch.no_grad()
def constants_jacobian(
    model: nn.Module, states: torch.Tensor, controls: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`loss_residuals` and their Jacobian in the model's learnable constants, by finite differences.

    Forward differences of step ``1e-6 * max(1, |raw|)`` in each constant's scaled units (``raw = value /
    scale``; upwards, so a constant on its lower bound is differentiated inside its domain): ``p + 1``
    forward passes, relative accuracy about 1e-6 in float64. Run it on a float64 copy of the model: in
    float32 the differences are round-off. The model is left as it was.

    Returns:
        ``(J [N, p], r [N])``: ``J[:, i]`` is the change of the residuals per unit of ``raw_i``, ``p`` the
        constants of :func:`learnable_constants` in their order.
    """
    consts = learnable_constants(model)
    batched = _vmapped_jacobian(model, consts, states, controls)
    if batched is not None:
        return batched
    r0 = loss_residuals(model, states, controls)
    cols = []
    for _, mod, name in consts:
        raw = mod.raw[name]
        x0 = float(raw)
        h = 1e-6 * max(1.0, abs(x0))
        raw.fill_(x0 + h)
        cols.append((loss_residuals(model, states, controls) - r0) / h)
        raw.fill_(x0)
    return torch.stack(cols, 1), r0


class _Residuals(nn.Module):
    """:func:`loss_residuals` of ``model`` as a module, for ``torch.func.functional_call``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, states: torch.Tensor, controls: torch.Tensor) -> torch.Tensor:
        return loss_residuals(self.model, states, controls)


def _vmapped_jacobian(model: nn.Module, consts: list, states: torch.Tensor,
                      controls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:  # fmt: skip
    """:func:`constants_jacobian`'s ``p + 1`` forward passes as one ``torch.func.vmap`` over the constants (the
    same numbers; 1.5-2x faster, the passes being mostly per-operation overhead), or ``None`` if the model does not
    go through vmap (a value steering control flow, ``.item()``): then the passes run one by one."""
    wrapper = _Residuals(model)
    names = {id(p): n for n, p in wrapper.named_parameters()}
    keys = [names.get(id(mod.raw[name])) for _, mod, name in consts]
    if None in keys:
        return None
    x0 = torch.stack([mod.raw[name].detach() for _, mod, name in consts])
    h = 1e-6 * x0.abs().clamp(min=1.0)
    raws = torch.cat([x0[None], x0[None] + torch.diag(h)])  # [p + 1, p]: as is, then each constant up by its step

    def residuals(raw: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(wrapper, dict(zip(keys, raw.unbind())), (states, controls), strict=False)

    try:
        r = torch.func.vmap(residuals)(raws)
    except Exception:  # noqa: BLE001 - any failure inside vmap: the one-by-one passes give the same numbers
        return None
    return ((r[1:] - r[0]) / h[:, None]).T.contiguous(), r[0]


@torch.no_grad()
def identifiability(
    model: nn.Module,
    data: Any,
    horizon: int = 1,
    *,
    max_windows: int | None = 4096,
    resolution: float = 1e-3,
    tolerance: float = 0.1,
    seed: int = 0,
) -> Identifiability:
    """Identifiability of a model's learnable constants on data (see the module docstring).

    Args:
        model: a WorldModel with learnable physical constants (explicit, hybrid), normalised on its training
            data (its ``delta_norm`` sets the residuals' units).
        data: Trajectories or a batch dict ``{"states": [B, T+1, n], "controls": [B, T, m]}``.
        horizon: steps per window of the residuals (the training loss's horizon).
        max_windows: use at most this many windows (drawn with ``seed``; ``None``: all).
        resolution: smallest residual spread assumed (units of the one-step change's spread): data fitted
            to round-off still only determine the constants to this precision.
        tolerance: a constant is not pinned down when its standard error exceeds this fraction of the
            larger of its value and its scale.
        seed: seed of the window draw.

    Returns:
        An :class:`Identifiability`.

    Raises:
        ValueError: the model has no learnable constants, or bad arguments.
    """
    horizon = positive_int(horizon, "horizon")
    resolution = finite_float(resolution, "resolution", positive=True)
    tolerance = finite_float(tolerance, "tolerance", positive=True)
    if not learnable_constants(model):
        raise ValueError(f"{type(model).__name__} has no learnable physical constants")
    work = copy.deepcopy(model).double().eval()
    consts = learnable_constants(work)
    w = eval_windows(data, horizon, max_windows=max_windows, seed=seed)
    device = next(work.parameters()).device
    s = torch.as_tensor(w["states"]).to(torch.float64).to(device)
    c = torch.as_tensor(w["controls"]).to(torch.float64).to(device)
    J, r0 = constants_jacobian(work, s, c)
    scales, values, floors = [], [], []
    for _, mod, name in consts:
        spec = type(mod).constants[name]
        scales.append(spec.scale)
        values.append(spec.scale * max(float(mod.raw[name]), spec.floor))
        floors.append(spec.floor * spec.scale)
    names = [n for n, _, _ in consts]
    return analyse_jacobian(J.cpu().numpy(), r0.cpu().numpy(), names, values, scales, floors, resolution, tolerance)


def analyse_jacobian(J: np.ndarray, r: np.ndarray, names: list[str], values: list[float], scales: list[float],
             floors: list[float], resolution: float, tolerance: float) -> Identifiability:  # fmt: skip
    """The :class:`Identifiability` of constants from the Jacobian ``J [N, p]`` (per unit of ``value / scale``) of
    residuals ``r [N]`` at the values ``values`` (physical units), with their ``scales`` and lower bounds ``floors``
    (see :func:`identifiability`, which computes ``J`` and ``r``; callers that already hold them use this)."""
    N, p = J.shape
    scales_a = np.asarray(scales)
    rms = float(np.sqrt(np.mean(r**2))) if N else math.nan
    sigma = max(float(np.sqrt(np.sum(r**2) / max(N - p, 1))), resolution)
    H = J.T @ J
    lam, vec = np.linalg.eigh(H)
    lam_max = float(lam[-1]) if p else 0.0
    null = lam <= max(lam_max, 1e-300) * 1e-13
    inv_lam = np.where(null, 0.0, 1.0 / np.where(null, 1.0, lam))
    cov = sigma**2 * (vec * inv_lam) @ vec.T  # pseudo-inverse, scaled units
    std_scaled = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    in_null = (np.abs(vec[:, null]) > 1e-6).any(axis=1) if null.any() else np.zeros(p, bool)
    std_scaled = np.where(in_null, np.inf, std_scaled)
    std = std_scaled * scales_a
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(np.sqrt(np.diag(cov)), np.sqrt(np.diag(cov)))
    corr[~np.isfinite(corr)] = np.nan
    corr[in_null, :] = np.nan
    corr[:, in_null] = np.nan
    np.fill_diagonal(corr, 1.0)
    col = np.sqrt(np.sum(J**2, axis=0))
    sensitivity = col / math.sqrt(max(N, 1))
    alone = np.where(col > 0, sigma / np.where(col > 0, col, 1.0), np.inf) * scales_a  # std if it were the only one
    values_a = np.asarray(values)
    size = np.maximum(np.abs(values_a), scales_a)
    low = np.maximum(values_a - _Z95 * std, floors)
    high = values_a + _Z95 * std
    trade = [
        (names[i], names[j], float(corr[i, j]))
        for i in range(p)
        for j in range(i + 1, p)
        if np.isfinite(corr[i, j]) and abs(corr[i, j]) >= TRADE_OFF
    ]
    why: dict[str, str] = {}
    for i, n in enumerate(names):
        if not std[i] <= tolerance * size[i]:
            if not alone[i] <= tolerance * size[i]:
                why[n] = (
                    f"the predictions barely depend on it (changing it by {scales[i]:.3g} moves them by "
                    f"{sensitivity[i]:.2g} RMS, in units of the one-step change's spread)"
                )
            else:
                others = [(abs(corr[i, j]), j) for j in range(p) if j != i and np.isfinite(corr[i, j])]
                partner = names[max(others)[1]] if others else "the other constants"
                rho = f" (correlation {corr[i, max(others)[1]]:+.3f})" if others else ""
                why[n] = f"it trades off against {partner}{rho}: the data determine only a combination of them"
            if np.isfinite(std[i]):
                why[n] += f"; standard error {std[i]:.3g}"
    cond = float(lam_max / lam[0]) if p and lam[0] > 0 else math.inf
    return Identifiability(
        names=list(names), values=[float(v) for v in values_a], std=[float(v) for v in std],
        low=[float(v) for v in low], high=[float(v) for v in high], scales=[float(v) for v in scales_a],
        eigenvalues=[float(v) for v in lam], eigenvectors=[[float(x) for x in vec[:, k]] for k in range(p)],
        condition_number=cond, correlation=[[float(x) for x in row] for row in corr],
        sensitivity=[float(v) for v in sensitivity], residual_rms=rms, sigma=sigma, residuals=int(N),
        unidentifiable=why, trade_offs=trade,
    )  # fmt: skip
