"""World models behind one interface."""

from .base import Normalizer, WorldModel
from .ode import ODEModel

__all__ = ["WorldModel", "Normalizer", "ODEModel"]
