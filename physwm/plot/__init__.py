"""Figures: one palette (:mod:`.palette`), model figures (:mod:`.models`), closed-loop figures (:mod:`.control`),
the reliability diagram (:mod:`.calibration`).

Every function returns a matplotlib ``Figure`` drawn from plain arrays (or :class:`~physwm.control.Episode`
s); :func:`save` writes it atomically as a compact PNG.
"""

from .calibration import reliability_diagram
from .control import closed_loop_phase_portrait, episode_figure, wrapped_angle_with_breaks
from .models import data_efficiency, energy, error_vs_horizon, phase_portrait, residual, vector_field
from .palette import PALETTE, color, phase_dims, save, state_labels

__all__ = [
    "PALETTE",
    "color",
    "state_labels",
    "phase_dims",
    "save",
    "phase_portrait",
    "vector_field",
    "residual",
    "error_vs_horizon",
    "data_efficiency",
    "energy",
    "closed_loop_phase_portrait",
    "episode_figure",
    "wrapped_angle_with_breaks",
    "reliability_diagram",
]
