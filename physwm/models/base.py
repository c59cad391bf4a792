"""The WorldModel interface: what fit, evaluate, plot and control see.

A batch, the one thing :func:`physwm.train.fit` hands to :meth:`WorldModel.loss`, is a dict

* ``"states"``: ``[B, H+1, n]`` consecutive states (physical units), the first is the start;
* ``"controls"``: ``[B, H, m]`` controls held over each step (forces in N for CartPole; ``m = 0`` for an
  autonomous system).

``H = 1`` gives the one-step loss; ``H > 1`` the multi-step (shooting) loss over an open-loop rollout.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
from torch import nn

from ..integrators.base import DivergenceWarning, all_finite, report_divergence

__all__ = ["WorldModel", "Normalizer", "check_batch", "DivergenceWarning", "report_divergence", "quiet_rollout",
           "check_dims"]


def quiet_rollout(model: nn.Module, x0: torch.Tensor, u: torch.Tensor, **kwargs) -> torch.Tensor:
    """``model.rollout(x0, u)`` without the divergence warning, for callers that score or handle divergence
    themselves (evaluation, planning, training). Models whose ``rollout`` predates the ``warn_divergence``
    keyword (user subclasses) are called without it."""
    try:
        return model.rollout(x0, u, warn_divergence=False, **kwargs)
    except TypeError as err:
        if "warn_divergence" not in str(err):
            raise
        return model.rollout(x0, u, **kwargs)


class Normalizer(nn.Module):
    """Per-dimension affine normalisation ``(v - mean) / std`` stored as buffers (saved with the model).

    Args:
        dim: size of the last dimension.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, values: torch.Tensor, min_std: float = 1e-6) -> Normalizer:
        """Set mean and std from ``values [..., dim]``.

        A dimension whose spread is below ``min_std`` (a constant in the data, such as a dummy zero control)
        is centred but not scaled (std 1), so values it takes later are not amplified by ``1 / min_std``.
        ``dim = 0`` (an autonomous system's control) has nothing to fit.
        """
        if self.mean.numel() == 0:
            return self
        v = values.reshape(-1, values.shape[-1]).to(self.mean.dtype)
        if v.shape[0] == 0:
            raise ValueError("cannot fit normalisation statistics on an empty dataset")
        if not torch.isfinite(v).all():
            raise ValueError("cannot fit normalisation statistics: the data contains NaN or inf")
        self.mean.copy_(v.mean(0))
        if v.shape[0] > 1:
            std = v.std(0, unbiased=False)
            self.std.copy_(torch.where(std < min_std, torch.ones_like(std), std))
        else:
            self.std.copy_(torch.ones_like(self.std))
        return self

    def normalize(self, v: torch.Tensor) -> torch.Tensor:
        return (v - self.mean.to(v.dtype)) / self.std.to(v.dtype)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.std.to(z.dtype) + self.mean.to(z.dtype)


def check_dims(state_dim: Any, control_dim: Any) -> None:
    """ValueError unless ``state_dim`` is a positive int and ``control_dim`` an int >= 0 (0: autonomous)."""
    ok = isinstance(state_dim, int) and not isinstance(state_dim, bool) and state_dim > 0
    ok = ok and isinstance(control_dim, int) and not isinstance(control_dim, bool) and control_dim >= 0
    if not ok:
        raise ValueError(
            f"state_dim must be a positive int and control_dim an int >= 0 (0: an autonomous system), got "
            f"{state_dim!r}, {control_dim!r}"
        )


