"""Few-shot adaptation to a changed system: :func:`adapt` a trained model to a few transitions of it.

A physics-based model (an explicit model, a hybrid) keeps what it learned and re-identifies only the few
numbers that changed, its physical constants (all of its learnable ones or a chosen subset), by
Levenberg-Marquardt on its own multi-step loss (:func:`~physwm.train.levenberg_marquardt`: a few
forward passes per step, quadratic convergence for the handful of constants, where Adam would need
hundreds of steps); a hybrid's residual stays frozen (``residual="frozen"``, the default) or is then
tuned together with the constants by L-BFGS, regularised towards its trained weights
(``residual="tune"``; only if tuning on the transitions' heads predicts their held-out tails better,
``validation``). The identified constants come with standard errors and 95% intervals from the
Gauss-Newton Hessian of that loss (:func:`~physwm.evaluate.identifiability`). An implicit model has no
constants: it is fine-tuned on the same windows with the same optimiser budget (``steps`` L-BFGS
iterations) and the same regulariser towards its trained weights, the fair baseline.

The loss is the model's own open-loop loss over windows of ``horizon`` transitions (multi-step where the
episodes are long enough), in units of the one-step change's spread of the data the model was first
trained on (its normalisers are kept: they are part of the model).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..checks import finite_float, nonnegative_int, positive_int
from ..data import Trajectories, windows
from ..evaluate import Identifiability, identifiability, learnable_constants, loss_residuals
from ..evaluate.model import check_data_dt
from ..systems import System
from .constants import levenberg_marquardt

__all__ = ["adapt", "Adaptation", "ADAPT_RESIDUAL", "adaptation_episodes", "adaptation_windows", "constant_paths",
           "constant_raw", "constant_value", "held_out_tail", "set_trainable"]

#: What :func:`adapt` does with a physics-based model's networks.
ADAPT_RESIDUAL = ("frozen", "tune")
#: ``residual="tune"`` keeps the tuning only if it lowers the held-out loss by more than this fraction.
TUNING_MARGIN = 0.1


@dataclass
class Adaptation:
    """What :func:`adapt` did (``model.adaptation`` of the adapted copy).

    Attributes:
        mode: ``"constants"`` (constants only, residual frozen), ``"constants+residual"`` or ``"fine-tune"``
            (an implicit model).
        transitions: transitions of the changed system used.
        horizon: transitions per window of the loss.
        trimmed: windows left out of the constants' fit (see ``trim`` of :func:`adapt`).
        loss_before, loss_after: the model's data loss on all the windows (trimmed ones included; mean square,
            units of the one-step change's spread) before and after.
        iterations: optimiser iterations taken (Levenberg-Marquardt plus L-BFGS).
        cpu_seconds: CPU time of the adaptation, s (``time.process_time``).
        previous: the constants before (physical units; empty for implicit models).
        constants: the identified constants (physical units).
        std, low, high: their standard errors and 95% intervals (physical units).
        identifiability: the full report (``None`` for implicit models or ``uncertainty=False``).
        validation: with ``residual="tune"`` and a held-out tail (``validation`` of :func:`adapt`), the held-out
            one-step losses ``{"frozen": ..., "tuned": ...}`` of the networks as trained and as tuned (the tuning
            is kept only if more than ``TUNING_MARGIN`` lower); else empty.
    """

    mode: str
    transitions: int
    horizon: int
    trimmed: int
    loss_before: float
    loss_after: float
    iterations: int
    cpu_seconds: float
    previous: dict[str, float] = field(default_factory=dict)
    constants: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)
    low: dict[str, float] = field(default_factory=dict)
    high: dict[str, float] = field(default_factory=dict)
    identifiability: Identifiability | None = None
    validation: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        """One line per constant: before, after and its 95% interval."""
        head = (f"adapted ({self.mode}) on {self.transitions} transitions, horizon {self.horizon}: loss "
                f"{self.loss_before:.3g} -> {self.loss_after:.3g} in {self.iterations} iterations")  # fmt: skip
        lines = [head]
        if self.validation:
            kept = "kept" if self.mode == "constants+residual" else "rejected: the residual stays as trained"
            lines.append(f"  residual tuning {kept} (held-out one-step loss {self.validation['frozen']:.3g} as "
                         f"trained, {self.validation['tuned']:.3g} tuned)")
        for n, v in self.constants.items():
            ci = f"  95% [{self.low[n]:.5g}, {self.high[n]:.5g}]" if n in self.low else ""
            lines.append(f"  {n:>14s}: {self.previous.get(n, math.nan):.5g} -> {v:.5g}{ci}")
        return "\n".join(lines)


def adaptation_windows(model: nn.Module, data: Any, horizon: int | None) -> tuple[dict[str, torch.Tensor], int, int]:
    """Checked float64 windows of the data for :func:`adapt`: ``(windows, transitions, horizon)``.

    ``horizon=None``: up to 10 transitions, as long as the shortest episode allows (at least 1).

    Raises:
        ValueError: data of another state or control size than the model's, NaN or inf in the data, another
            ``dt``, no transition.
        TypeError: data that is neither a Trajectories nor a batch dict.
    """
    s, c, lengths = adaptation_episodes(model, data)
    return _windows_of(s, c, lengths, horizon)


def _windows_of(s: torch.Tensor, c: torch.Tensor, lengths: torch.Tensor,
                horizon: int | None) -> tuple[dict[str, torch.Tensor], int, int]:  # fmt: skip
    transitions = int(lengths.sum())
    if transitions < 1:
        raise ValueError("data holds no transition")
    shortest = int(lengths[lengths > 0].min())
    horizon = max(1, min(10, shortest)) if horizon is None else positive_int(horizon, "horizon")
    if horizon > int(lengths.max()):
        raise ValueError(f"horizon {horizon} is longer than the longest episode ({int(lengths.max())} transitions)")
    ws, wc = windows(s, c, lengths, horizon)
    return {"states": ws, "controls": wc}, transitions, horizon


def adaptation_episodes(model: nn.Module, data: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The data checked against ``model``, float64: ``(states [N, T+1, n], controls [N, T, m], lengths [N])``
    (raises as :func:`adaptation_windows`)."""
    if isinstance(data, Trajectories):
        check_data_dt(model, data)
        s, c, lengths = data.states, data.controls, data.lengths
    elif isinstance(data, dict):
        if "states" not in data or "controls" not in data:
            raise ValueError("data must be a dict with 'states' [N, T+1, n] and 'controls' [N, T, m]")
        s, c = torch.as_tensor(data["states"]), torch.as_tensor(data["controls"])
        if s.ndim != 3 or c.ndim != 3 or s.shape[0] != c.shape[0] or s.shape[1] != c.shape[1] + 1:
            raise ValueError(f"data states [N, T+1, n] and controls [N, T, m] disagree: {tuple(s.shape)}, "
                             f"{tuple(c.shape)}")  # fmt: skip
        lengths = torch.full((s.shape[0],), c.shape[1], dtype=torch.long)
    else:
        raise TypeError(f"data must be a Trajectories or a dict of 'states' and 'controls', got {type(data).__name__}")
    if s.shape[-1] != model.state_dim:
        raise ValueError(f"data has states of size {s.shape[-1]}, the model's state_dim is {model.state_dim}")
    if c.shape[-1] != model.control_dim:
        raise ValueError(f"data has controls of size {c.shape[-1]}, the model's control_dim is {model.control_dim}")
    s, c = s.to(torch.float64), c.to(torch.float64)
    mask = torch.arange(c.shape[1])[None, :] < lengths[:, None]
    if not (torch.isfinite(c[mask]).all() and torch.isfinite(s[:, :-1][mask]).all()
            and torch.isfinite(s[:, 1:][mask]).all()):  # fmt: skip
        raise ValueError("data contains NaN or inf in its valid transitions")
    return s, c, lengths


