"""World models behind one interface."""

from .base import Normalizer, WorldModel
from .ensemble import Ensemble, bootstrap_indices, gaussian_nll
from .factory import DEFAULT_OPTIONS, MODEL_NAMES, build
from .fields import CartPoleFeatures, HybridField, NeuralField
from .implicit import GaussianMLPModel, GRUModel, MLPModel, TransformerModel, VAEModel
from .ode import ODEModel

__all__ = [
    "WorldModel",
    "Normalizer",
    "ODEModel",
    "NeuralField",
    "HybridField",
    "CartPoleFeatures",
    "MLPModel",
    "GaussianMLPModel",
    "VAEModel",
    "GRUModel",
    "TransformerModel",
    "Ensemble",
    "bootstrap_indices",
    "gaussian_nll",
    "build",
    "MODEL_NAMES",
    "DEFAULT_OPTIONS",
]
