"""The VectorField interface shared by known physics and learned fields."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["VectorField", "check_state_control"]


class VectorField(nn.Module):
    """A continuous-time vector field ``dx/dt = f(x, u)``.

    Subclasses set ``state_dim`` and ``control_dim`` and implement ``forward``. A field that knows
    which state entries are positions and which are their velocities sets ``position_index`` and
    ``velocity_index`` (same length, pairwise ``d position / dt = velocity``); semi-implicit
    integrators need them.

    Shapes: ``x [..., state_dim]``, ``u [..., control_dim]`` -> ``dx/dt [..., state_dim]``.
    """

    state_dim: int
    control_dim: int
    position_index: tuple[int, ...] | None = None
    velocity_index: tuple[int, ...] | None = None

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def check_state_control(x: torch.Tensor, u: torch.Tensor, state_dim: int, control_dim: int) -> None:
    """Raise a ValueError naming the problem if ``x``/``u`` do not fit ``[..., state_dim]``/``[..., control_dim]``."""
    if not isinstance(x, torch.Tensor) or not isinstance(u, torch.Tensor):
        raise TypeError(f"state and control must be torch tensors, got {type(x).__name__} and {type(u).__name__}")
    if x.ndim == 0 or x.shape[-1] != state_dim:
        raise ValueError(f"state must have shape [..., {state_dim}], got {tuple(x.shape)}")
    if u.ndim == 0 or u.shape[-1] != control_dim:
        raise ValueError(f"control must have shape [..., {control_dim}], got {tuple(u.shape)}")
    if x.shape[:-1] != u.shape[:-1]:
        raise ValueError(
            f"state and control must share leading (batch) dims, got {tuple(x.shape)} and {tuple(u.shape)}"
        )
