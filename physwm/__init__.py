"""physwm: physics-informed world models for PyTorch.

Explicit physics, Neural ODEs, hybrid models and implicit networks behind one integrator interface.
Importing physwm registers its gymnasium environments (``physwm/CartPole-v0``).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("physwm")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

from . import envs  # noqa: F401  (registers physwm/CartPole-v0 with gymnasium)
from .control import CEM, MPPI, imagine, planning_study, run_episode
from .data import Trajectories, collect, make_policy
from .fused import compiled_rollout
from .integrators import RK4, Adaptive, ButcherTableau, Euler, ExplicitRK, SemiImplicitEuler, get_integrator
from .studies import StudyConfig, default_config, run_study
from .systems import CartPole, CartPoleParams, VectorField
from .train import History, fit, load_checkpoint, save_checkpoint

__all__ = [
    "__version__",
    "VectorField",
    "CartPole",
    "CartPoleParams",
    "Euler",
    "SemiImplicitEuler",
    "RK4",
    "ExplicitRK",
    "ButcherTableau",
    "Adaptive",
    "get_integrator",
    "compiled_rollout",
    "Trajectories",
    "collect",
    "make_policy",
    "fit",
    "History",
    "save_checkpoint",
    "load_checkpoint",
    "CEM",
    "MPPI",
    "run_episode",
    "planning_study",
    "imagine",
    "StudyConfig",
    "default_config",
    "run_study",
]
