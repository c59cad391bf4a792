"""World models behind one interface: ODE models of any vector field, implicit networks, ensembles, by name."""

from .base import DivergenceWarning, Normalizer, WorldModel
from .context import ContextMLP, FamilyModel  # models of a family of systems (per-member contexts)
from .ensemble import Ensemble, bootstrap_indices
from .factory import DEFAULT_OPTIONS, IMPLICIT_FAMILIES, MODEL_NAMES, ODE_FAMILIES, build
from .fields import HybridField, NeuralField, StateControlFeatures, SystemFeatures
from .gan import GANModel
from .implicit import GaussianMLPModel, GRUModel, MLPModel, TransformerModel, VAEModel
from .lagrangian import LagrangianField
from .ode import ODEModel
from .pinn import PhysicsInformedMLP
from .recipes import RECIPES, family_of, recipe, recipe_for
from .symbolic import SymbolicField  # symbolic residuals

__all__ = [
    "WorldModel",
    "Normalizer",
    "DivergenceWarning",
    "ODEModel",
    "NeuralField",
    "HybridField",
    "StateControlFeatures",
    "SystemFeatures",
    "MLPModel",
    "GaussianMLPModel",
    "VAEModel",
    "GRUModel",
    "TransformerModel",
    "Ensemble",
    "bootstrap_indices",
    "build",
    "MODEL_NAMES",
    "DEFAULT_OPTIONS",
    "ODE_FAMILIES",
    "IMPLICIT_FAMILIES",
    "RECIPES",
    "recipe",
    "recipe_for",
    "family_of",
    "GANModel",
    "PhysicsInformedMLP",
    "LagrangianField",
    "SymbolicField",
    "FamilyModel",
    "ContextMLP",
]