def check_batch(batch: dict, state_dim: int, control_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a training batch and return ``(states [B, H+1, n], controls [B, H, m])``."""
    if not isinstance(batch, dict) or "states" not in batch or "controls" not in batch:
        raise ValueError("a batch must be a dict with 'states' [B, H+1, n] and 'controls' [B, H, m]")
    s, c = batch["states"], batch["controls"]
    if s.ndim != 3 or s.shape[-1] != state_dim:
        raise ValueError(f"batch states must have shape [B, H+1, {state_dim}], got {tuple(s.shape)}")
    if c.ndim != 3 or c.shape[-1] != control_dim:
        raise ValueError(f"batch controls must have shape [B, H, {control_dim}], got {tuple(c.shape)}")
    if c.shape[0] != s.shape[0] or c.shape[1] + 1 != s.shape[1] or c.shape[1] < 1:
        raise ValueError(
            f"batch states [B, H+1, n] and controls [B, H, m] disagree: {tuple(s.shape)} vs {tuple(c.shape)}"
        )
    if not (torch.isfinite(s).all() and torch.isfinite(c).all()):
        raise ValueError("batch contains NaN or inf")
    return s, c


class WorldModel(nn.Module):
    """A model of an environment's dynamics at a fixed control period ``dt``.

    Attributes:
        state_dim: n, size of the state.
        control_dim: m, size of the control.
        dt: control period, s.
        state_norm, control_norm, delta_norm: :class:`Normalizer` s of states, controls and one-step
            state changes; part of the model (buffers, saved and loaded with it). Set them with
            :meth:`fit_normalization` before training.

    Subclasses implement :meth:`step`; recurrent models also override :meth:`rollout` to carry their
    hidden state. The default :meth:`loss` is the MSE of an open-loop rollout over the batch's horizon,
    with errors in units of the one-step state change's spread (:meth:`scaled_error`).
    """

    def __init__(self, state_dim: int, control_dim: int, dt: float):
        super().__init__()
        check_dims(state_dim, control_dim)
        if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive number of seconds, got {dt!r}")
        self.state_dim = state_dim
        self.control_dim = control_dim
        self.dt = float(dt)
        self.state_norm = Normalizer(state_dim)
        self.control_norm = Normalizer(control_dim)
        self.delta_norm = Normalizer(state_dim)

    # -- data ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def fit_normalization(self, states: torch.Tensor, controls: torch.Tensor) -> WorldModel:
        """Set normalisation statistics from ``states [N, T+1, n]`` and ``controls [N, T, m]``."""
        states = torch.as_tensor(states)
        controls = torch.as_tensor(controls)
        if states.ndim != 3 or states.shape[-1] != self.state_dim:
            raise ValueError(f"states must have shape [N, T+1, {self.state_dim}], got {tuple(states.shape)}")
        if controls.ndim != 3 or controls.shape[-1] != self.control_dim:
            raise ValueError(f"controls must have shape [N, T, {self.control_dim}], got {tuple(controls.shape)}")
        self.state_norm.fit(states)
        self.control_norm.fit(controls)
        self.delta_norm.fit(states[:, 1:] - states[:, :-1])
        return self

    def _check(self, x: torch.Tensor, u: torch.Tensor) -> None:
        """The one input check of every model's ``step`` and ``rollout``: tensors, sizes and dtype."""
        name = type(self).__name__
        if not isinstance(x, torch.Tensor) or not isinstance(u, torch.Tensor):
            raise TypeError(f"{name} takes torch tensors, got {type(x).__name__} and {type(u).__name__}; "
                            "convert arrays with torch.as_tensor")  # fmt: skip
        if x.ndim == 0 or x.shape[-1] != self.state_dim:
            raise ValueError(f"{name} expects states [..., {self.state_dim}], got {tuple(x.shape)}")
        if u.ndim == 0 or u.shape[-1] != self.control_dim:
            raise ValueError(f"{name} expects controls [..., {self.control_dim}], got {tuple(u.shape)}")
        weights = self.weight_dtype()
        for what, t in (("states", x), ("controls", u)):
            if not t.is_floating_point():
                raise TypeError(f"{name} takes floating-point {what}, got {t.dtype}")
            if weights is not None and t.dtype != weights:
                how = {torch.float64: "model.double()", torch.float32: "model.float()"}.get(t.dtype, "model.to(dtype)")
                raise TypeError(
                    f"{name} computes in {weights} but the {what} are {t.dtype}: convert the input "
                    f"({what}.to({weights})) or the model ({how})"
                )

    def _check_inputs(self, x: torch.Tensor, u: torch.Tensor) -> None:
        """:meth:`_check` plus finite values: what a public ``step``/``rollout`` is given must be finite (the
        states a rollout produces itself may diverge; they are reported, not refused)."""
        self._check(x, u)
        if not all_finite(x):
            raise ValueError(f"{type(self).__name__}: the states contain NaN or inf")
        if not all_finite(u):
            raise ValueError(f"{type(self).__name__}: the controls contain NaN or inf")

    def weight_dtype(self) -> torch.dtype | None:
        """The dtype of the model's weights (its first parameter that is not a scalar), or None if it has none
        (an explicit model computes in the dtype of its input)."""
        for p in self.parameters():
            if p.ndim > 0 and p.is_floating_point():
                return p.dtype
        return None

    # -- prediction ---------------------------------------------------------------------------------
    def step(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Next state ``[..., n]`` after one period ``dt`` from ``x [..., n]`` under ``u [..., m]``.

        Subclasses implement it and check their inputs with :meth:`_check` (sizes, dtype). It is the inner
        step of rollouts, so it does not refuse non-finite states (a rollout's own states may diverge);
        :meth:`rollout` refuses non-finite inputs and reports divergence.
        """
        raise NotImplementedError

    def rollout(self, x0: torch.Tensor, u: torch.Tensor, *, warn_divergence: bool = True) -> torch.Tensor:
        """Open-loop rollout: ``x0 [B, n]``, ``u [B, T, m]`` -> ``states [B, T+1, n]`` (first is ``x0``).

        Inputs with NaN/inf are refused (ValueError). A prediction that becomes non-finite is returned as is
        (NaN/inf, so metrics can score it) and reported by a :class:`DivergenceWarning` naming the step where it
        began (``warn_divergence=False``: no warning, for callers that handle divergence themselves).
        """
        self._check_rollout(x0, u)
        states = [x0]
        x = x0
        for t in range(u.shape[1]):
            x = self.step(x, u[:, t])
            states.append(x)
        out = torch.stack(states, dim=1)
        if warn_divergence:
            report_divergence(out, type(self).__name__)
        return out

    def _check_rollout(self, x0: torch.Tensor, u: torch.Tensor) -> None:
        if not isinstance(x0, torch.Tensor) or not isinstance(u, torch.Tensor):
            raise TypeError(f"rollout takes torch tensors x0 and u, got {type(x0).__name__} and {type(u).__name__}")
        if x0.ndim != 2 or u.ndim != 3 or u.shape[0] != x0.shape[0]:
            raise ValueError(f"rollout expects x0 [B, n] and u [B, T, m], got {tuple(x0.shape)}, {tuple(u.shape)}")
        self._check_inputs(x0, u)

    # -- training -----------------------------------------------------------------------------------
    def scaled_error(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``(pred - target) / delta_std``: state errors ``[..., n]`` in units of the one-step change's spread.

        Dividing by the spread of the one-step *change* (not of the state) weighs every dimension by how
        much it moves in one step, so slow dimensions (the cart position at dt = 0.02 s) are learned to
        the same relative precision as fast ones. For one step this is the error of the normalised
        state change, the usual target of delta-predicting networks (PETS, mbrl-lib).
        """
        return (pred - target) / self.delta_norm.std.to(pred.dtype)

    def data_mse(self, scaled: torch.Tensor) -> float:
        """The mean squared error in the data's own units of errors ``scaled [..., n]`` given in units of the
        one-step change's spread (:meth:`scaled_error`): what ``model.loss`` reports as ``"mse_data"``."""
        return float((scaled.detach() * self.delta_norm.std.to(scaled.dtype)).pow(2).mean())

    def predict(self, x: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictive mean and standard deviation of the next state, each ``[..., n]`` (physical units).

        Deterministic models return their :meth:`step` and a zero spread; probabilistic models and
        ensembles override this.
        """
        mean = self.step(x, u)
        return mean, torch.zeros_like(mean)

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """MSE of the open-loop rollout over the batch horizon; ``(scalar, metrics)``.

        Errors are measured by :meth:`scaled_error` (in units of the one-step change's spread), so for
        ``H = 1`` this is the MSE of the normalised state change. Metrics: ``"mse"`` (that loss) and
        ``"mse_data"``, the same MSE in the data's own units (the states' units squared).
        """
        s, c = check_batch(batch, self.state_dim, self.control_dim)
        pred = quiet_rollout(self, s[:, 0], c)[:, 1:]
        err = self.scaled_error(pred, s[:, 1:])
        mse = err.pow(2).mean()
        return mse, {"mse": float(mse.detach()), "mse_data": self.data_mse(err)}

    def config(self) -> dict:
        """Keyword arguments that rebuild this model's architecture (used by checkpoints)."""
        return {}

    def describe(self) -> dict[str, str]:
        """What this model is, whether or not :func:`~physwm.models.build` made it: its class and its module
        tree with sizes, control period, integrator and fixed constants (``repr``). Checkpoints store it and
        loading compares it, so weights never load silently into a model of another dt, integrator or
        architecture."""
        cls = type(self)
        structure = re.sub(r"torch\.\w*Tensor", "Tensor", repr(self))  # the dtype may differ (weights are cast)
        return {"class": f"{cls.__module__}.{cls.__qualname__}", "structure": structure}

    def extra_repr(self) -> str:
        return f"state_dim={self.state_dim}, control_dim={self.control_dim}, dt={self.dt}"
