"""``build(name, system, **options)``: the recommended configuration of every model family, for any system.

The names are the CLI's: ``explicit, node, hybrid, mlp, vae, gru, transformer, ensemble`` (plus
``gaussian_mlp``, the probabilistic member of the default ensemble). The system (a
:class:`~physwm.systems.System` name, class or instance, or its Params; default CartPole) sets the sizes,
the default ``dt`` and, for ``explicit``/``hybrid``, the equations and starting constants. Every built model
carries ``model.build_spec = {"name": ..., "options": {...}}``, plain JSON with every option resolved
(defaults included, the system as ``{"name": ..., "params": {...}}``), so a checkpoint rebuilds it with
``build(**spec)`` and then ``load_state_dict``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch

from ..checks import positive_int
from ..integrators import get_integrator
from ..systems import DEFAULT_SYSTEM, SYSTEMS, Parameters, System, get_system, register_system
from .base import WorldModel
from .ensemble import Ensemble
from .fields import HybridField, NeuralField
from .gan import GANModel
from .implicit import GaussianMLPModel, GRUModel, MLPModel, TransformerModel, VAEModel
from .lagrangian import LagrangianField
from .ode import ODEModel
from .pinn import PhysicsInformedMLP
from .symbolic import SymbolicField

__all__ = ["build", "MODEL_NAMES", "DEFAULT_OPTIONS", "ODE_FAMILIES", "IMPLICIT_FAMILIES", "resolve_system"]

# Integration options of the ODE families (rtol, atol, adjoint, max_steps: adaptive integrators only).
_ODE = {"integrator": "rk4", "substeps": 1, "rtol": None, "atol": None, "adjoint": None, "max_steps": None}

DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    # learnable None: the constants the system identifies by default (System.identify)
    "explicit": {"learnable": None, **_ODE},
    "node": {"hidden": [64, 64], "activation": "tanh", "features": "state", **_ODE},
    # The hybrid's defaults were chosen on a CartPole with a 0.6 m half-pole, heavier pole and friction
    # (nominal physics: CartPole-v1), trained one-step on states with |theta| < 0.3, scored on full swings
    # (|theta| < pi, faster): learnable constants + acceleration-only residual of angle-invariant features
    # + penalty 1.0 gave a one-step extrapolation MSE (in one-step-change units) of 1e-6, against 4e-3
    # with penalty 0, 2e-4 with 0.1, 2e-2 for the nominal physics, 0.9 for the MLP and 1.5 for the
    # Neural ODE; with unmodelled quadratic drag added to the truth, penalties 0.1-1 extrapolated alike
    # (1.3e-2, the drag being what no model extrapolated) and penalty 0 worse (3e-2).
    "hybrid": {
        "learnable": None,
        "hidden": [32, 32],
        "activation": "tanh",
        "features": "system",
        "rows": "velocity",
        "penalty": 1.0,
        # APHYNITY's variants of the penalty (see HybridField): how the residual is measured, and its
        # adaptive multiplier's rate tau_2 (None: a fixed weight)
        "penalty_norm": "normalized",
        "multiplier_rate": None,
        # "network" (a NeuralField) or "symbolic" (a SymbolicField of the system's library; its
        # active terms: None = all, or {row name: [term names]}, what physwm.discover stores)
        "residual": "network",
        "terms": None,
        # a symbolic residual's rows: "acceleration" (added as they are) or "force" (generalised forces,
        # mapped through the system's mass matrix; see SymbolicField)
        "residual_space": "acceleration",
        **_ODE,
    },
    "mlp": {"hidden": [128, 128, 128], "activation": "silu"},
    "gaussian_mlp": {
        "hidden": [128, 128, 128],
        "activation": "silu",
        "min_logvar": -10.0,
        "max_logvar": 0.5,
        "bound_weight": 0.01,
    },
    "vae": {"latent_dim": 16, "hidden": [128, 128], "activation": "silu", "beta": 1e-3},
    "gru": {"hidden_size": 128, "num_layers": 1, "warmup": 0},
    "transformer": {"d_model": 64, "heads": 4, "layers": 2, "context": 32, "feedforward": None, "activation": "gelu"},
    "ensemble": {"members": 5, "member": "gaussian_mlp", "member_options": {}, "bootstrap": True},
    # -- a conditional GAN, a physics-informed MLP, a Lagrangian field (see their modules) --
    "gan": {"noise_dim": 4, "hidden": [128, 128, 128], "disc_hidden": [128, 128], "activation": "silu",
            "adversarial_weight": 0.01},
    "pinn_mlp": {"hidden": [128, 128, 128], "activation": "silu", "physics_weight": 1.0, "collocation": 256,
                 "collocation_scale": 3.0, **_ODE},
    "lagrangian": {"hidden": [64, 64], "activation": "softplus", "coordinates": "angles", "dissipation": True,
                   **_ODE},
}
_COMMON = {"dt": None, "seed": 0, "system": None}

#: Every name :func:`build` accepts.
MODEL_NAMES: tuple[str, ...] = tuple(DEFAULT_OPTIONS)
#: Families integrated as vector fields (they take the integration options).
ODE_FAMILIES: tuple[str, ...] = ("explicit", "node", "hybrid", "lagrangian")
#: Families that are purely implicit (discrete-time networks without physics or a vector field).
IMPLICIT_FAMILIES: tuple[str, ...] = ("mlp", "gaussian_mlp", "vae", "gru", "transformer", "ensemble", "gan")


def resolve_system(system: Any) -> tuple[type[System], Parameters]:
    """``(System class, its constants)`` of anything :func:`build` accepts as ``system``.

    Accepted: ``None`` (the default system, CartPole with gymnasium's CartPole-v1 constants), a system
    name, a System class (default constants) or instance (its current constants, learnable ones as floats),
    a Params instance, ``{"name": ..., "params": {...}}`` (what ``build_spec`` stores) or a plain dict of
    the default system's constants.
    """
    if system is None:
        return DEFAULT_SYSTEM, DEFAULT_SYSTEM.Params()
    if isinstance(system, Mapping):
        if set(system) == {"name", "params"}:
            cls = get_system(system["name"])
            return cls, cls.Params.from_dict(system["params"])
        return DEFAULT_SYSTEM, DEFAULT_SYSTEM.Params.from_dict(system)
    cls = get_system(system)
    if isinstance(system, System):
        return cls, cls.Params.from_dict(system.params.to_dict())
    if isinstance(system, Parameters):
        return cls, system
    return cls, cls.Params()


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        v = list(v)
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise TypeError(f"build options must be plain JSON values (numbers, strings, lists, dicts), got {v!r}")


def _integrator(o: dict):
    adaptive = {k: o[k] for k in ("rtol", "atol", "adjoint", "max_steps") if o[k] is not None}
    return get_integrator(str(o["integrator"]), substeps=o["substeps"], **adaptive)


def _features(value: str, cls: type[System]) -> Any:
    return cls if value == "system" else value


def _symbolic_hybrid(physics: System, cls: type[System], rows: Any, o: dict) -> WorldModel:
    """``build("hybrid", residual="symbolic")``: the physics plus a :class:`SymbolicField` of its library."""
    if o["residual_space"] == "force":
        residual = SymbolicField(cls, terms=o["terms"], space="force")
    else:
        residual = SymbolicField(cls, rows=rows if rows is not None else tuple(range(cls.state_dim)), terms=o["terms"])
    field = HybridField(physics, residual, penalty=o["penalty"], penalty_norm=o["penalty_norm"],
                        multiplier_rate=o["multiplier_rate"])
    return ODEModel(field, _integrator(o), dt=o["dt"])


def _build(name: str, cls: type[System], p: Parameters, o: dict) -> WorldModel:
    n, m, dt = cls.state_dim, cls.control_dim, o["dt"]
    if name == "explicit":
        return ODEModel(cls(p, learnable=o["learnable"]), _integrator(o), dt)
    if name == "node":
        features = _features(o["features"], cls)
        field = NeuralField(n, m, hidden=o["hidden"], activation=o["activation"], features=features)
        return ODEModel(field, _integrator(o), dt)
    if name == "hybrid":
        physics = cls(p, learnable=o["learnable"])
        rows = o["rows"]
        if rows == "velocity":
            rows = physics.velocity_index
        elif rows == "all":
            rows = None
        elif not isinstance(rows, list):
            raise ValueError(f"hybrid rows must be 'velocity', 'all' or a list of state indices, got {rows!r}")
        if o["residual"] == "symbolic":
            return _symbolic_hybrid(physics, cls, rows, o)
        if o["residual"] != "network":
            raise ValueError(f"unknown hybrid residual {o['residual']!r}; valid: ['network', 'symbolic']")
        if o["residual_space"] != "acceleration":
            raise ValueError("residual_space='force' needs residual='symbolic' (a network residual is an acceleration)")
        residual = NeuralField(
            n, m, hidden=o["hidden"], activation=o["activation"], features=_features(o["features"], cls), rows=rows,
            residual=True,
        )
        field = HybridField(physics, residual, penalty=o["penalty"], penalty_norm=o["penalty_norm"],
                            multiplier_rate=o["multiplier_rate"])
        return ODEModel(field, _integrator(o), dt)
    if name == "mlp":
        return MLPModel(n, m, dt, hidden=o["hidden"], activation=o["activation"])
    if name == "gaussian_mlp":
        keys = ("hidden", "activation", "min_logvar", "max_logvar", "bound_weight")
        return GaussianMLPModel(n, m, dt, **{k: o[k] for k in keys})
    if name == "vae":
        keys = ("latent_dim", "hidden", "activation", "beta")
        return VAEModel(n, m, dt, seed=o["seed"], **{k: o[k] for k in keys})
    if name == "gru":
        return GRUModel(n, m, dt, hidden_size=o["hidden_size"], num_layers=o["num_layers"], warmup=o["warmup"])
    if name == "transformer":
        keys = ("d_model", "heads", "layers", "context", "feedforward", "activation")
        return TransformerModel(n, m, dt, **{k: o[k] for k in keys})
    if name == "ensemble":
        k = positive_int(o["members"], "members")
        member = o["member"]
        if member not in MODEL_NAMES or member == "ensemble":
            valid = [x for x in MODEL_NAMES if x != "ensemble"]
            raise ValueError(f"unknown ensemble member {member!r}; valid: {valid}")
        if not isinstance(o["member_options"], dict):
            raise ValueError(f"member_options must be a dict, got {o['member_options']!r}")
        for key in ("system", "dt", "seed"):
            if key in o["member_options"]:
                raise ValueError(f"member_options may not set {key!r}; set it on the ensemble")
        members = [
            build(member, o["system"], dt=dt, seed=o["seed"] * 1000 + i, **o["member_options"]) for i in range(k)
        ]
        return Ensemble(members, bootstrap=o["bootstrap"], seed=o["seed"])
    if name == "gan":
        keys = ("noise_dim", "hidden", "disc_hidden", "activation", "adversarial_weight")
        return GANModel(n, m, dt, seed=o["seed"], **{k: o[k] for k in keys})
    if name == "pinn_mlp":
        keys = ("hidden", "activation", "physics_weight", "collocation", "collocation_scale")
        return PhysicsInformedMLP(cls(p), dt, integrator=_integrator(o), seed=o["seed"], **{k: o[k] for k in keys})
    if name == "lagrangian":
        field = LagrangianField(cls, hidden=o["hidden"], activation=o["activation"], coordinates=o["coordinates"],
                                dissipation=o["dissipation"])
        return ODEModel(field, _integrator(o), dt)
    raise AssertionError(name)  # pragma: no cover - names are checked by build


def build(name: str, system: Any = None, options: dict | None = None, **kwargs: Any) -> WorldModel:
    """Build the recommended model of a family, sized for ``system``.

    Args:
        name: one of :data:`MODEL_NAMES` (``explicit``: the system's equations with its default learnable
            constants; ``node``: Neural ODE; ``hybrid``: the equations with learnable constants plus an
            acceleration residual of the system's features (CartPole: ``[sin theta, cos theta, x_dot,
            theta_dot, force]``) with an APHYNITY penalty (``residual="symbolic"``: a
            :class:`~physwm.models.SymbolicField` of the system's library instead, ``terms`` active, no penalty
            unless given, ``residual_space="force"`` for generalised forces through the system's mass matrix;
            what :func:`physwm.discover` returns); ``mlp``, ``gaussian_mlp``, ``vae``, ``gru``,
            ``transformer``; ``ensemble`` of 5 ``gaussian_mlp`` by default; ``gan``, ``pinn_mlp``, ``lagrangian``:
            see :mod:`.gan`, :mod:`.pinn`, :mod:`.lagrangian`).
        system: nominal physics (see :func:`resolve_system`; default gymnasium's CartPole-v1). It sets the
            sizes, ``dt`` (the system's control period) and, for ``explicit``/``hybrid``, the equations and
            starting constants. A user's System class that is not registered yet is registered
            (:func:`physwm.systems.register_system`), so the model's ``build_spec`` rebuilds it by name.
        options: options as a dict (what ``model.build_spec["options"]`` holds); merged with ``kwargs``.
        **kwargs: family options (see :data:`DEFAULT_OPTIONS`; all take ``dt`` and ``seed``, the seed of
            the weight initialisation).

    Returns:
        The model, in float32, with ``model.build_spec`` set.

    Raises:
        ValueError: unknown name or option (listing the valid ones), or an invalid value.
    """
    if name not in DEFAULT_OPTIONS:
        raise ValueError(f"unknown model {name!r}; valid: {list(MODEL_NAMES)}")
    given = {**(options or {}), **kwargs}
    if system is not None and given.get("system") is not None:
        raise ValueError("give the system either as the system argument or as options['system'], not both")
    defaults = {**_COMMON, **DEFAULT_OPTIONS[name]}
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"unknown options {unknown} for model {name!r}; valid: {sorted(defaults)}")
    o = {**copy.deepcopy(defaults), **given}
    cls, p = resolve_system(system if system is not None else o["system"])
    if SYSTEMS.get(cls.name) is not cls:
        register_system(cls)  # a user's own system: its build_spec then rebuilds by name (errors on clashes)
    o["system"] = {"name": cls.name, "params": p.to_dict()}
    if o["dt"] is None:
        o["dt"] = cls.control_period(p)
    if name == "hybrid" and o["residual"] == "symbolic" and "penalty" not in given:
        o["penalty"] = 0.0  # a sparse equation is its own regulariser; a penalty would shrink its coefficients
    if "learnable" in o and o["learnable"] is None:
        o["learnable"] = list(cls.identify)
    if not isinstance(o["seed"], int) or isinstance(o["seed"], bool):
        raise ValueError(f"seed must be an int, got {o['seed']!r}")
    spec = {"name": name, "options": _jsonable(o)}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(o["seed"])
        model = _build(name, cls, p, spec["options"])
    model.build_spec = spec
    return model
