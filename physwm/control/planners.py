r"""Model-predictive control: sampling planners over control sequences, batched, for any WorldModel.

At every control step a planner searches for the sequence of ``horizon`` controls that minimises a cost
over the model's predicted states, applies the first one to the real system, and starts the next search
from the remaining ones (warm start: the previous plan shifted by one step). Two sampling planners are
provided, batched over candidate sequences (one ``model.rollout`` of ``[population, horizon]`` per
iteration, no Python loop over candidates):

* :class:`CEM`, the cross-entropy method (Rubinstein 1997; as used by PETS, Chua et al. 2018): sample
  a Gaussian population, refit the Gaussian to the ``elites`` lowest-cost sequences, repeat;
* :class:`MPPI`, model-predictive path integral control (Williams et al. 2017): perturb the plan with
  Gaussian noise and average the perturbed sequences with weights ``softmax(-cost / temperature)``.

Ensembles (any model with a ``.members`` list of WorldModels) are planned on either their own
(mean) prediction, ``ensemble="mean"``, or by PETS' trajectory sampling, ``ensemble="ts"``: each
candidate sequence is rolled out as ``particles`` particles, particle ``k`` propagated by member
``k mod E`` for the whole horizon (TS-infinity), and its cost is the mean over particles.

Costs are plain batched functions of state and control, ``cost(x [..., n], u [..., m]) -> [...]``,
charged on every transition ``(x_{t+1}, u_t)`` of a plan and summed over the horizon (plus an optional
``terminal_cost(x [..., n]) -> [...]`` on the last state); a system's tasks provide them
(:meth:`physwm.systems.System.tasks`).

Planning runs many small tensor operations; the caller chooses torch's thread count (on a busy machine
one thread can be several times faster than a pool that waits for cores).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..checks import finite_float, module_dtype_device, positive_int
from ..models import WorldModel
from .dynamics import PlanningModel

__all__ = ["Planner", "CEM", "MPPI", "Cost", "TerminalCost"]

Cost = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
TerminalCost = Callable[[torch.Tensor], torch.Tensor]


def _members(model: torch.nn.Module) -> list[WorldModel] | None:
    members = getattr(model, "members", None)
    if members is None:
        return None
    members = list(members)
    if not members:
        raise ValueError(f"{type(model).__name__}.members is empty")
    return members


class Planner:
    """Base class of the sampling MPC planners (:class:`CEM`, :class:`MPPI`).

    Args:
        model: any WorldModel (``model.rollout(x0 [B, n], u [B, T, m]) -> [B, T+1, n]``); an ensemble
            is any model with a ``.members`` list of WorldModels.
        cost: running cost ``(x [..., n], u [..., m]) -> [...]`` charged on each transition
            ``(x_{t+1}, u_t)`` of a plan; e.g. :func:`balance_cost`, :func:`swingup_cost`.
        bounds: ``(low, high)`` control bounds (numbers or ``[m]`` sequences, physical units: N).
        horizon: planning horizon H, control steps.
        population: candidate sequences per iteration P.
        iterations: refinement iterations per control step.
        terminal_cost: optional cost ``(x [..., n]) -> [...]`` of the last predicted state.
        init_std: standard deviation of the sampling distribution at the start of each step (units of
            the control; default a quarter of ``high - low``).
        action_levels: optional allowed control values (``[L]``, e.g. ``(-10, 10)`` for CartPole-v1's
            two discrete forces): sampled controls are snapped to the nearest level before they are
            evaluated, and the returned action is snapped too, so the plan is judged on what the
            environment will actually apply.
        ensemble: for ensembles, ``"mean"`` (plan on the ensemble's own ``rollout``) or ``"ts"``
            (PETS trajectory sampling over members, see the module docstring).
        particles: particles per candidate for ``ensemble="ts"`` (default: the number of members).
        recalibration: for ``ensemble="ts"``, a :class:`physwm.evaluate.Recalibration` (anything with its
            ``inflate(samples [K, ..., T+1, n])``): each candidate's particles are spread about their mean by
            the factor of their step before the cost is charged, so the plan is judged on a calibrated spread.
        nonfinite: ``"raise"`` (default): a NaN/inf cost is a ValueError; ``"worst"``: candidates with
            non-finite cost rank last (for learned models that blow up on a few wild sequences).
        seed: int seed or a ``torch.Generator`` for the sampling noise.
        dtype: planning dtype (default: the model's parameter dtype, float32 for a new model).
        fused: roll out with compiled kernels (:class:`~physwm.control.dynamics.PlanningModel`): ``None``
            (default) wherever the model is an :class:`~physwm.models.ODEModel` with a fixed-step integrator
            and a compiler is available (for ``ensemble="ts"``: per member), else eagerly; ``True``: always
            (a ValueError for other models); ``False``: never. Compiled rollouts are several times faster
            (``bench/plan.py``); the first call per batch size compiles (seconds with inductor's disk
            cache, minutes without) and says so on stderr.
        progress: show those compile messages.

    Attributes:
        plan: the current mean plan ``[H, m]`` (warm start of the next step).
        dynamics: the :class:`~physwm.control.dynamics.PlanningModel` planned on (``.fused``: compiled or
            not); for ``ensemble="ts"`` one per member in :attr:`member_dynamics`.
        model_evaluations: model evaluations so far (see :mod:`physwm.control.dynamics`: one per predicted
            or differentiated transition).
        last_info: about the last call to :meth:`optimize`: ``"cost"`` (lowest sequence cost seen),
            ``"iterations"``, ``"model_evaluations"`` (in that call, i.e. per control step), and for CEM
            ``"best"`` (that sequence) and ``"elite_cost"`` (mean cost of the last elites), for MPPI
            ``"effective_samples"`` (``1 / sum w^2`` of the last weights).
    """

    name = "planner"
    #: arguments of this class's ``__init__`` that a subclass sets itself (not the caller's to give)
    fixed_options: tuple[str, ...] = ()

    def __init__(
        self,
        model: WorldModel,
        cost: Cost,
        *,
        bounds: tuple[Any, Any],
        horizon: int = 30,
        population: int = 500,
        iterations: int = 5,
        terminal_cost: TerminalCost | None = None,
        init_std: float | Sequence[float] | None = None,
        action_levels: Sequence[float] | None = None,
        ensemble: str = "mean",
        particles: int | None = None,
        recalibration: Any = None,
        nonfinite: str = "raise",
        seed: int | torch.Generator = 0,
        dtype: torch.dtype | None = None,
        fused: bool | None = None,
        progress: bool = True,
    ):
        if not isinstance(model, torch.nn.Module) or not hasattr(model, "rollout"):
            raise TypeError(f"model must be a WorldModel, got {type(model).__name__}")
        if not callable(cost):
            raise TypeError(f"cost must be a callable (x [..., n], u [..., m]) -> [...], got {type(cost).__name__}")
        if terminal_cost is not None and not callable(terminal_cost):
            raise TypeError(f"terminal_cost must be callable or None, got {type(terminal_cost).__name__}")
        self.model = model
        self.cost = cost
        self.terminal_cost = terminal_cost
        self.horizon = positive_int(horizon, "horizon")
        self.population = positive_int(population, "population")
        self.iterations = positive_int(iterations, "iterations")
        self.state_dim = int(model.state_dim)
        self.control_dim = int(model.control_dim)
        model_dtype, self.device = module_dtype_device(model)
        self.dtype = model_dtype if dtype is None else dtype
        if not self.dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point dtype, got {self.dtype}")

        m = self.control_dim
        try:
            low_t, high_t = (torch.as_tensor(b, dtype=self.dtype, device=self.device).reshape(-1) for b in bounds)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"bounds must be (low, high) numbers or [m] sequences, got {bounds!r}") from err
        if low_t.numel() not in (1, m) or high_t.numel() not in (1, m):
            raise ValueError(f"bounds must be numbers or sequences of the control size m={m}, got {bounds!r}")
        low, high = low_t.expand(m).clone(), high_t.expand(m).clone()
        if not (torch.isfinite(low).all() and torch.isfinite(high).all() and (low < high).all()):
            raise ValueError(f"bounds must be finite with low < high, got {bounds!r}")
        self.low, self.high = low, high
        if init_std is None:
            std0 = (high - low) / 4
        else:
            std0 = torch.as_tensor(init_std, dtype=self.dtype, device=self.device).reshape(-1).expand(m).clone()
            if not (torch.isfinite(std0).all() and (std0 > 0).all()):
                raise ValueError(f"init_std must be positive and finite, got {init_std!r}")
        self.init_std = std0
        if action_levels is None:
            self.action_levels = None
        else:
            levels = torch.as_tensor(action_levels, dtype=self.dtype, device=self.device).reshape(-1)
            if levels.numel() < 1 or not torch.isfinite(levels).all():
                raise ValueError(f"action_levels must be a non-empty sequence of finite values, got {action_levels!r}")
            if ((levels < low.min()) | (levels > high.max())).any():
                raise ValueError(f"action_levels {levels.tolist()} must lie within bounds {bounds!r}")
            self.action_levels = torch.unique(levels)  # sorted
            self._level_mids = (self.action_levels[1:] + self.action_levels[:-1]) / 2
            self._level_steps = self.action_levels[1:] - self.action_levels[:-1]

        if ensemble not in ("mean", "ts"):
            raise ValueError(f"unknown ensemble mode {ensemble!r}; valid: ['mean', 'ts']")
        self.ensemble = ensemble
        members = _members(model)
        if ensemble == "ts":
            if members is None:
                raise ValueError(
                    f"ensemble='ts' needs a model with a .members list (an ensemble); {type(model).__name__} has none"
                )
            for i, mem in enumerate(members):
                if (mem.state_dim, mem.control_dim) != (self.state_dim, self.control_dim):
                    raise ValueError(f"ensemble member {i} has dims ({mem.state_dim}, {mem.control_dim}), "
                                     f"the ensemble ({self.state_dim}, {self.control_dim})")
            self.particles = len(members) if particles is None else positive_int(particles, "particles")
        elif particles is not None:
            raise ValueError("particles only applies to ensemble='ts'")
        else:
            self.particles = 1
        if recalibration is not None and (ensemble != "ts" or not callable(getattr(recalibration, "inflate", None))):
            raise ValueError("recalibration needs ensemble='ts' and a physwm.evaluate.Recalibration")
        self.recalibration = recalibration
        self._members = members
        self.dynamics = PlanningModel(model, fused, progress)
        self.member_dynamics = [PlanningModel(mem, fused, progress) for mem in members] if ensemble == "ts" else []
        if nonfinite not in ("raise", "worst"):
            raise ValueError(f"unknown nonfinite policy {nonfinite!r}; valid: ['raise', 'worst']")
        self.nonfinite = nonfinite

        if isinstance(seed, torch.Generator):
            self.generator = seed
        else:
            if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
                raise TypeError(f"seed must be an int or a torch.Generator, got {type(seed).__name__}")
            self.generator = torch.Generator(device=self.device).manual_seed(int(seed))
        self.last_info: dict[str, Any] = {}
        self.reset()

    # -- state ----------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the warm start: the plan restarts at the middle of the bounds."""
        self.plan = ((self.low + self.high) / 2).expand(self.horizon, self.control_dim).clone()

    def _shift(self) -> None:
        self.plan = torch.cat((self.plan[1:], ((self.low + self.high) / 2)[None]), dim=0)

    # -- evaluation -----------------------------------------------------------------------------------
    def _snap(self, u: torch.Tensor) -> torch.Tensor:
        if self.action_levels is None:
            return u
        # nearest level as a sum of steps (indexing a tiny tensor with a big index is slow on CPU)
        above = (u.unsqueeze(-1) > self._level_mids).to(u.dtype)
        return self.action_levels[0] + (above * self._level_steps).sum(-1)

    def _sequence_cost(self, states: torch.Tensor, controls: torch.Tensor) -> torch.Tensor:
        c = self.cost(states[:, 1:], controls)
        if not isinstance(c, torch.Tensor) or c.shape != controls.shape[:2]:
            raise ValueError(
                f"cost must map states [B, H, n] and controls [B, H, m] to [B, H] = {tuple(controls.shape[:2])}, "
                f"got {tuple(c.shape) if isinstance(c, torch.Tensor) else type(c).__name__}"
            )
        total = c.sum(1)
        if self.terminal_cost is not None:
            tc = self.terminal_cost(states[:, -1])
            if not isinstance(tc, torch.Tensor) or tc.shape != total.shape:
                raise ValueError(f"terminal_cost must map states [B, n] to [B] = {tuple(total.shape)}")
            total = total + tc
        return total

    def evaluate(self, x0: torch.Tensor, controls: torch.Tensor) -> torch.Tensor:
        """Cost ``[P]`` of candidate sequences ``controls [P, H, m]`` from the state ``x0 [n]``.

        One batched ``model.rollout`` for plain models and ``ensemble="mean"``; one per member for
        ``ensemble="ts"`` (each on its share of the ``P * particles`` particles).
        """
        P = controls.shape[0]
        if self.ensemble == "ts":
            K, members = self.particles, self._members
            E = len(members)
            u = controls.unsqueeze(1).expand(P, K, *controls.shape[1:])  # [P, K, H, m]
            costs = controls.new_empty(P, K)
            member_of = torch.arange(K) % E
            every = [] if self.recalibration is not None else None
            for e in range(E):
                ks = torch.nonzero(member_of == e).flatten()
                if ks.numel() == 0:
                    continue
                ue = u[:, ks].reshape(P * ks.numel(), *controls.shape[1:])
                states = self.member_dynamics[e].rollout(x0.expand(ue.shape[0], -1), ue)
                if every is not None:
                    every.append((ks, states.reshape(P, ks.numel(), *states.shape[1:])))
                    continue
                costs[:, ks] = self._sequence_cost(states, ue).reshape(P, ks.numel())
            if every is not None:  # all particles first: their spread about the mean is recalibrated per step
                particles = controls.new_empty(K, P, self.horizon + 1, self.state_dim)
                for ks, st in every:
                    particles[ks] = st.transpose(0, 1)
                particles = self.recalibration.inflate(particles).transpose(0, 1)  # [P, K, H+1, n]
                flat = particles.reshape(P * K, *particles.shape[2:])
                costs = self._sequence_cost(flat, u.reshape(P * K, *controls.shape[1:])).reshape(P, K)
            return costs.mean(1)
        states = self.dynamics.rollout(x0.expand(P, -1), controls)
        return self._sequence_cost(states, controls)

    def _checked_costs(self, costs: torch.Tensor, iteration: int) -> torch.Tensor:
        bad = ~torch.isfinite(costs)
        if bad.any():
            if self.nonfinite == "raise" or bad.all():
                raise ValueError(
                    f"{type(self).__name__}: the cost is NaN or inf for {int(bad.sum())} of {costs.numel()} candidate "
                    f"sequences at iteration {iteration} (the model's predictions or the cost function diverged); "
                    + ("pass nonfinite='worst' to rank such candidates last" if not bad.all() else
                       "every candidate is non-finite: check the model and the cost")
                )
            costs = torch.where(bad, torch.full_like(costs, torch.finfo(costs.dtype).max), costs)
        return costs

    def _state(self, state: Any) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(state) if not isinstance(state, torch.Tensor) else state)
        x = x.to(dtype=self.dtype, device=self.device).reshape(-1)
        if x.numel() != self.state_dim:
            raise ValueError(f"state must have {self.state_dim} entries (the model's state_dim), got shape "
                             f"{tuple(np.shape(state))}")
        if not torch.isfinite(x).all():
            raise ValueError(f"state contains NaN or inf: {x.tolist()}")
        return x

    # -- public ---------------------------------------------------------------------------------------
    def optimize(self, state: Any) -> torch.Tensor:
        """Search from ``state [n]`` (warm-started at :attr:`plan`); returns the plan ``[H, m]``.

        Updates :attr:`plan` but does not shift it (:meth:`act` does).
        """
        x0 = self._state(state)
        before = self.model_evaluations
        with torch.no_grad():
            self.plan = self._optimize(x0)
        self.last_info["model_evaluations"] = self.model_evaluations - before
        return self.plan

    @property
    def model_evaluations(self) -> int:
        """Model evaluations so far (rollouts' transitions plus differentiated transitions)."""
        return self.dynamics.evaluations + sum(d.evaluations for d in self.member_dynamics)

    def act(self, state: Any) -> torch.Tensor:
        """Plan from ``state [n]``, return the first control ``[m]`` and shift the plan (warm start)."""
        plan = self.optimize(state)
        u = self._snap(plan[0].clamp(self.low, self.high)).clone()
        self._shift()
        return u

    __call__ = act

    def _optimize(self, x0: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _sample(self, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        P, H, m = self.population, self.horizon, self.control_dim
        eps = torch.randn((P, H, m), generator=self.generator, dtype=self.dtype, device=self.device)
        u = mean + std * eps
        u[0] = mean  # the current plan is always a candidate
        return torch.maximum(torch.minimum(u, self.high), self.low)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(model={type(self.model).__name__}, horizon={self.horizon}, "
                f"population={self.population}, iterations={self.iterations}{self._extra_repr()})")

    def _extra_repr(self) -> str:
        return ""


class CEM(Planner):
    """Cross-entropy method over control sequences (PETS' optimiser).

    Each iteration samples ``population`` sequences from a diagonal Gaussian (mean = the plan,
    clipped to the bounds; the plan itself is always one of them), evaluates all of them in one batched
    rollout, and refits mean and standard deviation to the ``elites`` cheapest:
    ``mean <- alpha * mean + (1 - alpha) * elite_mean`` (likewise the std). The returned plan is the
    final mean. See :class:`Planner` for the shared arguments.

    Args:
        elites: number of elite sequences (``1 <= elites <= population``; default ``population // 10``).
        alpha: smoothing of the Gaussian's update, in ``[0, 1)`` (0: replace by the elite statistics).
        min_std: the search stops early once every std is below this (control units).
    """

    name = "cem"

    def __init__(
        self,
        model: WorldModel,
        cost: Cost,
        *,
        bounds: tuple[Any, Any],
        horizon: int = 30,
        population: int = 500,
        elites: int | None = None,
        iterations: int = 5,
        alpha: float = 0.1,
        min_std: float = 1e-3,
        **kwargs: Any,
    ):
        super().__init__(model, cost, bounds=bounds, horizon=horizon, population=population,
                         iterations=iterations, **kwargs)
        if elites is None:
            elites = max(1, self.population // 10)
        self.elites = positive_int(elites, "elites")
        if self.elites > self.population:
            raise ValueError(f"elites ({self.elites}) must not exceed population ({self.population})")
        if not (0.0 <= float(alpha) < 1.0):
            raise ValueError(f"alpha must be in [0, 1), got {alpha!r}")
        self.alpha = float(alpha)
        if not float(min_std) >= 0:
            raise ValueError(f"min_std must be >= 0, got {min_std!r}")
        self.min_std = float(min_std)

    def _optimize(self, x0: torch.Tensor) -> torch.Tensor:
        mean = self.plan
        std = self.init_std.expand_as(mean).clone()
        best_cost, best = math.inf, mean
        for it in range(self.iterations):
            u = self._sample(mean, std)
            costs = self._checked_costs(self.evaluate(x0, self._snap(u)), it)
            c_elite, idx = torch.topk(costs, self.elites, largest=False, sorted=True)
            if float(c_elite[0]) < best_cost:
                best_cost, best = float(c_elite[0]), u[idx[0]]
            elite = u[idx]
            mean = self.alpha * mean + (1 - self.alpha) * elite.mean(0)
            std = self.alpha * std + (1 - self.alpha) * elite.std(0, unbiased=False)
            if float(std.max()) < self.min_std:
                break
        self.last_info = {"cost": best_cost, "best": best, "elite_cost": float(c_elite.mean()),
                          "iterations": it + 1}
        return mean

    def _extra_repr(self) -> str:
        return f", elites={self.elites}, alpha={self.alpha}"


class MPPI(Planner):
    """Model-predictive path integral control (information-theoretic MPC, Williams et al. 2017).

    Each iteration perturbs the plan with Gaussian noise of std ``noise_std`` (the plan itself is
    always one of the candidates), evaluates the ``population`` perturbed sequences in one batched
    rollout and replaces the plan by their average weighted by ``softmax(-(cost - min cost) /
    temperature)``. A low temperature approaches the best sample, a high one the plain mean. See
    :class:`Planner` for the shared arguments (``init_std`` is the noise std here).

    Args:
        temperature: lambda > 0, in cost units.
        iterations: refinements per control step (1 is classic MPPI).
    """

    name = "mppi"

    def __init__(
        self,
        model: WorldModel,
        cost: Cost,
        *,
        bounds: tuple[Any, Any],
        horizon: int = 30,
        population: int = 500,
        iterations: int = 1,
        temperature: float = 1.0,
        **kwargs: Any,
    ):
        super().__init__(model, cost, bounds=bounds, horizon=horizon, population=population,
                         iterations=iterations, **kwargs)
        self.temperature = finite_float(temperature, "temperature", positive=True)

    def _optimize(self, x0: torch.Tensor) -> torch.Tensor:
        mean = self.plan
        std = self.init_std.expand_as(mean)
        best_cost = math.inf
        for it in range(self.iterations):
            u = self._sample(mean, std)
            costs = self._checked_costs(self.evaluate(x0, self._snap(u)), it)
            cmin = costs.min()
            best_cost = min(best_cost, float(cmin))
            w = torch.softmax(-(costs - cmin) / self.temperature, dim=0)
            mean = torch.einsum("p,phm->hm", w, u)
        self.last_info = {"cost": best_cost, "effective_samples": float(1.0 / w.square().sum()),
                          "iterations": it + 1}
        return mean

    def _extra_repr(self) -> str:
        return f", temperature={self.temperature}"
