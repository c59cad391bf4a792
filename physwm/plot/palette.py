"""The one palette of physwm's figures, axis labels from a system's description, and saving figures.

Colours are consistent across figures: one per model family, :data:`PALETTE` (the true system is always
black). Axis labels come from the system's :class:`~physwm.systems.Quantity` descriptions, so a user's
system plots with its own names and units.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from ..files import atomic_write
from ..systems import DEFAULT_SYSTEM, System, get_system

__all__ = ["PALETTE", "color", "state_labels", "phase_dims", "figure", "family_map", "as_array", "save"]

#: One colour per model family (and the truth); model names not listed here get a stable fallback colour.
PALETTE: dict[str, str] = {
    "truth": "#000000",
    "explicit": "#1f77b4",
    "hybrid": "#d62728",
    "node": "#2ca02c",
    "mlp": "#ff7f0e",
    "vae": "#9467bd",
    "gru": "#8c564b",
    "transformer": "#e377c2",
    "ensemble": "#17becf",
    "gaussian_mlp": "#bcbd22",
}
_FALLBACK = ("#7f7f7f", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d")

def color(name: str, family: str | None = None) -> str:
    """The colour of a model: its family's in :data:`PALETTE`, else its name's, else a stable fallback."""
    for key in (family, name):
        if key is not None and key in PALETTE:
            return PALETTE[key]
    for fam in sorted(PALETTE, key=len, reverse=True):  # "hybrid_big" -> hybrid's colour
        if name.startswith(fam):
            return PALETTE[fam]
    return _FALLBACK[sum(map(ord, name)) % len(_FALLBACK)]


def as_array(a: Any, name: str) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array, got {type(a).__name__}") from err
    return arr


def state_labels(system: Any = None) -> tuple[str, ...]:
    """Axis labels (with units) of a system's state entries (default: the default system's)."""
    cls: type[System] = DEFAULT_SYSTEM if system is None else get_system(system)
    return tuple(q.label for q in cls.states)


def phase_dims(system: Any = None) -> tuple[int, int]:
    """The state dimensions of a system's default phase portrait (default: the default system's)."""
    cls: type[System] = DEFAULT_SYSTEM if system is None else get_system(system)
    return cls.phase_dims


def figure(ax=None, figsize=(6.0, 4.5)):
    """``(fig, ax)``: ``ax`` and its figure, or a new figure with one axes."""
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


def family_map(families: Mapping[str, str] | None) -> Mapping[str, str]:
    """The model name -> family mapping (empty if none)."""
    return families or {}


def save(fig, path, dpi: int = 110, palette: bool = True) -> str:
    """Save a figure as PNG (atomically: temp file then rename) and close it; returns the path.

    Args:
        fig: the figure.
        path: output file.
        dpi: resolution.
        palette: quantise to a 256-colour palette (files about 3x smaller, no visible loss for line plots).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    try:
        fig.savefig(buf, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    data = buf.getvalue()
    if palette:
        img = Image.open(io.BytesIO(data)).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        out = io.BytesIO()
        img.save(out, format="PNG", optimize=True)
        data = out.getvalue()
    atomic_write(path, lambda f: f.write(data), overwrite=True)
    return str(path)
