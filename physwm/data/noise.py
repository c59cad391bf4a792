"""What real data adds to exact simulation: observation noise and process noise, described and checked.

:class:`ObservationNoise` is Gaussian sensor noise on the recorded states: one standard deviation per state
dimension, in physical units, or (``relative=True``) as fractions of each state's spread (its standard
deviation over the clean data). :class:`ProcessNoise` disturbs the world itself: a Gaussian force added to
the commanded control at every step (an imprecise actuator; the data records the commanded control) and a
per-episode jitter of the physical constants (each constant multiplied by ``1 + jitter * N(0, 1)``).

Both are plain, checked descriptions (a negative or NaN level, or a vector of the wrong length, is a
``ValueError`` naming it); :func:`physwm.data.collect` draws them from seeded streams of its own, so equal
seeds give bitwise-identical noisy data. :func:`physwm.checks.noise_levels` checks every vector of levels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..checks import noise_levels

__all__ = ["ObservationNoise", "ProcessNoise", "observe", "state_spread"]


def state_spread(states: torch.Tensor | np.ndarray, lengths: torch.Tensor | np.ndarray | None) -> np.ndarray:
    """The standard deviation ``[n]`` of every valid state of episodes ``states [N, T+1, n]`` (padding dropped)."""
    s = np.asarray(states.detach().cpu().numpy() if isinstance(states, torch.Tensor) else states, dtype=np.float64)
    if lengths is None:
        valid = s.reshape(-1, s.shape[-1])
    else:
        L = np.asarray(lengths.cpu().numpy() if isinstance(lengths, torch.Tensor) else lengths)
        valid = s[np.arange(s.shape[1])[None, :] <= L[:, None]]
    return valid.std(axis=0)


@dataclass(frozen=True)
class ObservationNoise:
    """Gaussian observation noise on every recorded state.

    Attributes:
        std: standard deviation of each state dimension (a scalar: the same for all), in physical units, or
            with ``relative`` in units of each state's spread (0.01: 1% of the standard deviation of that
            state over the clean data).
        relative: see ``std``.
    """

    std: float | Sequence[float]
    relative: bool = False

    def __post_init__(self) -> None:
        arr = np.asarray(self.std, dtype=object)
        noise_levels(self.std, "obs_noise std", 1 if arr.ndim == 0 else len(arr))
        if not isinstance(self.relative, bool):
            raise ValueError(f"relative must be True or False, got {self.relative!r}")

    def stds(self, n: int, spread: np.ndarray | None = None) -> np.ndarray:
        """The standard deviations ``[n]`` in physical units (``spread [n]``: each state's spread, needed when
        ``relative``)."""
        levels = noise_levels(self.std, "obs_noise std", n)
        if not self.relative:
            return levels
        if spread is None:
            raise ValueError("relative observation noise needs the states' spread")
        return levels * np.asarray(spread, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        std = np.asarray(self.std, dtype=np.float64)
        return {"std": std.tolist(), "relative": self.relative}


@dataclass(frozen=True)
class ProcessNoise:
    """Noise in the world itself.

    Attributes:
        force_std: standard deviation of a Gaussian disturbance added to each control at every step (units of
            the control, N for CartPole; a scalar or one per control). The environment applies the commanded
            control plus the disturbance (clipped to its bounds); the data records the commanded control.
        param_jitter: per-episode relative jitter of physical constants, ``{name: relative std}`` (each
            episode's constant is ``value * (1 + jitter * N(0, 1))``, floored at 1e-6 of its value); a plain
            number jitters every constant the system identifies by default.
    """

    force_std: float | Sequence[float] = 0.0
    param_jitter: float | Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        arr = np.asarray(self.force_std, dtype=object)
        noise_levels(self.force_std, "force_std", 1 if arr.ndim == 0 else len(arr))
        jitter = self.param_jitter
        if isinstance(jitter, Mapping):
            for k, v in jitter.items():
                noise_levels(v, f"param_jitter[{k!r}]", 1)
        else:
            noise_levels(jitter, "param_jitter", 1)

    def jitters(self, names: Sequence[str], identify: Sequence[str]) -> dict[str, float]:
        """``{constant: relative std}`` for a system with constants ``names`` (``identify``: its default set).

        Raises:
            ValueError: an unknown constant, listing the valid ones.
        """
        if isinstance(self.param_jitter, Mapping):
            unknown = sorted(set(self.param_jitter) - set(names))
            if unknown:
                raise ValueError(f"param_jitter names unknown constants {unknown}; valid: {sorted(names)}")
            return {k: float(v) for k, v in self.param_jitter.items()}
        return {k: float(self.param_jitter) for k in identify}

    @property
    def active(self) -> bool:
        force = bool(np.any(np.asarray(self.force_std, dtype=np.float64) > 0))
        jit = self.param_jitter
        return force or bool(any(v > 0 for v in jit.values()) if isinstance(jit, Mapping) else jit > 0)

    def to_dict(self) -> dict[str, Any]:
        jit = self.param_jitter
        return {"force_std": np.asarray(self.force_std, dtype=np.float64).tolist(),
                "param_jitter": dict(jit) if isinstance(jit, Mapping) else float(jit)}  # fmt: skip


def observe(states: np.ndarray, lengths: np.ndarray, stds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noisy observations of episodes ``states [N, T+1, n]``: each valid state plus ``N(0, stds**2)`` noise
    (padding stays as it is). The draw is one ``rng.standard_normal`` of the full shape, so it depends only
    on the generator's state and the shape."""
    z = rng.standard_normal(states.shape)
    valid = np.arange(states.shape[1])[None, :] <= np.asarray(lengths)[:, None]
    return np.where(valid[..., None], states + z * stds, states)
