"""Known physics as vector fields."""

from .base import VectorField
from .cartpole import LEARNABLE_CONSTANTS, CartPole, CartPoleParams, cartpole_dynamics, cartpole_energy

__all__ = ["VectorField", "CartPole", "CartPoleParams", "cartpole_dynamics", "cartpole_energy", "LEARNABLE_CONSTANTS"]