def held_out_tail(s: torch.Tensor, c: torch.Tensor, lengths: torch.Tensor, fraction: float,
                  horizon: int | None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] | None:  # fmt: skip
    """The last ``fraction`` of each episode's transitions (at least one) held out: ``(windows to fit on (the
    episodes' heads, ``horizon`` as in :func:`adaptation_windows`), one-step windows of the tails)``; ``None`` when
    no head would keep a transition."""
    tail = torch.clamp(torch.round(fraction * lengths.to(torch.float64)).long(), min=1) * (lengths > 0)
    heads = lengths - tail
    if int(heads.max()) < 1:
        return None
    shortest = int(heads[heads > 0].min())
    fit, _, _ = _windows_of(s, c, heads, None if horizon is None else min(horizon, shortest))
    ws, wc = windows(s, c, lengths, 1)
    start = torch.arange(c.shape[1])[None, :]
    in_tail = (start >= heads[:, None])[start < lengths[:, None]]  # windows() order: episode, then start
    return fit, {"states": ws[in_tail], "controls": wc[in_tail]}


def regularised_lbfgs(model: nn.Module, params: list[torch.Tensor], batch: dict[str, torch.Tensor], steps: int,
                       regularization: float, lr: float) -> int:  # fmt: skip
    """L-BFGS on ``model.loss(batch) + regularization * mean((w - w0)^2)`` over ``params``; iterations taken."""
    anchors = [p.detach().clone() for p in params]
    count = sum(p.numel() for p in params)
    opt = torch.optim.LBFGS(params, lr=lr, max_iter=steps, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-10, tolerance_change=1e-12)  # fmt: skip
    model.train()

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss, _ = model.loss(batch)
        if regularization:
            loss = loss + regularization * sum(((p - a) ** 2).sum() for p, a in zip(params, anchors)) / count
        loss.backward()
        return loss

    opt.step(closure)
    model.eval()
    first = opt.param_groups[0]["params"][0]
    return int(opt.state[first].get("n_iter", steps)) if first in opt.state else steps


