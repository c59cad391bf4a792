"""Distilling a planner into a policy on imagined states (DAgger on the world model).

:func:`distil_planner` trains a :class:`~physwm.control.NeuralPolicy` to imitate a model-predictive planner
that plans with the same world model, without touching the true environment (Ross, Gordon & Bagnell 2011,
"A reduction of imitation learning and structured prediction to no-regret online learning"; the planner as
the expert, as in guided policy search, Levine & Koltun 2013). Each round:

1. runs ``episodes`` imagined episodes of ``steps`` steps *in the model* (``x_{t+1} = model.step(x_t, u_t)``):
   the applied control is the planner's with probability ``beta = 0.5 ** round`` (round 0: the planner
   alone), otherwise the current policy's, so later rounds visit the states the policy itself reaches;
2. labels every visited state with the planner's control there (the planner runs along the episode,
   warm-started from its previous plan, on the same model);
3. regresses the policy on all labels so far (``updates`` Adam steps on random minibatches of the squared
   error of the control, in units of half the control range).

A fraction ``wide`` of the episodes starts from a wide box instead of the task's start box: every angle
uniform over the circle, every other entry uniform within ``mean +- 2 std`` of the model's training states
(its state normaliser), so the labels cover states far from the task's own trajectories (for a task that
terminates, a wide start the system counts as failed is replaced by one from the task's box). The planner's
search is the expensive part (a few ms per label); the policy it leaves is a forward pass.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..models import WorldModel
from ..systems import System, Task
from .policy import NeuralPolicy
from .registry import make_planner

if TYPE_CHECKING:  # policy_learning imports this module
    from .policy_learning import ImaginedEpisodes

__all__ = ["distil_planner", "wide_starts", "DEFAULT_DISTIL_PLANNER"]

#: The planner (and its options) :func:`distil_planner` imitates by default: iLQR with real-time iterations
#: (one iteration per control step once warm-started; 10/10 swing-ups on the fitted hybrid, ~15 ms CPU/step).
DEFAULT_DISTIL_PLANNER: tuple[str, dict[str, Any]] = ("ilqr", {"warm_iterations": 1})


def wide_starts(model: WorldModel, system: type[System], k: int, generator: torch.Generator) -> torch.Tensor:
    """``k`` states ``[k, n]``: angles uniform on ``[-pi, pi)``, other entries uniform in ``mean +- 2 std``
    of the model's state normaliser (its training states)."""
    mean = model.state_norm.mean.detach().cpu().double()
    std = model.state_norm.std.detach().cpu().double()
    r = torch.rand((k, system.state_dim), generator=generator, dtype=torch.float64)
    x = mean + 2 * std * (2 * r - 1)
    for i, q in enumerate(system.states):
        if q.kind == "angle":
            x[:, i] = math.pi * (2 * r[:, i] - 1)
    return x


def _episode(model: WorldModel, planner: Any, policy: NeuralPolicy, system: type[System], params: Any, task: Task,
             x: torch.Tensor, steps: int, beta: float, rng: np.random.Generator) -> tuple[list, list]:  # fmt: skip
    """One imagined episode from ``x [n]``: the visited states and the planner's controls there."""
    planner.reset()
    xs, us = [], []
    for _ in range(steps):
        u_star = planner.act(x).to(x.dtype)
        xs.append(x)
        us.append(u_star)
        if rng.random() < beta:
            u = u_star
        else:
            with torch.no_grad():
                u = policy(x[None])[0]
        with torch.no_grad():
            x = model.step(x[None], u[None])[0]
        if not bool(torch.isfinite(x).all()):
            break
        if task.terminate and system.failed(x.detach().cpu().double().numpy(), params):
            break
    return xs, us


def _regress(policy: NeuralPolicy, opt: torch.optim.Optimizer, X: torch.Tensor, U: torch.Tensor, updates: int,
             batch: int, generator: torch.Generator) -> float:  # fmt: skip
    """``updates`` Adam steps on ``mean(((policy(X) - U) / half)^2)`` over random minibatches; the loss on all
    of ``X`` after them."""
    half = (policy.high - policy.low).to(X.dtype) / 2
    for _ in range(updates):
        i = torch.randint(0, X.shape[0], (min(batch, X.shape[0]),), generator=generator).to(X.device)
        loss = ((policy(X[i]) - U[i]) / half).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(policy.net.parameters(), 10.0)
        opt.step()
    with torch.no_grad():
        return float(((policy(X) - U) / half).pow(2).mean())


