"""Neural policies for a system: a network from state to bounded control, and its frozen numpy form.

:class:`NeuralPolicy` maps states ``x [..., n]`` to controls ``u [..., m]`` within the system's control
bounds: it sees each angle of the state as ``(sin, cos)`` and every other entry divided by a scale (the
world model's state spread), and squashes its output with ``tanh`` onto ``[low, high]``. It is a torch
module, differentiable, batched, for learning (see :func:`physwm.control.learn_policy`).
:meth:`NeuralPolicy.freeze` returns a :class:`FrozenPolicy`: the same function on one numpy state with
numpy copies of the weights, a few microseconds per call, for closed-loop control
(:func:`physwm.control.run_episode` takes it as its policy). :class:`ValueNetwork` is the critic: the same
features, one scalar out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..models.fields import make_mlp
from ..systems import System, get_system

__all__ = ["NeuralPolicy", "FrozenPolicy", "ValueNetwork", "PolicyFeatures"]

_NUMPY_ACTIVATIONS = {
    "FastTanh": np.tanh,
    "Tanh": np.tanh,
    "ReLU": lambda h: np.maximum(h, 0.0),
    "SiLU": lambda h: h / (1.0 + np.exp(-h)),
    "ELU": lambda h: np.where(h > 0, h, np.expm1(np.minimum(h, 0.0))),
    "Softplus": lambda h: np.logaddexp(0.0, h),
}


class PolicyFeatures(nn.Module):
    """``x [..., n] -> [..., k]``: ``(sin, cos)`` of each angle entry, every other entry divided by its scale.

    Args:
        system: the system (class, instance or name) whose state description says which entries are angles.
        scale: ``[n]`` scale of the non-angle entries (e.g. the world model's state spread); default 1.
    """

    def __init__(self, system: Any, scale: Sequence[float] | torch.Tensor | None = None):
        super().__init__()
        cls = get_system(system)
        n = cls.state_dim
        self.angles = tuple(i for i, q in enumerate(cls.states) if q.kind == "angle")
        self.others = tuple(i for i, q in enumerate(cls.states) if q.kind != "angle")
        s = torch.ones(n) if scale is None else torch.as_tensor(scale, dtype=torch.float32).reshape(-1).clone()
        if s.numel() != n or not (torch.isfinite(s).all() and (s > 0).all()):
            raise ValueError(f"scale must be {n} positive finite numbers, got {scale!r}")
        self.register_buffer("scale", s)
        self.out_dim = 2 * len(self.angles) + len(self.others)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [f(x[..., i]) for i in self.angles for f in (torch.sin, torch.cos)]
        parts += [x[..., i] / self.scale[i].to(x.dtype) for i in self.others]
        return torch.stack(parts, dim=-1)

    def numpy_function(self):
        """The same features as a numpy function of states ``[..., n]`` (float64; the scale is copied now)."""
        angles, others = list(self.angles), list(self.others)
        inv = 1.0 / self.scale.detach().cpu().double().numpy()[others]

        def features(x: np.ndarray) -> np.ndarray:
            a = x[..., angles]
            trig = np.stack((np.sin(a), np.cos(a)), axis=-1).reshape(*a.shape[:-1], 2 * len(angles))
            return np.concatenate((trig, x[..., others] * inv), axis=-1)

        return features


def _check_bounds(system: type[System], params: Any, bounds: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if bounds is None:
        low, high = system.control_bounds(params if params is not None else system.Params())
    else:
        low, high = bounds
    m = system.control_dim
    low_t = torch.as_tensor(np.broadcast_to(np.asarray(low, dtype=np.float64), (m,)).copy(), dtype=torch.float32)
    high_t = torch.as_tensor(np.broadcast_to(np.asarray(high, dtype=np.float64), (m,)).copy(), dtype=torch.float32)
    if not (torch.isfinite(low_t).all() and torch.isfinite(high_t).all() and (low_t < high_t).all()):
        raise ValueError(f"bounds must be finite (low, high) with low < high, got {(low, high)!r}; "
                         f"{system.__name__}'s controls are unbounded, pass bounds=")
    return low_t, high_t


class NeuralPolicy(nn.Module):
    """A deterministic policy ``u = mid + half * tanh(mlp(features(x)))`` within ``[low, high]``.

    Args:
        system: the system (class, instance or name): state description and control bounds.
        params: its constants (control bounds; default ``Params()``).
        bounds: ``(low, high)`` control bounds (numbers or ``[m]``; default the system's).
        hidden: hidden widths.
        activation: one of :data:`~physwm.models.fields.ACTIVATIONS`.
        scale: ``[n]`` scale of the non-angle state entries (see :class:`PolicyFeatures`).

    Shapes: ``forward(x [..., n]) -> u [..., m]`` (physical units).
    """

    def __init__(
        self,
        system: Any,
        params: Any = None,
        bounds: Any = None,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        scale: Any = None,
    ):
        super().__init__()
        cls = get_system(system)
        self.state_dim, self.control_dim = cls.state_dim, cls.control_dim
        self.features = PolicyFeatures(cls, scale)
        low, high = _check_bounds(cls, params, bounds)
        self.register_buffer("low", low)
        self.register_buffer("high", high)
        self.net = make_mlp(self.features.out_dim, self.control_dim, hidden, activation)

    def mean_action(self, x: torch.Tensor) -> torch.Tensor:
        """The network's output before squashing, ``[..., m]`` (the mean of a Gaussian policy's pre-action)."""
        if x.shape[-1] != self.state_dim:
            raise ValueError(f"the policy expects states [..., {self.state_dim}], got {tuple(x.shape)}")
        return self.net(self.features(x))

    def squash(self, a: torch.Tensor) -> torch.Tensor:
        """Controls ``[..., m]`` of pre-actions ``a [..., m]``: ``mid + half * tanh(a)``."""
        mid, half = (self.high + self.low) / 2, (self.high - self.low) / 2
        return mid.to(a.dtype) + half.to(a.dtype) * torch.tanh(a)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.squash(self.mean_action(x))

    def freeze(self) -> FrozenPolicy:
        """A numpy snapshot of this policy for closed-loop control (later training does not change it)."""
        return FrozenPolicy(self)


class FrozenPolicy:
    """A :class:`NeuralPolicy` as a plain numpy function of one state: ``policy(state [n]) -> control [m]``.

    The weights are copied (float64) when it is made; calling it runs the features, the layers and the
    squashing in numpy (no torch dispatch), which is what makes a learned policy a few microseconds per
    control step. Batched states ``[B, n]`` work too.
    """

    def __init__(self, policy: NeuralPolicy):
        self._features = policy.features.numpy_function()
        self._layers: list[tuple] = []
        for layer in policy.net:
            if isinstance(layer, nn.Linear):
                self._layers.append((layer.weight.detach().cpu().double().numpy().T.copy(),
                                     layer.bias.detach().cpu().double().numpy().copy()))
            else:
                name = type(layer).__name__
                if name not in _NUMPY_ACTIVATIONS:
                    raise ValueError(f"no numpy version of the activation {name}; valid: {sorted(_NUMPY_ACTIVATIONS)}")
                self._layers.append((_NUMPY_ACTIVATIONS[name],))
        low = policy.low.detach().cpu().double().numpy()
        high = policy.high.detach().cpu().double().numpy()
        self._mid, self._half = (high + low) / 2, (high - low) / 2
        self.state_dim = policy.state_dim
        self.name = "policy"

    def __call__(self, state: Any) -> np.ndarray:
        x = np.asarray(state, dtype=np.float64)
        if x.shape[-1] != self.state_dim:
            raise ValueError(f"the policy expects states [..., {self.state_dim}], got {x.shape}")
        h = self._features(x)
        for layer in self._layers:
            h = h @ layer[0] + layer[1] if len(layer) == 2 else layer[0](h)
        return self._mid + self._half * np.tanh(h)


class ValueNetwork(nn.Module):
    """A critic ``V(x) [...]`` of states ``x [..., n]`` on the policy's features (cost-to-go, task units).

    Args:
        features: the :class:`PolicyFeatures` (shared with the policy; not copied).
        hidden: hidden widths.
        activation: one of :data:`~physwm.models.fields.ACTIVATIONS`.
    """

    def __init__(self, features: PolicyFeatures, hidden: Sequence[int] = (64, 64), activation: str = "tanh"):
        super().__init__()
        self.features = features
        self.net = make_mlp(features.out_dim, 1, hidden, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.features(x)).squeeze(-1)
