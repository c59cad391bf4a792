"""``physwm.discover``: the missing physics of a hybrid (or of data) as readable equations.

The universal-differential-equation recipe (Rackauckas et al. 2020) with SINDy's sparse regression
(Brunton et al. 2016; with control, SINDYc): take the known physics (a fitted hybrid's, with its identified
constants, or the system's nominal equations), measure what it misses on the training transitions,
regress that on a library of candidate terms (:meth:`physwm.systems.System.library` or the user's own) with
sequential thresholded least squares, pick the threshold by held-out error, then refit the kept
coefficients jointly with the physical constants through the integrator (a multi-step loss, L-BFGS). The
result is a hybrid ``ODEModel(HybridField(physics, SymbolicField))``: it integrates, fits, plans, saves and
reloads like every model, and prints as equations.

What the physics misses, on the velocity rows ``r`` of a transition ``(x_t, u_t) -> x_{t+1}`` over ``dt``:

* ``target="data"`` (default): ``(x_{t+1} - Phi(x_t, u_t))_r / dt``, with ``Phi`` one step of the physics
  through the model's integrator, regressed on the terms averaged over the step's ends (trapezoid:
  ``(theta(x_t, u_t) + theta(x_{t+1}, u_t)) / 2``), which is exact to second order in ``dt``;
* ``target="network"``: a fitted hybrid's network residual at ``x_t`` (where noisy data alone cannot pin it).

In which *space* the terms are regressed (``space``): on the accelerations as they are, or, for a system
that declares its mass matrix (:meth:`physwm.systems.System.mass_matrix`), as generalised forces ``Q = M(x)
a`` on its coordinates (``M`` averaged over the step's ends). Drag, friction and damping are forces: a
quadratic drag on the cart is one term ``-c x_dot|x_dot|`` of ``Q_x`` but, through ``M^-1``, a mix of
angle-dependent terms on both accelerations that no library of products holds exactly. ``space="auto"``
(default) regresses in both and keeps the one whose equations predict the held-out accelerations better.

Why our own STLSQ rather than PySINDy's: our targets are the residual of a physics model on given rows,
with controls entering the library as functions of ``(x, u)`` and terms defined as torch functions that
must also run inside the integrator; PySINDy's ``STLSQ`` optimiser would fit the same arrays, but its
library and feature-name machinery would be a second, numpy copy of ours, and the dependency adds nothing
the 40 lines of :mod:`physwm.train.sparse` do not (same algorithm, float64, relative thresholds).

When the library lacks the true term, the regression leaves part of the residual unexplained; ``discover``
reports that fraction (:attr:`Discovery.residual_left`), warns (:class:`DiscoveryWarning`) and, given a
network hybrid, returns the network hybrid when it fits the data better, rather than promoting a wrong
equation.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from .checks import check_choice, finite_float, nonnegative_int, positive_int
from .data.trajectories import EpisodeData
from .evaluate.model import windows_rmse
from .models import HybridField, ODEModel, SymbolicField, build
from .models.symbolic import derivative_name, force_name
from .systems import DEFAULT_SYSTEM, System, get_system
from .systems.library import check_library, evaluate_library
from .train import FitConfig, fit
from .train.sparse import DEFAULT_THRESHOLDS, bootstrap, select_threshold, stlsq, threshold_path

__all__ = ["discover", "Discovery", "DiscoveryWarning", "TARGETS", "DISCOVERY_SPACES"]

#: What the regression fits (see the module docstring).
TARGETS = ("data", "network")
#: Where the terms act (see the module docstring): ``"auto"`` picks by held-out error.
DISCOVERY_SPACES = ("auto", "acceleration", "force")


class DiscoveryWarning(UserWarning):
    """The library did not explain what the physics misses (see :attr:`Discovery.residual_left`)."""


@dataclass
class Discovery:
    """What :func:`discover` found, attached to the model it returns as ``model.discovery``.

    Attributes:
        equations: ``row -> "c1*term1 + ..."``, the symbolic residual after the joint refit.
        coefficients: ``row -> {term: coefficient}`` (physical units), after the refit.
        constants: the physical constants after the refit (the learnable ones).
        inclusion: ``row -> {term: fraction of bootstrap resamples that kept it}`` (terms kept at least once).
        intervals: ``row -> {term: (2.5%, 97.5%) quantiles of its bootstrap coefficients}`` (same terms).
        threshold: ``row -> the relative threshold chosen``.
        path: ``row -> [(threshold, active terms, held-out relative MSE), ...]``, the whole search.
        residual_left: ``row -> held-out RMS of what the equation leaves of the residual / its RMS`` (0: all
            explained; 1: nothing), before the refit.
        kept: ``"symbolic"`` or ``"network"`` (the network hybrid given was kept: see :func:`discover`).
        errors: validation open-loop RMSE (units of the data's state spread, ``horizon`` steps) of the
            symbolic hybrid and, if given, the network hybrid.
        space: ``"acceleration"`` or ``"force"``: what the equations' rows are (``x_ddot`` or ``Q_x``).
        space_errors: ``space -> held-out MSE of the accelerations the regression predicts / their mean
            square`` (mean over rows), for every space tried: how ``space="auto"`` chose.
    """

    equations: dict[str, str]
    coefficients: dict[str, dict[str, float]]
    constants: dict[str, float]
    inclusion: dict[str, dict[str, float]]
    intervals: dict[str, dict[str, tuple[float, float]]]
    threshold: dict[str, float]
    path: dict[str, list[tuple[float, int, float]]]
    residual_left: dict[str, float]
    kept: str = "symbolic"
    errors: dict[str, float] = field(default_factory=dict)
    space: str = "acceleration"
    space_errors: dict[str, float] = field(default_factory=dict)

    def format(self, digits: int = 4) -> str:
        """The equations with each term's bootstrap inclusion probability and 95% interval, as text."""
        lines = []
        what = "generalised force" if self.space == "force" else "residual"
        for row, eq in self.equations.items():
            lines.append(f"{row} ({what}) = {eq}")
            for term, p in self.inclusion.get(row, {}).items():
                lo, hi = self.intervals[row][term]
                c = self.coefficients[row].get(term)
                value = f"{c:.{digits}g}" if c is not None else "dropped"
                lines.append(f"    {term:<24} {value:>12}  P(in)={p:4.2f}  95% [{lo:.{digits}g}, {hi:.{digits}g}]")
            lines.append(f"    residual left (held-out RMS fraction): {self.residual_left[row]:.3g}")
        if self.constants:
            lines.append("constants: " + ", ".join(f"{k}={v:.{digits}g}" for k, v in self.constants.items()))
        if self.errors:
            lines.append("validation RMSE: " + ", ".join(f"{k} {v:.3g}" for k, v in self.errors.items()))
        if len(self.space_errors) > 1:
            lines.append("space (held-out acceleration error): "
                         + ", ".join(f"{k} {v:.3g}" for k, v in self.space_errors.items()) + f" -> {self.space}")
        lines.append(f"kept: {self.kept}")
        return "\n".join(lines)


def _physics_of(model_or_data: Any, data: Any, system: Any) -> tuple[System, Any, ODEModel | None, Any]:
    """``(physics, integrator, network hybrid or None, data)`` from :func:`discover`'s first arguments."""
    if isinstance(model_or_data, ODEModel):
        if data is None:
            raise ValueError("discover(model, data): give the training data as the second argument")
        f = model_or_data.field
        if isinstance(f, HybridField) and isinstance(f.physics, System):
            return copy.deepcopy(f.physics), model_or_data.integrator, model_or_data, data
        if isinstance(f, System):
            return copy.deepcopy(f), model_or_data.integrator, None, data
        raise TypeError(f"discover needs a hybrid or explicit ODEModel of a System, got a {type(f).__name__} field")
    if isinstance(model_or_data, torch.nn.Module):
        raise TypeError(f"discover needs an ODEModel (hybrid or explicit), got {type(model_or_data).__name__}")
    if data is not None:
        raise TypeError("discover(data, ...): give the data once (the second argument is for discover(model, data))")
    cls = DEFAULT_SYSTEM if system is None else get_system(system)
    physics = cls(cls.Params(), learnable=cls.identify) if not isinstance(system, System) else copy.deepcopy(system)
    return physics, "rk4", None, model_or_data


def _transitions(data: Any, physics: System, dt: float | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ep = EpisodeData(data, "data", physics.state_dim, physics.control_dim, "discover", dt)
    s, c = ep.windows(1, torch.float64, torch.device("cpu"))
    return s[:, 0], c[:, 0], s[:, 1]


def _targets(
    physics: System, integrator: Any, dt: float, x0: torch.Tensor, u: torch.Tensor, x1: torch.Tensor,
    library: dict, rows: tuple[int, ...], target: str, network: ODEModel | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:  # fmt: skip
    """``(theta [W, K], y [W, len(rows)], M [W, k, k] or None)``: the terms, what the physics misses on the
    accelerations, and the physics' mass matrix there (``None`` if it declares none; see the module doc)."""
    phys = copy.deepcopy(physics).double()
    mass = None
    with torch.no_grad():
        if target == "network":
            residual = copy.deepcopy(network.field.residual).double()
            y = residual(x0, u)
            theta = evaluate_library(library, x0, u, check=True)
            if type(phys).has_mass_matrix():
                mass = phys.mass_matrix(x0, phys.params)
        else:
            idx = list(rows)
            y = (x1 - x0)[:, idx] / dt - 0.5 * (phys(x0, u) + phys(x1, u))[:, idx]
            theta = 0.5 * (evaluate_library(library, x0, u, check=True) + evaluate_library(library, x1, u, check=True))
            if type(phys).has_mass_matrix():
                mass = 0.5 * (phys.mass_matrix(x0, phys.params) + phys.mass_matrix(x1, phys.params))
    return theta, y, mass


def discover(
    model_or_data: Any,
    data: Any = None,
    *,
    library: dict | None = None,
    threshold: float | None = None,
    system: Any = None,
    target: str = "data",
    space: str = "auto",
    val_fraction: float = 0.2,
    tolerance: float = 1e-4,
    bootstrap_samples: int = 20,
    horizon: int = 10,
    refit_epochs: int = 2,
    max_windows: int = 256,
    max_residual_left: float = 0.05,
    seed: int = 0,
    progress: bool = False,
) -> ODEModel:
    """Discover the missing physics as a sparse equation: a symbolic hybrid (see the module docstring).

    Args:
        model_or_data: a fitted hybrid ``ODEModel`` (its physics with identified constants and its network
            residual), an explicit one (its physics), or the data itself (then the physics is ``system``'s
            nominal equations with its default learnable constants).
        data: the training data (a Trajectories or a dict of ``states``/``controls``) when a model is given.
        library: candidate terms ``name -> f(x [..., n], u [..., m]) -> [...]``; ``None``: the system's
            (:meth:`~physwm.systems.System.library`). A custom library makes a model without ``build_spec``
            (save its weights; rebuild it with the same library).
        threshold: relative threshold of the regression (a term is kept when it makes at least this share of
            the residual's RMS); ``None``: chosen per row by held-out error over a grid (1e-4 ... 0.5).
        system: the system (name, class or instance) when ``model_or_data`` is data (default CartPole).
        target: ``"data"`` or ``"network"`` (see the module docstring).
        space: ``"acceleration"``, ``"force"`` (generalised forces through the system's mass matrix; the
            system must declare one) or ``"auto"`` (default: both when the system declares a mass matrix, the
            one that predicts the held-out accelerations better; see the module docstring).
        val_fraction: share of the transitions held out to choose the threshold and measure the residual left.
        tolerance: the threshold chosen is the sparsest whose held-out relative MSE is within ``tolerance``
            (and 10%) of the best (see :func:`physwm.train.sparse.select_threshold`).
        bootstrap_samples: resamples for inclusion probabilities and intervals (0: none).
        horizon: steps of the multi-step loss of the joint refit.
        refit_epochs: L-BFGS epochs (20 iterations each) of the joint refit (0: no refit).
        max_windows: at most this many windows of the data in the refit (evenly drawn, seeded).
        max_residual_left: a row whose held-out residual left (RMS fraction) exceeds this is "not explained":
            a :class:`DiscoveryWarning`, and the network hybrid given is kept if it fits the data better.
        seed: seeds the held-out split, the bootstrap and the refit's windows.
        progress: show the refit's progress bar.

    Returns:
        The symbolic hybrid (or the network hybrid given, see ``max_residual_left``), with ``model.discovery``
        a :class:`Discovery`.

    Raises:
        TypeError, ValueError: naming the argument: bad data, a library term of the wrong shape or NaN, an
            empty library, a ``threshold`` that removes every term although the physics misses something.
    """
    physics, integrator, network, data = _physics_of(model_or_data, data, system)
    target = check_choice(target, "target", TARGETS)
    space = check_choice(space, "space", DISCOVERY_SPACES)
    if target == "network" and (network is None or not isinstance(network.field, HybridField)):
        raise ValueError("target='network' needs a fitted hybrid with a network residual as the first argument")
    finite_float(threshold, "threshold", nonnegative=True, allow_none=True)
    if not 0.0 < finite_float(val_fraction, "val_fraction", positive=True) < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    for name, v in (("bootstrap_samples", bootstrap_samples), ("refit_epochs", refit_epochs)):
        nonnegative_int(v, name)
    positive_int(horizon, "horizon")
    positive_int(max_windows, "max_windows")
    cls = type(physics)
    lib = check_library(cls.library() if library is None else library, cls.state_dim, cls.control_dim)
    rows = tuple(cls.velocity_index)
    dt = float(model_or_data.dt) if isinstance(model_or_data, ODEModel) else _data_dt(data, cls, physics)
    x0, u, x1 = _transitions(data, physics, dt)
    theta, y_acc, mass = _targets(physics, integrator, dt, x0, u, x1, lib, rows, target, network)
    if space == "force" and mass is None:
        raise ValueError(f"space='force' needs a system with a mass_matrix; {cls.__name__} defines none")
    spaces = ("acceleration", "force") if space == "auto" and mass is not None else \
        ("acceleration",) if space == "auto" else (space,)  # fmt: skip
    split = _split(theta.shape[0], val_fraction, seed)
    tried = {}
    for sp in spaces:
        y = y_acc if sp == "acceleration" else (mass @ y_acc.unsqueeze(-1)).squeeze(-1)
        reg = _regress(theta, y, cls, rows, lib, threshold, split, tolerance, bootstrap_samples, seed, sp)
        tried[sp] = (reg, y, _acceleration_error(theta, y_acc, mass, reg["xi"], split[0], sp))
    space = min(tried, key=lambda sp: (tried[sp][2], spaces.index(sp)))
    regression, y = tried[space][0], tried[space][1]

    model = _symbolic_model(physics, cls, lib, library is not None, rows, regression["terms"], integrator, dt,
                            model_or_data, space)  # fmt: skip
    train, val = _windows(data, model, horizon, max_windows, seed)
    model.fit_normalization(train["states"], train["controls"])
    model.field.residual.set_coefficients(regression["xi"])
    if refit_epochs and any(regression["terms"].values()):
        cfg = FitConfig(horizon=horizon, optimizer="lbfgs", lr=1.0, epochs=refit_epochs, early_stopping=2,
                        min_delta=1e-3, diagnose=False, seed=seed, val_horizon=horizon)  # fmt: skip
        fit(model, train, val, config=cfg, progress=progress)
        if _prune(model.field.residual, regression, theta, y):  # a term the refit made negligible: drop, refit
            fit(model, train, val, config=cfg, progress=progress)
            if getattr(model, "build_spec", None) is not None:  # the spec rebuilds the pruned set of terms
                model.build_spec["options"]["terms"] = model.field.residual.active_terms()
    errors = {"symbolic": windows_rmse(model, val["states"], val["controls"], model.state_norm.std)}
    kept = "symbolic"
    unexplained = {r: v for r, v in regression["residual_left"].items() if v > max_residual_left}
    if network is not None and isinstance(network.field, HybridField) and not isinstance(
        network.field.residual, SymbolicField
    ):
        errors["network"] = windows_rmse(network, val["states"].to(network.state_norm.std.dtype),
                                         val["controls"].to(network.state_norm.std.dtype), network.state_norm.std)
        if unexplained and errors["network"] < errors["symbolic"]:
            kept = "network"
    if unexplained:
        what = ", ".join(f"{r}: {v:.1%}" for r, v in unexplained.items())
        verdict = "keeping the network hybrid" if kept == "network" else "returning the symbolic hybrid anyway"
        warnings.warn(
            f"the library does not explain what the physics misses (held-out residual left {what} of its RMS); "
            f"a term outside the library is likely: {verdict}", DiscoveryWarning, stacklevel=2,
        )  # fmt: skip
    sym = model.field.residual
    result = Discovery(
        equations=sym.equations(), coefficients=sym.coefficients(), constants=model.field.physics.identified(),
        inclusion=regression["inclusion"], intervals=regression["intervals"], threshold=regression["threshold"],
        path=regression["path"], residual_left=regression["residual_left"], kept=kept, errors=errors,
        space=space, space_errors={sp: t[2] for sp, t in tried.items()},
    )  # fmt: skip
    out = network if kept == "network" else model
    out.discovery = result
    return out


def _prune(sym: SymbolicField, regression: dict, theta: torch.Tensor, y: torch.Tensor) -> bool:
    """Drop the terms whose refitted contribution fell below their row's threshold; whether any was dropped."""
    xi = sym.coefficient_matrix().detach().double()
    theta_rms, y_rms = theta.pow(2).mean(0).sqrt(), y.pow(2).mean(0).sqrt()
    terms, dropped = sym.active_terms(), False
    for i, row in enumerate(sym.row_names):
        thr = regression["threshold"].get(row, 0.0)
        keep = [t for t in terms[row]
                if abs(float(xi[i, sym.term_names.index(t)])) * float(theta_rms[sym.term_names.index(t)])
                >= thr * float(y_rms[i])]  # fmt: skip
        dropped |= len(keep) < len(terms[row])
        terms[row] = keep
    if dropped:
        sym.set_terms(terms)
    return dropped


def _data_dt(data: Any, cls: type[System], physics: System) -> float:
    dt = getattr(data, "dt", None)
    if dt is None and isinstance(data, dict):
        dt = data.get("dt")
    return float(dt) if dt is not None else cls.control_period(physics.params)


def _regress(
    theta: torch.Tensor, y: torch.Tensor, cls: type[System], rows: tuple[int, ...], lib: dict,
    threshold: float | None, split: tuple[torch.Tensor, torch.Tensor], tolerance: float, samples: int, seed: int,
    space: str,
) -> dict[str, Any]:  # fmt: skip
    """The sparse regression of every row (accelerations or generalised forces, ``space``): terms,
    coefficients, threshold path, bootstrap; ``split`` = (held-out, training) sample indices."""
    names = list(lib)
    if space == "force":
        row_names = [force_name(cls.states[q].name) for q in cls.position_index]
    else:
        row_names = [derivative_name(cls.states[r].name) for r in rows]
    val, tr = split
    thresholds = DEFAULT_THRESHOLDS if threshold is None else (float(threshold),)
    xi = torch.zeros(len(rows), len(names), dtype=torch.float64)
    out: dict[str, Any] = {"terms": {}, "inclusion": {}, "intervals": {}, "threshold": {}, "path": {},
                           "residual_left": {}}  # fmt: skip
    y_scale = float(y.pow(2).mean().sqrt())
    for i, row in enumerate(row_names):
        yi = y[:, i]
        if float(yi.pow(2).mean().sqrt()) <= 1e-9 * max(y_scale, 1.0):
            out["terms"][row], out["threshold"][row], out["path"][row] = [], 0.0, []
            out["residual_left"][row], out["inclusion"][row], out["intervals"][row] = 0.0, {}, {}
            continue  # nothing missing on this row
        path = threshold_path(theta[tr], yi[tr], theta[val], yi[val], thresholds)
        chosen = select_threshold(path, tolerance=tolerance)
        if chosen.active == 0:
            if threshold is not None:
                raise ValueError(
                    f"threshold={threshold} removes every term of row {row!r} although the physics misses something "
                    f"there (held-out residual left 100%); give a smaller threshold or threshold=None"
                )
        xi[i] = stlsq(theta, yi, chosen.threshold)
        out["terms"][row] = [names[k] for k in torch.nonzero(xi[i]).flatten().tolist()]
        out["threshold"][row] = chosen.threshold
        out["path"][row] = [(p.threshold, p.active, p.heldout) for p in path]
        out["residual_left"][row] = math.sqrt(max(chosen.heldout, 0.0))
        incl, coefs = bootstrap(theta[tr], yi[tr], chosen.threshold, samples=samples, seed=seed + 1 + i) if samples \
            else (torch.zeros(len(names)), torch.zeros(1, len(names)))  # fmt: skip
        kept = [k for k in range(len(names)) if incl[k] > 0 or xi[i, k] != 0]
        out["inclusion"][row] = {names[k]: float(incl[k]) for k in kept}
        q = torch.quantile(coefs, torch.tensor([0.025, 0.975], dtype=coefs.dtype), dim=0) if samples else None
        out["intervals"][row] = {names[k]: ((float(q[0, k]), float(q[1, k])) if q is not None else (math.nan, math.nan))
                                 for k in kept}  # fmt: skip
    out["xi"] = xi
    return out


def _split(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(held-out, training)`` indices of ``n`` samples (seeded)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    n_val = max(1, int(round(val_fraction * n)))
    return perm[:n_val], perm[n_val:]


def _acceleration_error(
    theta: torch.Tensor, y_acc: torch.Tensor, mass: torch.Tensor | None, xi: torch.Tensor, val: torch.Tensor,
    space: str,
) -> float:  # fmt: skip
    """Held-out MSE of the accelerations the regression ``xi`` predicts, relative to their mean square, mean
    over the rows that miss anything (0 if none does)."""
    pred = theta[val] @ xi.t()
    if space == "force":
        pred = torch.linalg.solve(mass[val], pred.unsqueeze(-1)).squeeze(-1)
    ms = y_acc[val].pow(2).mean(0)
    scale = float(y_acc.pow(2).mean())
    keep = ms > 1e-18 * max(scale, 1.0)
    if not bool(keep.any()):
        return 0.0
    return float(((y_acc[val] - pred).pow(2).mean(0)[keep] / ms[keep]).mean())


def _symbolic_model(
    physics: System, cls: type[System], lib: dict, custom: bool, rows: tuple[int, ...], terms: dict,
    integrator: Any, dt: float, source: Any, space: str,
) -> ODEModel:  # fmt: skip
    """The symbolic hybrid with ``physics``'s constants and learnable set (``build_spec`` set unless custom)."""
    if not custom:
        spec = getattr(source, "build_spec", None) or {}
        opts = {k: v for k, v in (spec.get("options") or {}).items()
                if k in ("integrator", "substeps", "rtol", "atol", "adjoint", "max_steps")}  # fmt: skip
        return build("hybrid", physics, residual="symbolic", terms=terms, learnable=list(physics.learnable),
                     dt=dt, residual_space=space, **opts)  # fmt: skip
    residual = SymbolicField(cls, library=lib, rows=rows, terms=terms, space=space)
    phys = cls(cls.Params.from_dict(physics.params.to_dict()), learnable=physics.learnable)
    return ODEModel(HybridField(phys, residual), integrator, dt)


def _windows(data: Any, model: ODEModel, horizon: int, max_windows: int, seed: int) -> tuple[dict, dict]:
    """Training and validation windows of ``horizon`` steps (at most ``max_windows`` each, seeded, disjoint)."""
    ep = EpisodeData(data, "data", model.state_dim, model.control_dim, "discover", model.dt)
    s, c = ep.windows(horizon, torch.float32, torch.device("cpu"))
    gen = torch.Generator().manual_seed(int(seed) + 7)
    perm = torch.randperm(s.shape[0], generator=gen)
    half = max(1, min(max_windows, s.shape[0] // 2))
    tr, va = perm[:half], perm[half : 2 * half] if s.shape[0] > 1 else perm[:1]
    return {"states": s[tr], "controls": c[tr]}, {"states": s[va], "controls": c[va]}
