"""Training across a family of systems (:func:`fit_family`) and adapting only the context (:func:`adapt_context`).

The data hold episodes of several members of a family (systems that differ in a few constants); ``members``
says which member recorded each episode. :func:`fit_family` trains a :class:`~physwm.models.FamilyModel`
(physics-based) or :class:`~physwm.models.ContextMLP` (implicit) on all of them at once: shared weights and
constants, one context per member, every window rolled out under its own member's context.

A FamilyModel's constants start from Levenberg-Marquardt fits on the one-step transitions (the base model's
residual, if any, still zero), alternating between each member's own constants (on its transitions) and the
shared ones (on all, each window with its member's constants), then Adam trains everything jointly (constants at
``constants_lr``, networks at ``lr``, cosine decay, ``steps`` gradient steps, the multi-step loss over
``horizon`` transitions), and the same alternating Levenberg-Marquardt passes refit the constants with the networks
fixed. A ContextMLP is trained by Adam alone. After training the current context is the members' mean,
the prior that :func:`adapt_context` starts from.

:func:`adapt_context` estimates only the context of a new member from a few of its transitions: the
``per_member`` constants of a FamilyModel by :func:`~physwm.train.adapt` (Levenberg-Marquardt, with
intervals), the context vector of a ContextMLP by L-BFGS on the multi-step loss (regularised towards the
start); the shared weights are untouched.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..checks import finite_float, nonnegative_int, positive_int
from ..data import EpisodeData
from ..models.context import ContextMLP, FamilyModel
from .adapt import Adaptation, adapt, adaptation_windows, regularised_lbfgs
from .constants import levenberg_marquardt

__all__ = ["fit_family", "FamilyFit", "adapt_context", "family_windows"]


@dataclass
class FamilyFit:
    """What :func:`fit_family` did (also ``model.family_fit``).

    Attributes:
        members: members of the family.
        windows: training windows (all members).
        losses: the training loss (mean over each block of ``steps // 20`` steps), first to last.
        loss_start, loss_end: the loss over all training windows before the gradient steps (after the
            constants' fit) and after training.
        kept_start: training did not lower that loss, so the model was put back as it was before it.
        constants: per-member constants after training, physical units (FamilyModel; ``{}`` for a ContextMLP).
        cpu_seconds: CPU time, s (``time.process_time``).
    """

    members: int
    windows: int
    losses: list[float] = field(default_factory=list)
    loss_start: float = math.nan
    loss_end: float = math.nan
    kept_start: bool = False
    constants: dict[str, list[float]] = field(default_factory=dict)
    cpu_seconds: float = 0.0


def _check_model(model: Any) -> None:
    if not isinstance(model, (FamilyModel, ContextMLP)):
        raise TypeError(f"model must be a physwm.models.FamilyModel or ContextMLP, got {type(model).__name__}")


def family_windows(model: Any, data: Any, members: Sequence[int] | torch.Tensor | None,
                   horizon: int) -> dict[str, torch.Tensor]:  # fmt: skip
    """Every window of ``horizon`` transitions of ``data`` with its member: ``{"states": [W, H+1, n], "controls":
    [W, H, m], "member": [W]}`` in the model's dtype.

    Args:
        model: a FamilyModel or ContextMLP.
        data: a :class:`~physwm.data.Trajectories` or a dict of ``states``, ``controls`` and optional ``lengths``.
        members: the member of each episode ``[N]`` (ints in ``[0, model.members)``); ``None``: episode ``i`` is
            member ``i`` (one member per trajectory; needs ``N == model.members``).

    Raises:
        ValueError: ``members`` of another length than the episodes, indices out of range, a member with no
            window, data of other sizes, NaN/inf in the data.
    """
    _check_model(model)
    ed = EpisodeData(data, "family", model.state_dim, model.control_dim, type(model).__name__, dt=model.dt)
    N, T = ed.controls.shape[:2]
    if members is None:
        if N != model.members:
            raise ValueError(f"members=None makes each of the {N} episodes its own member, but the model has "
                             f"{model.members} members; give members [N] (the member of each episode)")  # fmt: skip
        members = torch.arange(N)
    if isinstance(members, torch.Tensor) and members.is_floating_point():
        raise TypeError(f"members must hold integer member indices, got {members.dtype}")
    members = torch.as_tensor(members).long()
    if members.shape != (N,):
        raise ValueError(f"members must give one member per episode: shape [{N}], got {tuple(members.shape)}")
    if int(members.min()) < 0 or int(members.max()) >= model.members:
        raise ValueError(f"members must lie in [0, {model.members}), got {int(members.min())}..{int(members.max())}")
    dtype = model.weight_dtype() or torch.float32
    ws, wc = ed.windows(horizon, dtype, torch.device("cpu"))
    lengths = ed.lengths if ed.lengths is not None else torch.full((N,), T, dtype=torch.long)
    counts = (lengths.clamp(max=T) - horizon + 1).clamp(min=0)
    wm = torch.repeat_interleave(members, counts)
    missing = sorted(set(range(model.members)) - set(wm.tolist()))
    if missing:
        raise ValueError(f"members {missing[:8]} have no window of {horizon} transitions in the data: every member "
                         "of the family needs data")  # fmt: skip
    return {"states": ws, "controls": wc, "member": wm}


class _MemberWindows(nn.Module):
    """A family model as :func:`~physwm.train.levenberg_marquardt` sees it: windows rolled out with their own
    members' constants, the shared constants (the base's learnable ones) the unknowns."""

    def __init__(self, family: FamilyModel, member: torch.Tensor):
        super().__init__()
        self.family, self.member = family, member

    def rollout(self, x0: torch.Tensor, u: torch.Tensor, **_: Any) -> torch.Tensor:
        return self.family.member_rollout(x0, u, self.member)

    def scaled_error(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.family.scaled_error(pred, target)


@torch.no_grad()
def _fit_shared(model: FamilyModel, one_step: dict[str, torch.Tensor], iterations: int) -> None:
    """The shared constants by Levenberg-Marquardt on every member's transitions, the members' constants fixed."""
    work = copy.deepcopy(model).double()
    for key in work.keys:
        work.current_raw(key).requires_grad_(False)  # not among the unknowns
    if not any(p.requires_grad for n, p in work.base.named_parameters() if ".raw." in f".{n}"):
        return
    s, c = one_step["states"].double(), one_step["controls"].double()
    levenberg_marquardt(_MemberWindows(work, one_step["member"]), s, c, iterations)
    own = dict(model.base.named_parameters())
    for name, p in work.base.named_parameters():
        if ".raw." in f".{name}" and p.requires_grad:
            own[name].copy_(p.to(own[name].dtype))


def _fit_members(model: FamilyModel, one_step: dict[str, torch.Tensor], iterations: int) -> None:
    """Each member's constants by Levenberg-Marquardt on its own transitions, the shared part fixed."""
    for g in range(model.members):
        mask = one_step["member"] == g
        model.set_context(g)
        batch = {"states": one_step["states"][mask], "controls": one_step["controls"][mask]}
        fitted = adapt(model, batch, params=list(model.per_member), steps=iterations, trim=None, uncertainty=False)
        model.set_context(values=fitted.adaptation.constants)
        model.store_context(g)


def _fit_constants(model: FamilyModel, one_step: dict[str, torch.Tensor], iterations: int, rounds: int = 3) -> None:
    """Block coordinate descent on the constants: the members' own, then the shared ones, ``rounds`` times."""
    for _ in range(rounds):
        _fit_members(model, one_step, iterations)
        _fit_shared(model, one_step, iterations)
    _fit_members(model, one_step, iterations)


@torch.no_grad()
def _full_loss(model: FamilyModel | ContextMLP, windows: dict[str, torch.Tensor], chunk: int = 4096) -> float:
    """The model's loss over every training window (each with its member), in chunks."""
    total, W = 0.0, windows["states"].shape[0]
    for b in range(0, W, chunk):
        part = {k: v[b : b + chunk] for k, v in windows.items()}
        total += float(model.loss(part)[0]) * part["states"].shape[0]
    return total / W


def fit_family(
    model: FamilyModel | ContextMLP,
    data: Any,
    members: Sequence[int] | torch.Tensor | None = None,
    *,
    steps: int = 2000,
    horizon: int = 5,
    batch_size: int = 256,
    lr: float = 3e-3,
    constants_lr: float = 0.01,
    prefit_steps: int = 30,
    explained_loss: float = 1e-10,
    seed: int = 0,
    progress: bool = False,
) -> FamilyFit:
    """Train ``model`` on episodes of a family of systems, in place (see the module docstring).

    Args:
        model: a :class:`~physwm.models.FamilyModel` or :class:`~physwm.models.ContextMLP` with ``members``
            members.
        data: the episodes (a Trajectories or a dict, see :func:`family_windows`).
        members: the member of each episode ``[N]``; ``None``: one member per episode.
        steps: Adam steps.
        horizon: transitions per training window (the multi-step loss).
        batch_size: windows per step.
        lr: learning rate of the networks (and of a ContextMLP's member contexts).
        constants_lr: learning rate of a FamilyModel's physical constants (raw units ``value / scale``).
        prefit_steps: Levenberg-Marquardt iterations per member before and after Adam (FamilyModel; 0: none).
        explained_loss: no gradient step if the loss after the constants' fit is at most this (the physics
            explains the data to round-off; as the physics-based recipes of ``fit``).
        seed: seeds the shuffling.
        progress: show a tqdm bar.

    Returns:
        A :class:`FamilyFit`; the model is trained in place, its current context the members' mean.

    Raises:
        ValueError, TypeError: see :func:`family_windows`; bad numbers naming the argument.
    """
    _check_model(model)
    steps = nonnegative_int(steps, "steps")
    horizon = positive_int(horizon, "horizon")
    batch_size = positive_int(batch_size, "batch_size")
    lr = finite_float(lr, "lr", positive=True)
    constants_lr = finite_float(constants_lr, "constants_lr", positive=True)
    prefit_steps = nonnegative_int(prefit_steps, "prefit_steps")
    explained_loss = finite_float(explained_loss, "explained_loss", nonnegative=True)
    seed = nonnegative_int(seed, "seed")
    c0 = time.process_time()
    train = family_windows(model, data, members, horizon)
    one_step = family_windows(model, data, members, 1)
    model.fit_normalization(one_step["states"], one_step["controls"])
    physics = isinstance(model, FamilyModel)
    if physics and prefit_steps:
        _fit_constants(model, one_step, prefit_steps)
    if physics:
        consts = [model.member_raw] + [p for n, p in model.base.named_parameters() if ".raw." in f".{n}"]
    else:
        consts = [model.context]  # the current context is not trained: adapt_context estimates it
    ids = {id(p) for p in consts}
    nets = [p for p in model.parameters() if id(p) not in ids and p.requires_grad]
    groups = [{"params": nets, "lr": lr}] + ([{"params": consts, "lr": constants_lr}] if physics else [])
    opt = torch.optim.Adam([g for g in groups if g["params"]])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    gen = torch.Generator().manual_seed(seed)
    W = train["states"].shape[0]
    result = FamilyFit(members=model.members, windows=W)
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    result.loss_start = _full_loss(model, train)
    if result.loss_start <= explained_loss:
        steps = 0  # the constants explain the data to round-off: nothing left for the networks to learn
    block, acc, count = max(steps // 20, 1), 0.0, 0
    model.train()
    for _ in tqdm(range(steps), desc="fit_family", disable=not progress):
        idx = torch.randint(W, (min(batch_size, W),), generator=gen)
        opt.zero_grad()
        loss, _ = model.loss({k: v[idx] for k, v in train.items()})
        value = float(loss.detach())
        if not math.isfinite(value):
            raise ValueError(f"fit_family diverged (loss {value}); lower lr or constants_lr")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        sched.step()
        acc, count = acc + value, count + 1
        if count == block:
            result.losses.append(acc / count)
            acc, count = 0.0, 0
    model.eval()
    if physics and prefit_steps and steps:
        _fit_constants(model, one_step, prefit_steps)
    result.loss_end = _full_loss(model, train)
    if not result.loss_end <= result.loss_start:  # training made it worse (or diverged): keep the start
        model.load_state_dict(start)
        result.kept_start = True
    model.set_context()
    if physics:
        result.constants = model.member_constants()
    result.cpu_seconds = time.process_time() - c0
    model.family_fit = result
    return result


def adapt_context(
    model: FamilyModel | ContextMLP,
    data: Any,
    *,
    steps: int | None = None,
    horizon: int | None = None,
    regularization: float = 1e-3,
    uncertainty: bool = True,
) -> FamilyModel | ContextMLP:
    """A copy of ``model`` whose context is estimated from a few transitions of a new member (shared part fixed).

    Args:
        model: a trained FamilyModel or ContextMLP.
        data: transitions of the new system: a Trajectories or ``{"states": [N, T+1, n], "controls": [N, T, m]}``.
        steps: FamilyModel: Levenberg-Marquardt iterations (default 30, see :func:`~physwm.train.adapt`);
            ContextMLP: L-BFGS iterations (default 100).
        horizon: transitions per window of the loss (default: as :func:`~physwm.train.adapt`: one-step for the
            constants, up to 10 for the context vector).
        regularization: ContextMLP: weight of ``mean((c - c_start)^2)`` added to the loss.
        uncertainty: FamilyModel: intervals of the constants (see :func:`~physwm.train.adapt`).

    Returns:
        The adapted copy with ``.adaptation`` an :class:`~physwm.train.Adaptation` (mode ``"context"`` for a
        ContextMLP, whose constants are the context entries ``c0, c1, ...``).

    Raises:
        ValueError, TypeError: see :func:`~physwm.train.adapt`.
    """
    _check_model(model)
    if isinstance(model, FamilyModel):
        return adapt(model, data, params=list(model.per_member), steps=steps, horizon=horizon,
                     uncertainty=uncertainty)  # fmt: skip
    regularization = finite_float(regularization, "regularization", nonnegative=True)
    iterations = 100 if steps is None else nonnegative_int(steps, "steps")
    c0 = time.process_time()
    batch, transitions, H = adaptation_windows(model, data, horizon)
    if transitions < 1:
        raise ValueError("data holds no transition")
    out = copy.deepcopy(model).eval()
    dtype = out.weight_dtype() or torch.float32
    batch = {k: v.to(dtype) for k, v in batch.items()}
    for p in out.parameters():
        p.requires_grad_(False)
    ctx = out.context
    ctx.requires_grad_(True)
    start = ctx.detach().clone()
    with torch.no_grad():
        before = float(out.loss(batch)[0])
    its = regularised_lbfgs(out, [ctx], batch, iterations, regularization, 1.0) if iterations else 0
    with torch.no_grad():
        after = float(out.loss(batch)[0])
    for p in out.parameters():
        p.requires_grad_(True)
    names = [f"c{i}" for i in range(out.context_dim)]
    out.adaptation = Adaptation(
        mode="context", transitions=transitions, horizon=H, trimmed=0, loss_before=before, loss_after=after,
        iterations=its, cpu_seconds=time.process_time() - c0, previous=dict(zip(names, start.tolist())),
        constants=dict(zip(names, ctx.detach().tolist())),
    )  # fmt: skip
    return out