def _typed(batch: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {k: v.to(dtype) for k, v in batch.items()}


@torch.no_grad()
def _trimmed_fit(work: nn.Module, batch: dict[str, torch.Tensor], steps: int, trim: float | None,
                 p: int) -> tuple[torch.Tensor, int]:  # fmt: skip
    """Levenberg-Marquardt on ``work``'s constants, refitted without outlying windows (``trim``, see :func:`adapt`);
    ``(kept windows mask [W], iterations)``."""
    s, c = batch["states"], batch["controls"]
    kept = torch.ones(s.shape[0], dtype=torch.bool)
    its = levenberg_marquardt(work, s, c, steps)["iterations"]
    for _ in range(3 if trim else 0):
        rms = loss_residuals(work, s, c).reshape(s.shape[0], -1).pow(2).mean(1).sqrt()
        new = rms <= trim * rms.median()
        if int(new.sum()) < max(p, (s.shape[0] + 1) // 2) or torch.equal(new, kept):
            break
        kept = new
        its += levenberg_marquardt(work, s[kept], c[kept], steps)["iterations"]
    return kept, its


def _data_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> float:
    with torch.no_grad():
        if learnable_constants(model) or hasattr(model, "scaled_error"):
            return float(loss_residuals(model, batch["states"], batch["controls"]).pow(2).mean())
        return float(model.loss(batch)[0])


def adapt(
    model: nn.Module,
    data: Any,
    *,
    params: list[str] | tuple[str, ...] | None = None,
    steps: int | None = None,
    residual: str = "frozen",
    horizon: int | None = None,
    regularization: float = 1e-3,
    lr: float = 1.0,
    trim: float | None = 3.0,
    validation: float | None = 0.2,
    uncertainty: bool = True,
) -> nn.Module:
    """A copy of ``model`` adapted to a few transitions of a changed system (see the module docstring).

    Args:
        model: a trained WorldModel. With learnable physical constants (explicit, hybrid) they are
            re-identified; without (MLP, ensemble, ...) every weight is fine-tuned.
        data: transitions of the changed system: a :class:`~physwm.data.Trajectories` or ``{"states": [N, T+1,
            n], "controls": [N, T, m]}``.
        params: the constants to re-identify (labels of :func:`~physwm.evaluate.learnable_constants`; default
            all the model's learnable constants); the others stay as they are.
        steps: optimiser budget: Levenberg-Marquardt iterations on the constants (default 30), and L-BFGS
            iterations for the networks (``residual="tune"``, implicit models; default 100).
        residual: a physics-based model's networks: ``"frozen"`` (constants only) or ``"tune"`` (constants,
            then constants and networks, regularised towards the trained weights).
        horizon: transitions per window of the loss. Default: one-step windows for the constants (each
            transition its own residual, so the few the model cannot represent can be trimmed) and up to 10
            transitions, as the episodes allow, for the networks (the multi-step loss).
        regularization: weight of ``mean((w - w_trained)^2)`` added to the loss when networks are tuned.
        lr: L-BFGS's step scale (with its strong-Wolfe line search, 1 is the usual choice).
        trim: after fitting the constants, leave out the windows whose residual RMS exceeds ``trim`` times the
            median and fit again (up to 3 rounds; never below half the windows or fewer than the constants):
            transitions the model class cannot represent, such as stiff Coulomb friction switching within
            one RK4 step, otherwise bias every constant. ``None``: no trimming.
        validation: with ``residual="tune"``, hold out the last ``validation`` fraction of each episode's
            transitions (at least one) and tune the networks on the rest: if that predicts the held-out
            transitions (one step) more than 10% better than the constants alone (a tie at round-off is no reason
            to move thousands of weights), the networks are tuned again on all the
            transitions; else they stay as trained (``mode`` ``"constants"``; both losses in
            ``Adaptation.validation``). On a few transitions tuning
            thousands of weights mostly fits them, not the change. ``None``: always keep the tuning.
        uncertainty: compute standard errors and 95% intervals of the identified constants.

    Returns:
        The adapted copy (``model`` is untouched), with ``.adaptation`` an :class:`Adaptation`.

    Raises:
        ValueError: fewer transitions than constants to identify, data of another state or control size,
            NaN/inf in the data, unknown constants (listing the valid ones), bad arguments.
        TypeError: a model that is not a WorldModel, data of an unknown kind.
    """
    for attr in ("state_dim", "control_dim", "loss", "rollout"):
        if not hasattr(model, attr):
            raise TypeError(f"model must be a WorldModel (missing {attr!r}), got {type(model).__name__}")
    if residual not in ADAPT_RESIDUAL:
        raise ValueError(f"unknown residual mode {residual!r}; valid: {list(ADAPT_RESIDUAL)}")
    if isinstance(params, str):
        raise TypeError(f"params must be a list of constant names, got the string {params!r}")
    regularization = finite_float(regularization, "regularization", nonnegative=True)
    lr = finite_float(lr, "lr", positive=True)
    c0 = time.process_time()
    if trim is not None:
        trim = finite_float(trim, "trim", positive=True)
    if validation is not None:
        validation = finite_float(validation, "validation", positive=True)
        if validation >= 1:
            raise ValueError(f"validation must be a fraction below 1 of each episode's transitions, got {validation}")
    s, c, lengths = adaptation_episodes(model, data)
    batch, transitions, net_horizon = _windows_of(s, c, lengths, horizon)
    const_batch, _, const_horizon = _windows_of(s, c, lengths, 1 if horizon is None else horizon)
    consts = constant_paths(model)
    valid = [label for label, _, _ in consts]
    chosen = valid if params is None else list(params)
    unknown = sorted(set(chosen) - set(valid))
    if unknown:
        raise ValueError(f"unknown constants {unknown} in params; valid: {valid}")
    chosen_paths = [(label, path, name) for label, path, name in consts if label in chosen]
    if transitions < len(chosen):
        raise ValueError(f"{transitions} transitions cannot determine {len(chosen)} constants ({chosen}); give at "
                         f"least {len(chosen)} transitions, or fewer params")  # fmt: skip
    if consts and not chosen and residual == "frozen":
        raise ValueError("params=[] with residual='frozen' leaves nothing to adapt")
    out = copy.deepcopy(model).eval()
    dtype = next(out.parameters()).dtype
    typed = _typed(batch, dtype)
    set_trainable(out, chosen_paths, networks=False)
    networks = not chosen or residual == "tune"
    scored = typed if networks else _typed(const_batch, dtype)  # the windows the losses are reported on
    before = _data_loss(out, scored)
    previous = {label: constant_value(out, path, name) for label, path, name in chosen_paths}
    iterations, total = 0, const_batch["states"].shape[0]
    validated: dict[str, float] = {}
    rejected = False
    if chosen:
        lm_steps = 30 if steps is None else nonnegative_int(steps, "steps")
        work = copy.deepcopy(out).double()
        if lm_steps:
            kept, its = _trimmed_fit(work, const_batch, lm_steps, trim, len(chosen))
            iterations += its
            const_batch = {k: v[kept] for k, v in const_batch.items()}
        with torch.no_grad():
            for _, path, name in chosen_paths:
                constant_raw(out, path, name).copy_(constant_raw(work, path, name))
    if residual == "tune" or not chosen:
        net_steps = 100 if steps is None else nonnegative_int(steps, "steps")
        set_trainable(out, chosen_paths, networks=True)
        trainable = [p for p in out.parameters() if p.requires_grad]
        split = held_out_tail(s, c, lengths, validation, horizon) if chosen and validation and net_steps else None
        if split is None:
            if net_steps and trainable:
                iterations += regularised_lbfgs(out, trainable, typed, net_steps, regularization, lr)
        elif trainable:
            fit_batch, held_out = _typed(split[0], dtype), _typed(split[1], dtype)
            untuned = copy.deepcopy(out.state_dict())
            validated["frozen"] = _data_loss(out, held_out)
            iterations += regularised_lbfgs(out, trainable, fit_batch, net_steps, regularization, lr)
            validated["tuned"] = _data_loss(out, held_out)
            out.load_state_dict(untuned)
            if validated["tuned"] < (1 - TUNING_MARGIN) * validated["frozen"]:  # it generalises: again, on all
                iterations += regularised_lbfgs(out, trainable, typed, net_steps, regularization, lr)
            else:  # it did not: constants only
                rejected = True
    trimmed = total - const_batch["states"].shape[0]
    mode = "fine-tune" if not consts else ("constants+residual" if residual == "tune" and not rejected else "constants")
    set_trainable(out, chosen_paths, networks=False)
    after = _data_loss(out, scored)
    horizon = const_horizon if chosen and mode == "constants" else net_horizon
    result = Adaptation(mode=mode, transitions=transitions, horizon=horizon, trimmed=trimmed, loss_before=before,
                        loss_after=after, iterations=iterations, cpu_seconds=0.0, previous=previous,
                        validation=validated)  # fmt: skip
    result.constants = {label: constant_value(out, path, name) for label, path, name in chosen_paths}
    if chosen and uncertainty:
        report = identifiability(out, const_batch, const_horizon, max_windows=None)
        result.identifiability = report
        result.std = dict(zip(report.names, report.std))
        result.low = dict(zip(report.names, report.low))
        result.high = dict(zip(report.names, report.high))
    set_trainable(out, consts, networks=True)  # the copy trains like the original (all its constants learnable)
    result.cpu_seconds = time.process_time() - c0
    out.adaptation = result
    return out


def constant_paths(model: nn.Module) -> list[tuple[str, str, str]]:
    """``(label, module path, constant name)`` of the learnable constants of ``model`` (the labels of
    :func:`~physwm.evaluate.learnable_constants`), by path, so they can be found again in a copy."""
    paths = {id(mod): path for path, mod in model.named_modules()}
    return [(label, paths[id(mod)], name) for label, mod, name in learnable_constants(model)]


def constant_raw(model: nn.Module, path: str, name: str) -> torch.Tensor:
    """The parameter ``raw = value / scale`` of constant ``name`` of the System module at ``path``."""
    return model.get_submodule(path).raw[name]


def constant_value(model: nn.Module, path: str, name: str) -> float:
    """The value (physical units) of constant ``name`` of the System module at ``path``."""
    mod = model.get_submodule(path)
    spec = type(mod).constants[name]
    return float(spec.scale * max(float(mod.raw[name].detach()), spec.floor))


def set_trainable(model: nn.Module, constants: list[tuple[str, str, str]], networks: bool) -> None:
    """Make exactly ``constants`` (and, if ``networks``, every other parameter outside System modules) trainable."""
    in_systems = {id(p) for mod in model.modules() if isinstance(mod, System) for p in mod.parameters()}
    for p in model.parameters():
        p.requires_grad_(networks and id(p) not in in_systems)
    for _, path, name in constants:
        constant_raw(model, path, name).requires_grad_(True)
