r"""Learning a policy in imagination: a neural policy trained only on a world model's rollouts.

:func:`learn_policy` trains a :class:`~physwm.control.NeuralPolicy` for one of a system's tasks without ever
touching the true environment: every state it learns from is predicted by the world model. Three methods:

* ``"gradient"``, analytic policy gradients through the differentiable model, in the short-horizon form of
  SHAC (Xu et al. 2022, "Accelerated policy learning with parallel differentiable simulation"; PILCO,
  Deisenroth & Rasmussen 2011, backpropagates through whole episodes): ``envs`` imagined episodes run side by
  side; each iteration rolls them ``horizon`` steps further under the policy (``x_{t+1} = model.step(x_t,
  pi(x_t))``) and descends the gradient of

  .. math:: J = \frac{1}{H} \mathbb{E}\Big[\sum_{t<H} \gamma^t c(x_{t+1}, u_t) + \gamma^H V(x_H)\Big]

  through the model, the policy and the critic ``V`` (the cost-to-go, a value network fitted to TD(lambda)
  targets of the same rollouts). The critic carries the cost beyond the short window, so gradients never
  pass through more than ``horizon`` steps of (possibly chaotic) dynamics.
* ``"actor_critic"``, for models that are not differentiable or not usefully so (stochastic or discrete):
  the same imagined episodes with a Gaussian policy over the pre-squash action, rolled out under
  ``torch.no_grad``, and a clipped-surrogate actor-critic update (PPO, Schulman et al. 2017) on
  advantages from generalised advantage estimation (GAE) of the imagined costs. No gradient goes through
  the model.
* ``"distil"``, for tasks where short-horizon gradients get stuck (swinging a pendulum up: the policy learns
  to spin it over the top): imitation of a model-predictive planner that plans with the same model, on
  imagined states, DAgger-style (:func:`~physwm.control.distil.distil_planner`). The planner's search
  (iLQR by default) labels every state the policy visits in the model; the policy is regressed on the
  labels. It needs no critic and no gradient through long rollouts; each label costs a planner step.

The default, ``"gradient"``, needs no planner and is the cheapest; it balances (CartPole-v1, 20/20 seeds
with the defaults) but does not swing up (0/10 on the friction CartPole), where ``"distil"`` does (10/10;
``bench/policy_swingup.py``). No property of a task tells a swing-up from a balance, so the choice is the
caller's.

All use the task's running cost ``c(x_{t+1}, u_t)`` (the planners' convention), start the imagined
episodes from the task's start box (or the system's reset box), end them after the task's ``steps`` or at
the system's failure condition for tasks that terminate, and never change the model (its
parameters are frozen and its mode set to ``eval`` for the duration, then restored).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..checks import check_choice, finite_float, module_dtype_device, positive_int
from ..models import WorldModel
from ..systems import DEFAULT_SYSTEM, System, Task, get_system
from .distil import distil_planner
from .policy import FrozenPolicy, NeuralPolicy, ValueNetwork
from .tasks import get_task

__all__ = ["learn_policy", "LearnedPolicy", "POLICY_METHODS", "ImaginedEpisodes", "lambda_returns"]

#: The learning methods of :func:`learn_policy`.
POLICY_METHODS = ("gradient", "actor_critic", "distil")


@dataclass
class LearnedPolicy:
    """What :func:`learn_policy` returns.

    Attributes:
        policy: the trained :class:`NeuralPolicy` (torch, batched, differentiable).
        critic: its :class:`ValueNetwork` (cost-to-go; untrained for ``"distil"``).
        method: one of :data:`POLICY_METHODS`.
        history: per iteration: ``"cost"`` (mean imagined running cost per step), ``"actor_loss"``,
            ``"critic_loss"``; for ``"distil"`` per round: ``"labels"``, ``"loss"``, ``"imitation"`` (see
            :func:`~physwm.control.distil.distil_planner`).
        seconds: wall-clock training time, s.
    """

    policy: NeuralPolicy
    critic: ValueNetwork
    method: str
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0

    def freeze(self) -> FrozenPolicy:
        """The policy as a numpy function of one state (see :meth:`NeuralPolicy.freeze`)."""
        return self.policy.freeze()


def lambda_returns(costs: torch.Tensor, values: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """TD(lambda) returns ``[B, H]`` of costs ``[B, H]`` and values ``[B, H+1]`` (``values[:, t]`` of the
    state before cost ``t``; the last bootstraps): ``G_t = c_t + gamma ((1 - lam) V_{t+1} + lam G_{t+1})``."""
    out = torch.empty_like(costs)
    nxt = values[:, -1]
    for t in reversed(range(costs.shape[1])):
        nxt = costs[:, t] + gamma * ((1 - lam) * values[:, t + 1] + lam * nxt)
        out[:, t] = nxt
    return out


class ImaginedEpisodes:
    """``envs`` imagined episodes of a task: their current states, ages and restarts (seeded).

    Args:
        system: the system class (start box, failure condition); params: its constants.
        task: the :class:`~physwm.systems.Task`.
        envs: number of episodes run side by side.
        dtype, device: of the states.
        seed: seed of the start states.
        starts: optional ``[K, n]`` start states to draw from (default: uniform in the task's start box, or
            the system's reset box).
    """

    def __init__(self, system: type[System], params: Any, task: Task, envs: int, dtype: torch.dtype,
                 device: torch.device, seed: int, starts: torch.Tensor | None = None):  # fmt: skip
        self.system, self.params, self.task = system, params, task
        self.envs, self.dtype, self.device = envs, dtype, device
        self.generator = torch.Generator().manual_seed(seed)
        n = system.state_dim
        if starts is not None:
            starts = torch.as_tensor(starts, dtype=dtype)
            if starts.ndim != 2 or starts.shape[-1] != n or starts.shape[0] == 0 or not torch.isfinite(starts).all():
                raise ValueError(f"starts must be finite states [K, {n}] with K >= 1, got {tuple(starts.shape)}")
        self.starts = starts
        low = task.start_low if task.start_low is not None else system.reset_low
        high = task.start_high if task.start_high is not None else system.reset_high
        if starts is None and (low is None or high is None):
            raise ValueError(f"the {task.name} task and {system.__name__} define no start box; pass starts=")
        self.low = None if low is None else torch.as_tensor(low, dtype=dtype)
        self.high = None if high is None else torch.as_tensor(high, dtype=dtype)
        self.x = self.sample(envs)
        # spread the ages so that restarts do not all fall on the same iteration
        self.age = torch.randint(0, task.steps, (envs,), generator=self.generator)

    def sample(self, k: int) -> torch.Tensor:
        """``k`` fresh start states ``[k, n]``."""
        if self.starts is not None:
            idx = torch.randint(0, self.starts.shape[0], (k,), generator=self.generator)
            x = self.starts[idx]
        else:
            r = torch.rand((k, self.low.numel()), generator=self.generator, dtype=self.dtype)
            x = self.low + (self.high - self.low) * r
        return x.to(self.device)

    def advance(self, states: torch.Tensor, steps: int) -> None:
        """Move on to the last of ``states [B, H+1, n]`` (``steps`` later); restart episodes that ended
        (the task's length, a failure of a task that terminates, a non-finite prediction)."""
        x = states[:, -1].detach()
        self.age = self.age + steps
        done = (self.age >= self.task.steps) | ~torch.isfinite(x).all(-1)
        if self.task.terminate:
            s = states.detach().cpu().double().numpy()
            failed = [any(self.system.failed(row, self.params) for row in ep if np.isfinite(row).all()) for ep in s]
            done = done | torch.as_tensor(failed, dtype=torch.bool)
        if bool(done.any()):
            fresh = self.sample(int(done.sum()))
            x = x.clone()
            x[done.to(x.device)] = fresh
            self.age = torch.where(done, torch.zeros_like(self.age), self.age)
        self.x = x


def _fit_critic(critic: ValueNetwork, opt: torch.optim.Optimizer, states: torch.Tensor, targets: torch.Tensor,
                epochs: int, batch: int, generator: torch.Generator) -> float:  # fmt: skip
    """Regress ``critic(states [N, n])`` on ``targets [N]`` for ``epochs`` passes; the last minibatch loss."""
    last = math.nan
    N = states.shape[0]
    for _ in range(epochs):
        perm = torch.randperm(N, generator=generator).to(states.device)
        for b in range(0, N, batch):
            i = perm[b : b + batch]
            loss = (critic(states[i]) - targets[i]).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(critic.parameters(), 10.0)
            opt.step()
            last = float(loss.detach())
    return last


def _model_system(model: WorldModel, system: Any) -> tuple[type[System], Any]:
    if system is not None:
        cls = get_system(system)
        return cls, system.params if isinstance(system, System) else None
    found = [m for m in model.modules() if isinstance(m, System)]
    if found:
        return type(found[0]), found[0].base_params
    return DEFAULT_SYSTEM, None


def learn_policy(
    model: WorldModel,
    task: str | Task = "balance",
    *,
    method: str = "gradient",
    system: Any = None,
    iterations: int = 100,
    envs: int = 64,
    horizon: int = 32,
    gamma: float = 0.99,
    lam: float = 0.95,
    lr: float = 2e-3,
    critic_lr: float | None = None,
    hidden: Sequence[int] = (64, 64),
    activation: str = "tanh",
    critic_epochs: int = 4,
    grad_clip: float = 1.0,
    ppo_epochs: int = 4,
    clip_ratio: float = 0.2,
    init_std: float = 0.5,
    starts: torch.Tensor | None = None,
    distil_options: dict[str, Any] | None = None,
    seed: int = 0,
    progress: bool = True,
) -> LearnedPolicy:
    """Train a neural policy for ``task`` purely on rollouts of ``model`` (see the module docstring).

    Args:
        model: any WorldModel (``method="gradient"`` needs it differentiable in its inputs: every physwm
            model is, except through sampling).
        task: a task name of the system or a :class:`~physwm.systems.Task` (its running cost is minimised).
        method: one of :data:`POLICY_METHODS`.
        system: the system whose task, state description and control bounds to use (default: the physics
            inside the model, e.g. a hybrid's, else :data:`~physwm.systems.DEFAULT_SYSTEM`).
        iterations: policy updates (each on ``envs x horizon`` imagined transitions; not ``"distil"``).
        envs: imagined episodes run side by side (not ``"distil"``).
        horizon: steps per iteration (and the longest gradient path through the model; not ``"distil"``).
        gamma: discount per step; lam: the TD(lambda) / GAE parameter.
        lr: Adam learning rate of the policy; critic_lr: of the critic (default ``2 * lr``).
        hidden, activation: of the policy's and the critic's networks.
        critic_epochs: passes of critic regression per iteration (minibatches of 256 transitions).
        grad_clip: clip of the policy gradient's norm.
        ppo_epochs, clip_ratio, init_std: ``"actor_critic"`` only: passes over each iteration's transitions,
            the PPO clip, and the initial standard deviation of the Gaussian pre-action (learned).
        starts: optional ``[K, n]`` start states of the imagined episodes (default: the task's start box).
        distil_options: ``"distil"`` only: keyword arguments of :func:`~physwm.control.distil.distil_planner`
            (``planner``, ``planner_options``, ``rounds``, ``episodes``, ``steps``, ``wide``, ``updates``,
            ``batch``); ``lr``, ``seed`` and ``progress`` are this function's.
        seed: seeds the policy's and critic's initial weights, the start states and the exploration noise.
        progress: a tqdm progress bar.

    Returns:
        A :class:`LearnedPolicy` (``.policy``, ``.critic``, ``.history``; ``.freeze()`` for control).
    """
    if not isinstance(model, WorldModel):
        raise TypeError(f"model must be a physwm WorldModel, got {type(model).__name__}")
    check_choice(method, "method", POLICY_METHODS)
    iterations, envs, horizon = (positive_int(v, k) for v, k in
                                 ((iterations, "iterations"), (envs, "envs"), (horizon, "horizon")))  # fmt: skip
    critic_epochs, ppo_epochs = positive_int(critic_epochs, "critic_epochs"), positive_int(ppo_epochs, "ppo_epochs")
    for v, name in ((gamma, "gamma"), (lam, "lam")):
        if not (isinstance(v, (int, float)) and 0 <= v <= 1):
            raise ValueError(f"{name} must be in [0, 1], got {v!r}")
    lr = finite_float(lr, "lr", positive=True)
    critic_lr = 2 * lr if critic_lr is None else finite_float(critic_lr, "critic_lr", positive=True)
    grad_clip = finite_float(grad_clip, "grad_clip", positive=True)
    clip_ratio = finite_float(clip_ratio, "clip_ratio", positive=True)
    init_std = finite_float(init_std, "init_std", positive=True)
    cls, params = _model_system(model, system)
    if (cls.state_dim, cls.control_dim) != (model.state_dim, model.control_dim):
        raise ValueError(f"{cls.__name__} has dims ({cls.state_dim}, {cls.control_dim}), the model "
                         f"({model.state_dim}, {model.control_dim}); pass system=")
    t = get_task(task, cls, params)
    dtype, device = module_dtype_device(model)
    scale = model.state_norm.std.detach().cpu().clamp_min(1e-6)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        policy = NeuralPolicy(cls, params, hidden=hidden, activation=activation, scale=scale).to(dtype=dtype,
                                                                                                 device=device)
        critic = ValueNetwork(policy.features, hidden=hidden, activation=activation).to(dtype=dtype, device=device)
    episodes = ImaginedEpisodes(cls, params, t, envs, dtype, device, seed, starts)
    noise = torch.Generator().manual_seed(seed + 1)
    log_std = nn.Parameter(torch.full((cls.control_dim,), math.log(init_std), dtype=dtype, device=device))
    actor_params = list(policy.net.parameters()) + ([log_std] if method == "actor_critic" else [])
    opt = torch.optim.Adam(actor_params, lr=lr)
    critic_params = list(critic.net.parameters())
    copt = torch.optim.Adam(critic_params, lr=critic_lr)
    history: dict[str, list[float]] = {"cost": [], "actor_loss": [], "critic_loss": []}
    frozen = [(p, p.requires_grad) for p in model.parameters()]
    was_training = model.training
    t0 = time.perf_counter()
    try:
        for p, _ in frozen:
            p.requires_grad_(False)
        model.eval()
        if method == "distil":
            history = distil_planner(model, policy, episodes, lr=lr, seed=seed, progress=progress,
                                     **(distil_options or {}))
        step = _gradient_iteration if method == "gradient" else _actor_critic_iteration
        for _ in tqdm(range(0 if method == "distil" else iterations), desc=f"learn_policy ({method})",
                      disable=not progress):  # fmt: skip
            out = step(model, policy, critic, t, episodes, horizon, gamma, lam, opt, grad_clip, log_std, noise,
                       ppo_epochs, clip_ratio)  # fmt: skip
            states, costs, actor_loss = out
            with torch.no_grad():
                values = critic(states)
                targets = lambda_returns(costs, values, gamma, lam)
            ok = torch.isfinite(targets).all(1) & torch.isfinite(states).all(-1).all(-1)
            flat_x = states[ok][:, :-1].reshape(-1, cls.state_dim)
            flat_y = targets[ok].reshape(-1)
            closs = _fit_critic(critic, copt, flat_x, flat_y, critic_epochs, 256, noise) if flat_x.numel() else math.nan
            episodes.advance(states, horizon)
            history["cost"].append(float(costs[ok].mean()) if ok.any() else math.nan)
            history["actor_loss"].append(actor_loss)
            history["critic_loss"].append(closs)
    finally:
        for p, flag in frozen:
            p.requires_grad_(flag)
        model.train(was_training)
    policy.eval()
    return LearnedPolicy(policy, critic, method, history, time.perf_counter() - t0)


def _gradient_iteration(model, policy, critic, task, episodes, horizon, gamma, lam, opt, grad_clip, log_std, noise,
                        ppo_epochs, clip_ratio):  # fmt: skip
    """One SHAC update: ``horizon`` steps through the model, the window's discounted cost plus the critic's
    cost-to-go of its last state, backpropagated into the policy. Returns ``(states [B, H+1, n] detached,
    costs [B, H] detached, actor loss)``."""
    x = episodes.x
    xs, cs = [x], []
    for _ in range(horizon):
        u = policy(x)
        x = model.step(x, u)
        cs.append(task.cost(x, u))
        xs.append(x)
    costs = torch.stack(cs, dim=1)
    disc = gamma ** torch.arange(horizon, dtype=costs.dtype, device=costs.device)
    total = (costs * disc).sum(1) + gamma**horizon * critic(x)
    ok = torch.isfinite(total)
    loss = total[ok].mean() / horizon if bool(ok.any()) else None
    if loss is not None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = nn.utils.clip_grad_norm_(policy.net.parameters(), grad_clip)
        if torch.isfinite(gnorm):
            opt.step()
    return torch.stack(xs, dim=1).detach(), costs.detach(), float(loss.detach()) if loss is not None else math.nan


def _actor_critic_iteration(model, policy, critic, task, episodes, horizon, gamma, lam, opt, grad_clip, log_std,
                            noise, ppo_epochs, clip_ratio):  # fmt: skip
    """One PPO update on ``horizon`` imagined steps (no gradient through the model). Returns ``(states
    [B, H+1, n], costs [B, H], actor loss)``."""
    with torch.no_grad():
        x = episodes.x
        xs, cs, acts = [x], [], []
        std = log_std.exp()
        for _ in range(horizon):
            mean = policy.mean_action(x)
            a = mean + std * torch.randn(mean.shape, generator=noise, dtype=mean.dtype).to(mean.device)
            u = policy.squash(a)
            x = model.step(x, u)
            cs.append(task.cost(x, u))
            xs.append(x)
            acts.append(a)
        states, costs, actions = torch.stack(xs, 1), torch.stack(cs, 1), torch.stack(acts, 1)
        ok = torch.isfinite(costs).all(1) & torch.isfinite(states).all(-1).all(-1)
        values = critic(torch.where(torch.isfinite(states), states, torch.zeros_like(states)))
        # GAE on rewards -cost: advantage of having taken a_t
        adv = torch.zeros_like(costs)
        last = torch.zeros_like(costs[:, 0])
        for t in reversed(range(horizon)):
            delta = -costs[:, t] - gamma * values[:, t + 1] + values[:, t]
            last = delta + gamma * lam * last
            adv[:, t] = last
        x_old = states[ok][:, :-1].reshape(-1, states.shape[-1])
        a_old, adv = actions[ok].reshape(-1, actions.shape[-1]), adv[ok].reshape(-1)
        if adv.numel() == 0:
            return states, costs, math.nan
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        logp_old = _gaussian_logp(a_old, policy.mean_action(x_old), log_std)
    N, last_loss = x_old.shape[0], math.nan
    for _ in range(ppo_epochs):
        perm = torch.randperm(N, generator=noise).to(x_old.device)
        for b in range(0, N, 256):
            i = perm[b : b + 256]
            logp = _gaussian_logp(a_old[i], policy.mean_action(x_old[i]), log_std)
            ratio = torch.exp(logp - logp_old[i])
            surrogate = torch.minimum(ratio * adv[i], ratio.clamp(1 - clip_ratio, 1 + clip_ratio) * adv[i])
            loss = -surrogate.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(list(policy.net.parameters()) + [log_std], grad_clip)
            opt.step()
            with torch.no_grad():
                log_std.clamp_(math.log(1e-3), math.log(10.0))
            last_loss = float(loss.detach())
    return states, costs, last_loss


def _gaussian_logp(a: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Log-density ``[N]`` of pre-actions ``a [N, m]`` under ``N(mean, exp(log_std)^2)`` (the tanh squashing is
    a fixed bijection, so PPO's ratios need no Jacobian)."""
    z = (a - mean) / log_std.exp()
    return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
