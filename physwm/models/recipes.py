"""How each model family trains best: :data:`RECIPES`, the options ``fit(model, data)`` uses by default.

A recipe is a dict of :class:`~physwm.train.FitConfig` fields (plain data: the models know nothing of
training). ``fit(model, data)`` without a config starts from :func:`recipe_for` ``(model)``; every
keyword given to ``fit`` still overrides it. The numbers were chosen with ``bench/recipes.py`` (a grid of
settings per family on in-family CartPole truths; see its docstring for what it printed).

What every recipe holds:

* **optimiser and learning rates per parameter group**: Adam on the networks (``lr``) and, for
  physics-based families, a larger rate on the physical constants (``constants_lr``): they are stored in
  units of their scale (``raw = value / scale``), and a friction 10x its scale is 10 raw units away, which
  Adam at 3e-3 per step would need thousands of steps to cross;
* **batch size from the data size**: ``steps`` budget mode, batches of ``ceil(windows / min_batches)``
  windows up to ``batch_size`` (small data sets get smaller batches, so at least ``min_batches`` steps
  per epoch);
* **a schedule and a stopping rule by convergence**: the rate halves when the monitored value (the
  validation rollout error, or the training loss without validation data) stalls, training stops when
  it has not improved by ``min_delta`` (relative) for ``early_stopping`` epochs, and ``steps`` (about that
  many gradient steps; a count, not seconds, so a run is the same on any machine) caps it;
* **the physics first, and a second-order polish** (physics-based families): Gauss-Newton steps on the
  constants alone before training (a hybrid's residual starts at zero, so its physics is fitted first)
  and after it, each kept only if it lowers the monitored value; when the constants fitted first explain
  the training data to round-off (``explained_loss``), there is nothing left to train and no epoch runs.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..systems import System

__all__ = ["RECIPES", "recipe", "recipe_for", "family_of"]

# Shared by every family: a step cap, batches from the data size, the plateau schedule and early stopping.
_COMMON: dict[str, Any] = {
    "steps": 3000,
    "epochs": 1000,
    "batch_size": 256,
    "min_batches": 16,
    "lr_schedule": "plateau",
    "early_stopping": 12,
    "min_delta": 0.01,
    "grad_clip": 10.0,
}
_NETWORK = {**_COMMON, "lr": 3e-3}
# Physics-based families: Gauss-Newton on the constants first and last, Adam in between.
# When the constants alone explain the data to 1e-5 of the one-step change's spread (RMS; float32 data
# fitted exactly reach about 4e-7), the networks have nothing left to learn: no epoch is trained.
_PHYSICS = {**_COMMON, "lr": 3e-3, "constants_lr": 0.01, "prefit_steps": 30, "polish_steps": 10,
            "explained_loss": 1e-10}  # fmt: skip

#: The recipe of every family :func:`~physwm.models.build` knows (FitConfig fields).
RECIPES: dict[str, dict[str, Any]] = {
    "explicit": {**_PHYSICS, "lr": 0.03},
    "hybrid": dict(_PHYSICS),
    "node": dict(_NETWORK),
    "mlp": dict(_NETWORK),
    "gaussian_mlp": dict(_NETWORK),
    "vae": dict(_NETWORK),
    "gru": dict(_NETWORK),
    "transformer": dict(_NETWORK),
    "ensemble": dict(_NETWORK),
    "gan": dict(_NETWORK),
    "pinn_mlp": dict(_NETWORK),
    "lagrangian": dict(_NETWORK),
}


def recipe(name: str) -> dict[str, Any]:
    """A copy of the recipe of family ``name`` (a key of :data:`RECIPES`)."""
    if name not in RECIPES:
        raise ValueError(f"unknown model family {name!r}; valid: {sorted(RECIPES)}")
    return dict(RECIPES[name])


def family_of(model: nn.Module) -> str:
    """The family whose recipe trains ``model``: its ``build_spec`` name, else guessed from its parameters
    (only physical constants: ``explicit``; constants and networks: ``hybrid``; else ``mlp``, the
    network recipe)."""
    spec = getattr(model, "build_spec", None)
    if isinstance(spec, dict) and spec.get("name") in RECIPES:
        return spec["name"]
    constants = {id(p) for m in model.modules() if isinstance(m, System) for p in m.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    has_constants = any(id(p) in constants for p in trainable)
    has_networks = any(id(p) not in constants for p in trainable)
    if has_constants:
        return "hybrid" if has_networks else "explicit"
    return "mlp"


def recipe_for(model: nn.Module) -> dict[str, Any]:
    """The recipe (FitConfig fields) ``fit(model, data)`` trains ``model`` with (see :func:`family_of`)."""
    return recipe(family_of(model))
