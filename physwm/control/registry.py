"""The planners by name: :data:`PLANNERS` and :func:`make_planner` (what the CLI and planning studies accept)."""

from __future__ import annotations

import inspect
from typing import Any

from ..models import WorldModel
from .gradient import CEMGD, ILQR, Shooting
from .planners import CEM, MPPI, Cost, Planner

__all__ = ["PLANNERS", "make_planner", "planner_options"]

#: Every planner by name: sampling (``cem``, ``mppi``), gradient-based (``ilqr``, ``shooting``) and CEM
#: refined by gradient steps (``cem_gd``).
PLANNERS: dict[str, type[Planner]] = {"cem": CEM, "mppi": MPPI, "ilqr": ILQR, "shooting": Shooting, "cem_gd": CEMGD}


def make_planner(name: str, model: WorldModel, cost: Cost, **options: Any) -> Planner:
    """Build a planner by name (one of :data:`PLANNERS`); an unknown name lists the valid ones."""
    if name not in PLANNERS:
        raise ValueError(f"unknown planner {name!r}; valid: {sorted(PLANNERS)}")
    return PLANNERS[name](model, cost, **options)


def planner_options(name: str) -> frozenset[str]:
    """The keyword arguments planner ``name`` accepts: its own and those it passes on to :class:`Planner`."""
    if name not in PLANNERS:
        raise ValueError(f"unknown planner {name!r}; valid: {sorted(PLANNERS)}")
    names: set[str] = set()
    for cls in PLANNERS[name].__mro__:
        init = cls.__dict__.get("__init__")
        if init is None or not issubclass(cls, Planner):
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind is p.KEYWORD_ONLY or (p.kind is p.POSITIONAL_OR_KEYWORD)}
    return frozenset(names - {"self", "model", "cost"} - set(PLANNERS[name].fixed_options))