def distil_planner(
    model: WorldModel,
    policy: NeuralPolicy,
    boxes: ImaginedEpisodes,
    *,
    planner: str | None = None,
    planner_options: dict[str, Any] | None = None,
    rounds: int = 6,
    episodes: int = 8,
    steps: int | None = None,
    wide: float = 0.5,
    updates: int = 1000,
    batch: int = 256,
    lr: float = 2e-3,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, list[float]]:
    """Train ``policy`` in place to imitate a planner on ``model``'s imagined episodes (see the module doc).

    Args:
        model: the world model (frozen by the caller; the planner plans with it and episodes run in it).
        policy: the :class:`~physwm.control.NeuralPolicy` to train (its bounds are the planner's).
        boxes: the task's imagined episodes (:class:`~physwm.control.policy_learning.ImaginedEpisodes`):
            their system, constants (failure condition of tasks that terminate), task (the planner's cost,
            terminal cost and horizon) and start states (its ``sample``).
        planner: a name of :data:`~physwm.control.PLANNERS` (default :data:`DEFAULT_DISTIL_PLANNER`'s).
        planner_options: its keyword arguments, added to :data:`DEFAULT_DISTIL_PLANNER`'s for that planner;
            ``bounds``, ``horizon``, ``terminal_cost`` and ``seed`` default to the policy's, the task's and
            ``seed``.
        rounds: DAgger rounds; episodes: imagined episodes per round; steps: their length (default 200, or
            the task's ``steps`` if fewer: a swing-up happens early, later steps only add labels near the goal).
        wide: fraction of the episodes that start from the wide box (see the module doc), in ``[0, 1]``.
        updates, batch, lr: the regression's Adam steps per round, minibatch size and learning rate.
        seed: seeds the planner, the wide start states, the choice of applied control and the minibatches.
        progress: a tqdm progress bar over the rounds.

    Returns:
        Per round: ``"labels"`` (states labelled so far), ``"loss"`` (the regression's loss on them after the
        round's updates) and
        ``"imitation"`` (the mean squared error, in half-ranges, of the policy before the round's regression
        on the round's new labels: how far the policy still is from the planner on its own states).
    """
    system, params, task = boxes.system, boxes.params, boxes.task
    if not 0.0 <= wide <= 1.0:
        raise ValueError(f"wide must be in [0, 1], got {wide!r}")
    if isinstance(updates, bool) or not isinstance(updates, int) or updates < 0:
        raise ValueError(f"updates must be a non-negative int, got {updates!r}")
    name, default_options = DEFAULT_DISTIL_PLANNER
    options = dict(default_options) if planner in (None, name) else {}
    name = name if planner is None else planner
    options.update(planner_options or {})
    low, high = policy.low.tolist(), policy.high.tolist()
    options.setdefault("bounds", (low, high) if len(low) > 1 else (low[0], high[0]))
    options.setdefault("horizon", task.horizon)
    options.setdefault("terminal_cost", task.terminal_cost)
    options.setdefault("seed", seed)
    expert = make_planner(name, model, task.cost, **options)
    dtype = policy.low.dtype
    device = policy.low.device
    steps = min(task.steps, 200) if steps is None else int(steps)
    if steps < 1:
        raise ValueError(f"steps must be a positive number of control steps, got {steps!r}")
    generator = torch.Generator().manual_seed(seed + 2)
    rng = np.random.default_rng(seed + 3)
    opt = torch.optim.Adam(policy.net.parameters(), lr=lr)
    X: list[torch.Tensor] = []
    U: list[torch.Tensor] = []
    history: dict[str, list[float]] = {"labels": [], "loss": [], "imitation": []}
    n_wide = int(round(wide * episodes))
    for r in tqdm(range(rounds), desc="distil (DAgger)", disable=not progress):
        beta = 0.5**r
        x0 = torch.cat((boxes.sample(episodes - n_wide),
                        wide_starts(model, system, n_wide, generator).to(dtype=dtype, device=device)))  # fmt: skip
        if task.terminate:
            for i in range(episodes - n_wide, episodes):
                if system.failed(x0[i].detach().cpu().double().numpy(), params):
                    x0[i] = boxes.sample(1)[0]
        new_x, new_u = [], []
        for i in range(episodes):
            xs, us = _episode(model, expert, policy, system, params, task, x0[i], steps, beta, rng)
            new_x += xs
            new_u += us
        if not new_x:
            continue
        nx, nu = torch.stack(new_x), torch.stack(new_u)
        with torch.no_grad():
            half = (policy.high - policy.low).to(dtype) / 2
            history["imitation"].append(float(((policy(nx) - nu) / half).pow(2).mean()))
        X.append(nx)
        U.append(nu)
        Xa, Ua = torch.cat(X), torch.cat(U)
        history["loss"].append(_regress(policy, opt, Xa, Ua, updates, batch, generator))
        history["labels"].append(float(Xa.shape[0]))
    return history
