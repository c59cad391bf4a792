"""physwm: physics-informed world models for PyTorch.

Explicit physics, Neural ODEs, hybrid models and implicit networks behind one integrator interface, for
any system written against :class:`physwm.System`. Importing physwm registers its gymnasium environments
(``physwm/CartPole-v0``). The planning (:mod:`physwm.control`), study (:mod:`physwm.studies`) and figure
(:mod:`physwm.plot`) layers are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import envs  # noqa: F401  (registers the physwm environments with gymnasium)
from .data import Trajectories, collect, make_policy
from .deploy import export, load_exported, quantize
from .discover import discover  # discovering missing physics
from .integrators import (
    RK4,
    Adaptive,
    ButcherTableau,
    Euler,
    ExplicitRK,
    SemiImplicitEuler,
    compiled_rollout,
    get_integrator,
)
from .models import build
from .systems import (  # issue 9: more systems, user systems
    FRICTION_PARAMS,
    Acrobot,
    CartPole,
    CartPoleParams,
    Constant,
    DampedPendulum,
    Parameters,
    Pendulum,
    Quantity,
    System,
    VectorField,
    register_system,
)
from .train import (
    FitConfig,
    History,
    adapt,  # few-shot adaptation to a changed system
    fit,
    load_checkpoint,
    save_checkpoint,
)
from .version import __version__

# Names served by the layers imported on first use: name -> module.
_LAZY = {
    "CEM": "physwm.control",
    "MPPI": "physwm.control",
    "run_episode": "physwm.control",
    "learn_policy": "physwm.control",
    "planning_study": "physwm.control",
    "imagine": "physwm.control",
    "StudyConfig": "physwm.studies",
    "default_config": "physwm.studies",
    "run_study": "physwm.studies",
}
_SUBPACKAGES = ("control", "studies", "plot", "cli")

__all__ = [
    "__version__",
    "VectorField",
    "System",
    "Parameters",
    "Quantity",
    "Constant",
    "CartPole",
    "CartPoleParams",
    "FRICTION_PARAMS",
    "Pendulum",
    "DampedPendulum",
    "Acrobot",
    "register_system",
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
    "build",
    "fit",
    "adapt",
    "FitConfig",
    "History",
    "save_checkpoint",
    "load_checkpoint",
    "export",
    "load_exported",
    "quantize",
    "discover",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"physwm.{name}")
    raise AttributeError(f"module 'physwm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_SUBPACKAGES))
