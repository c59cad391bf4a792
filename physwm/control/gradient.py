r"""Gradient-based MPC planners: iLQR, shooting by Adam, and CEM refined by gradient steps.

They plan on the model's one-step map ``x_{t+1} = f(x_t, u_t)`` (``model.step``; an ensemble's mean step)
and its Jacobians ``A_t = df/dx``, ``B_t = df/du`` at every step of the current plan, computed by autograd
for all steps at once (:meth:`~physwm.control.dynamics.PlanningModel.jacobians`: ``torch.func.jacrev`` of
the batch-summed step, compiled for ODE models), with the cost's derivatives from
:mod:`physwm.control.derivatives`. The sequential parts (the adjoint and Riccati sweeps over the horizon,
a few 4x4 matrix products per step) run in float64 NumPy, which is faster than torch for such tiny arrays.

* :class:`ILQR`, iterative LQR (Li & Todorov 2004; with the regularisation and line search of Tassa et
  al. 2012): linearise the model along the plan, solve the time-varying LQR problem of the cost's
  second-order expansion backwards in time, and roll the model forward in closed loop with the new gains,
  trying several step sizes at once (one batched rollout); controls beyond the bounds are clipped and
  get no feedback. With ``warm_iterations`` it runs real-time iterations once warm-started: one (or a few)
  iterations per control step along the previous step's shifted prediction, with no open-loop rollout.
* :class:`Shooting`: Adam on the control sequence, from ``restarts`` starts at once (the warm-started plan
  and perturbations of it), the gradient by the adjoint recursion
  ``lambda_t = A_t^T (dJ/dx_{t+1} + lambda_{t+1})``, ``dJ/du_t = dcost/du_t + B_t^T (dJ/dx_{t+1} +
  lambda_{t+1})``; the controls are projected back into the bounds after every step.
* :class:`CEMGD`: a (small) CEM search, then Adam steps from the CEM mean and its best sample: the global
  search gets the swing-up's direction right, the gradient steps polish it where sampling is slow.

All are warm-started like CEM (the previous plan shifted by one step) and report their model evaluations
per control step (``last_info["model_evaluations"]``). On discrete-action environments (``action_levels``)
they optimise continuous controls and only the applied control is snapped to a level.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..checks import finite_float, positive_int
from ..models import WorldModel
from .derivatives import cost_gradients, cost_hessians, plan_cost
from .planners import CEM, Cost, Planner

__all__ = ["ILQR", "Shooting", "CEMGD"]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64)


def _spd_inverse(q: np.ndarray) -> np.ndarray | None:
    """Inverse of a small symmetric matrix ``[m, m]`` if it is positive definite, else None (one control: a
    division, which is much cheaper than NumPy's linear-algebra calls on tiny matrices)."""
    if q.shape[0] == 1:
        return 1.0 / q if q[0, 0] > 0 else None
    try:
        np.linalg.cholesky(q)
    except np.linalg.LinAlgError:
        return None
    return np.linalg.inv(q)


class _GradientSteps:
    """Adjoint gradients and Adam steps on control sequences (shared by :class:`Shooting` and :class:`CEMGD`)."""

    def _setup_adam(self, lr: float | None, beta1: float, beta2: float) -> None:
        if lr is None:
            self.lr = (self.high - self.low) / 20
        else:
            self.lr = torch.as_tensor(finite_float(lr, "lr", positive=True), dtype=self.dtype, device=self.device)
        if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
            raise ValueError(f"betas must be in [0, 1), got {(beta1, beta2)!r}")
        self.betas = (float(beta1), float(beta2))

    def _rollout(self, x0: torch.Tensor, controls: torch.Tensor, it: int) -> tuple[torch.Tensor, torch.Tensor]:
        states = self.dynamics.step_rollout(x0.expand(controls.shape[0], -1), controls)
        return states, self._checked_costs(plan_cost(self.cost, self.terminal_cost, states, controls), it)

    def _gradient(self, states: torch.Tensor, controls: torch.Tensor) -> np.ndarray:
        """``dJ/dcontrols [R, H, m]`` (float64) of plans ``states [R, H+1, n]``, ``controls [R, H, m]``."""
        R, H, m = controls.shape
        n = states.shape[-1]
        _, gx, gu = cost_gradients(self.cost, self.terminal_cost, states, controls)
        _, A, B = self.dynamics.jacobians(states[:, :-1].reshape(R * H, n), controls.reshape(R * H, m))
        A, B = _np(A).reshape(R, H, n, n), _np(B).reshape(R, H, n, m)
        gx, grad = _np(gx), _np(gu)
        lam = np.zeros((R, 1, n))
        for t in range(H - 1, -1, -1):
            w = gx[:, None, t + 1] + lam  # [R, 1, n]: dJ/dx_{t+1}
            grad[:, t] += (w @ B[:, t])[:, 0]
            lam = w @ A[:, t]
        grad[~np.isfinite(grad)] = 0.0  # a diverged plan (ranked last or refused by the costs) does not move
        return grad

    def _adam(self, x0: torch.Tensor, controls: torch.Tensor, iterations: int) -> tuple[torch.Tensor, float, int]:
        """Adam from ``controls [R, H, m]``; returns (best plan ``[H, m]``, its cost, iterations run)."""
        u = controls.clone()
        b1, b2 = self.betas
        m1 = np.zeros(tuple(u.shape))
        m2 = np.zeros(tuple(u.shape))
        lr = _np(self.lr)
        low, high = self.low, self.high
        best_cost, best = math.inf, u[0].clone()
        for it in range(iterations):
            states, costs = self._rollout(x0, u, it)
            j = int(torch.argmin(costs))
            if float(costs[j]) < best_cost:
                best_cost, best = float(costs[j]), u[j].clone()
            g = self._gradient(states, u)
            m1 = b1 * m1 + (1 - b1) * g
            m2 = b2 * m2 + (1 - b2) * g * g
            step = lr * (m1 / (1 - b1 ** (it + 1))) / (np.sqrt(m2 / (1 - b2 ** (it + 1))) + 1e-8)
            u = torch.maximum(torch.minimum(u - torch.from_numpy(step).to(u.dtype), high), low)
        _, costs = self._rollout(x0, u, iterations)
        j = int(torch.argmin(costs))
        if float(costs[j]) < best_cost:
            best_cost, best = float(costs[j]), u[j].clone()
        return best, best_cost, iterations


def _no_ts(kwargs: dict[str, Any], name: str) -> None:
    if kwargs.get("ensemble", "mean") != "mean":
        raise ValueError(f"{name} plans on the model's one-step map (an ensemble's mean step): ensemble must be "
                         f"'mean', got {kwargs['ensemble']!r}")


class Shooting(_GradientSteps, Planner):
    """Gradient-based shooting: Adam on the control sequence from several starts (see the module doc).

    Each iteration rolls out all ``restarts`` sequences at once, differentiates their costs by the adjoint
    recursion and takes one Adam step per sequence, projected into the bounds. The first start is the
    warm-started plan, the others are it plus Gaussian noise of std ``init_std`` (clipped). The cheapest
    sequence seen is returned. See :class:`~physwm.control.planners.Planner` for the shared arguments.

    Args:
        restarts: sequences optimised in parallel.
        iterations: Adam steps per control step.
        lr: Adam's step size in control units (default a twentieth of ``high - low``).
        beta1, beta2: Adam's moment decay rates.

    Model evaluations per control step: ``restarts * horizon * ((iterations + 1) + iterations * (1 + n))``
    (a rollout per iteration and one after the last, the Jacobians at every step of every rollout).
    """

    name = "shooting"
    fixed_options = ("population", "particles")  # population: the restarts; plans on the mean

    def __init__(self, model: WorldModel, cost: Cost, *, bounds: tuple[Any, Any], horizon: int = 30,
                 restarts: int = 4, iterations: int = 10, lr: float | None = None, beta1: float = 0.9,
                 beta2: float = 0.999, **kwargs: Any):
        _no_ts(kwargs, "Shooting")
        super().__init__(model, cost, bounds=bounds, horizon=horizon, population=positive_int(restarts, "restarts"),
                         iterations=iterations, **kwargs)
        self.restarts = self.population
        self._setup_adam(lr, beta1, beta2)

    def _optimize(self, x0: torch.Tensor) -> torch.Tensor:
        R, H, m = self.restarts, self.horizon, self.control_dim
        starts = self.plan.expand(R, H, m).clone()
        if R > 1:
            eps = torch.randn((R - 1, H, m), generator=self.generator, dtype=self.dtype, device=self.device)
            starts[1:] = torch.maximum(torch.minimum(starts[1:] + self.init_std * eps, self.high), self.low)
        best, cost, its = self._adam(x0, starts, self.iterations)
        self.last_info = {"cost": cost, "iterations": its}
        return best

    def _extra_repr(self) -> str:
        return f", restarts={self.restarts}"


class CEMGD(_GradientSteps, CEM):
    """CEM, then Adam steps from the CEM mean and the best sequence CEM sampled (see the module doc).

    See :class:`~physwm.control.planners.CEM` for the CEM arguments (``population``, ``iterations``,
    ``elites``, ...; smaller than CEM's own defaults, since the gradient steps finish the search).

    Args:
        gd_iterations: Adam steps after CEM.
        lr, beta1, beta2: Adam's settings (see :class:`Shooting`).

    Model evaluations per control step: ``population * horizon * iterations`` (CEM) plus
    ``2 * horizon * ((gd_iterations + 1) + gd_iterations * (1 + n))``.
    """

    name = "cem_gd"
    fixed_options = ("particles",)  # plans on the mean

    def __init__(self, model: WorldModel, cost: Cost, *, bounds: tuple[Any, Any], horizon: int = 30,
                 population: int = 100, iterations: int = 3, gd_iterations: int = 5, lr: float | None = None,
                 beta1: float = 0.9, beta2: float = 0.999, **kwargs: Any):
        _no_ts(kwargs, "CEMGD")
        super().__init__(model, cost, bounds=bounds, horizon=horizon, population=population, iterations=iterations,
                         **kwargs)
        self.gd_iterations = positive_int(gd_iterations, "gd_iterations")
        self._setup_adam(lr, beta1, beta2)

    def _optimize(self, x0: torch.Tensor) -> torch.Tensor:
        mean = CEM._optimize(self, x0)
        cem_info = self.last_info
        starts = torch.stack((mean.clamp(self.low, self.high), cem_info["best"]))
        best, cost, its = self._adam(x0, starts, self.gd_iterations)
        self.last_info = {"cost": min(cost, cem_info["cost"]), "cem_cost": cem_info["cost"], "gd_cost": cost,
                          "iterations": cem_info["iterations"], "gd_iterations": its}
        return best if cost <= cem_info["cost"] else cem_info["best"]

    def _extra_repr(self) -> str:
        return f", elites={self.elites}, gd_iterations={self.gd_iterations}"


class ILQR(Planner):
    """Iterative LQR on the model's linearisation along the plan (see the module doc).

    Per iteration: the Jacobians of the step at every step of the current plan (one batched autograd call),
    the cost's gradients and Hessians (``torch.func``), the backward Riccati pass with Levenberg-Marquardt
    regularisation ``mu`` on the control Hessian (raised when it is not positive definite or no step size
    improves the cost, lowered after a success), and a closed-loop forward pass of the model for every
    step size in ``alphas`` at once. The search stops early once an iteration improves the cost by less
    than ``tolerance`` (relative). See :class:`~physwm.control.planners.Planner` for the shared arguments.

    Real-time iterations (``warm_iterations``): once warm-started (after the first :meth:`act` since
    :meth:`reset`), a step runs ``warm_iterations`` iterations, and the first of them linearises along the
    previous step's predicted trajectory shifted by one step (the Jacobians' kernel also predicts its new
    last state) instead of rolling the shifted plan out again from the measured state: its closed-loop
    forward pass starts from the measured state, the feedback term absorbing the difference, and also tries
    ``alpha = 0`` (the previous plan under feedback), so the step keeps the best of the candidates even when
    no step size improves on it. Model-predictive control runs one iteration per control step this way
    (Diehl et al. 2005), with no open-loop rollout at all.

    Args:
        iterations: iLQR iterations per control step (the first step, or every step without
            ``warm_iterations``).
        alphas: step sizes of the forward pass's feedforward term, tried in one batched rollout.
        mu: initial regularisation (kept between control steps).
        tolerance: relative cost improvement below which the search stops.
        warm_iterations: iterations per warm-started step, as real-time iterations (see above); ``None``
            (default): ``iterations``, each step starting from a rollout of the shifted plan.

    Model evaluations per control step: ``horizon`` (the warm start's rollout) plus, per iteration,
    ``horizon * (1 + n)`` (Jacobians) and ``len(alphas) * horizon`` (the forward pass); a real-time
    iteration has no rollout and ``len(alphas) + 1`` forward rollouts.
    """

    name = "ilqr"
    fixed_options = ("population", "particles")  # one plan

    def __init__(self, model: WorldModel, cost: Cost, *, bounds: tuple[Any, Any], horizon: int = 30,
                 iterations: int = 5, alphas: tuple[float, ...] = (1.0, 0.5, 0.25, 0.1, 0.03),
                 mu: float = 1e-3, tolerance: float = 1e-4, warm_iterations: int | None = None, **kwargs: Any):
        _no_ts(kwargs, "ILQR")
        super().__init__(model, cost, bounds=bounds, horizon=horizon, population=1, iterations=iterations, **kwargs)
        alphas = tuple(float(a) for a in alphas)
        if not alphas or not all(0 < a <= 1 for a in alphas):
            raise ValueError(f"alphas must be a non-empty sequence of step sizes in (0, 1], got {alphas!r}")
        self.alphas = alphas
        self.mu0 = finite_float(mu, "mu", positive=True)
        self.mu = self.mu0
        self.tolerance = finite_float(tolerance, "tolerance", nonnegative=True)
        self.mu_min, self.mu_max, self.mu_factor = 1e-8, 1e8, 4.0
        self.warm_iterations = None if warm_iterations is None else positive_int(warm_iterations, "warm_iterations")
        self.reference: tuple[torch.Tensor, torch.Tensor] | None = None

    def reset(self) -> None:
        super().reset()
        self.mu = getattr(self, "mu0", 1e-3)
        self.reference = None  # the last plan's predicted (states, controls); shifted by act

    def _shift(self) -> None:
        super()._shift()
        ref = getattr(self, "reference", None)
        if ref is not None:
            self.reference = (ref[0][1:], self.plan)  # x_1 .. x_H of the last plan; the shifted plan

    def _warm_reference(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The shifted previous trajectory ``(states [H, n], controls [H, m])`` if this step runs real-time
        iterations (``warm_iterations`` set, a plan predicted since :meth:`reset`, the plan not replaced)."""
        ref = self.reference
        if self.warm_iterations is None or ref is None or ref[0].shape[0] != self.horizon:
            return None
        return ref if torch.equal(ref[1], self.plan) else None

    def _backward(self, A: np.ndarray, B: np.ndarray, d: tuple[np.ndarray, ...], u: np.ndarray,
                  mu: float) -> tuple[np.ndarray, np.ndarray] | None:
        """Feedforward ``k [H, m]`` and gains ``K [H, m, n]``, or None if a control Hessian is not positive
        definite at this ``mu``.

        With ``z_t = (x_t, u_t)`` and ``M_t = [[A_t, B_t], [0, I]]`` (the map from ``z_t`` to
        ``(x_{t+1}, u_t)``, on which the step's cost is charged), the Q-function's expansion is
        ``Q_zz = M_t^T (G_t + V_xx') M_t`` and ``q_z = M_t^T (g_t + v_x')`` (``G_t``, ``g_t``: the cost's
        Hessian and gradient in ``(x_{t+1}, u_t)``; the cost-to-go ``v_x', V_xx'`` added on the state block),
        and the cost-to-go of the (clipped) control law ``Z_t = [I; K_t]`` is ``V_xx = Z^T Q_zz Z``,
        ``v_x = Z^T (q_z + Q_zu k_t)``: the formulas of Tassa et al. (2012) as a few products of
        ``(n + m)``-square matrices per step.
        """
        gx, gu, gxx, guu, gux = d
        H, n, m = B.shape
        low, high = _np(self.low), _np(self.high)
        M = np.zeros((H, n + m, n + m))
        M[:, :n, :n], M[:, :n, n:], M[:, n:, n:] = A, B, np.eye(m)
        Mt = M.transpose(0, 2, 1).copy()
        G = np.zeros((H, n + m, n + m))
        G[:, :n, :n], G[:, n:, n:], G[:, n:, :n], G[:, :n, n:] = gxx, guu, gux, gux.transpose(0, 2, 1)
        g = np.concatenate((gx, gu), axis=1)  # [H, n + m]
        k, K = np.zeros((H, m)), np.zeros((H, m, n))
        Z = np.zeros((n + m, n))
        Z[:n] = np.eye(n)
        mu_eye = mu * np.eye(m)
        for t in range(H - 1, -1, -1):
            Q = Mt[t] @ G[t] @ M[t]
            q = Mt[t] @ g[t]
            quu, qux, qu = Q[n:, n:], Q[n:, :n], q[n:]
            inv = _spd_inverse(quu + mu_eye)
            if inv is None:
                return None
            kt, Kt = -inv @ qu, -inv @ qux
            target = np.clip(u[t] + kt, low, high)
            clipped = target != u[t] + kt
            kt = target - u[t]
            Kt[clipped] = 0.0  # controls at a bound get no feedback
            k[t], K[t] = kt, Kt
            Z[n:] = Kt
            vxx = Z.T @ Q @ Z
            vxx = (vxx + vxx.T) / 2
            vx = Z.T @ (q + Q[:, n:] @ kt)
            if t:  # the cost-to-go of x_t enters step t - 1's expansion
                G[t - 1, :n, :n] += vxx
                g[t - 1, :n] += vx
        return k, K

    def _forward(self, x0: torch.Tensor, states: torch.Tensor, u: torch.Tensor, k: np.ndarray,
                 K: np.ndarray, alphas: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """Closed-loop rollouts ``u = clip(u_hat + alpha k + K (x - x_hat))``, one per alpha, in one batch."""
        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a).to(dtype=self.dtype, device=self.device)

        a = torch.tensor(alphas, dtype=self.dtype, device=self.device)[:, None]
        return self.dynamics.feedback_rollout(x0.expand(len(alphas), -1), states[:-1], u, t(k), t(K), a,
                                              self.low, self.high)

    def _optimize(self, x0: torch.Tensor) -> torch.Tensor:
        n, m, H = self.state_dim, self.control_dim, self.horizon
        reference = self._warm_reference()
        if reference is None:
            u = self.plan.clamp(self.low, self.high)
            states = self.dynamics.step_rollout(x0[None], u[None])
            cost = float(self._checked_costs(plan_cost(self.cost, self.terminal_cost, states, u[None]), 0)[0])
            states, iterations = states[0], self.iterations
        else:  # real-time iteration: linearise along the shifted previous trajectory, no rollout
            (states, u), cost, iterations = reference, math.inf, self.warm_iterations
        done = 0
        for _ in range(iterations):
            done += 1
            y, A, B = self.dynamics.jacobians(states if done == 1 and reference is not None else states[:-1], u)
            if done == 1 and reference is not None:
                states = torch.cat((states[:1], y))  # the reference's x_0 .. x_H (the kernel predicts x_H)
            d = cost_hessians(self.cost, self.terminal_cost, states, u)[1:]
            d = tuple(_np(a) for a in d)
            A, B = _np(A).reshape(H, n, n), _np(B).reshape(H, n, m)
            gains = None
            while gains is None and self.mu <= self.mu_max:
                gains = self._backward(A, B, d, _np(u), self.mu)
                if gains is None:
                    self.mu *= self.mu_factor
            if gains is None:
                break
            rti = done == 1 and reference is not None
            alphas = self.alphas + (0.0,) if rti else self.alphas
            xs, us = self._forward(x0, states, u, *gains, alphas)
            costs = plan_cost(self.cost, self.terminal_cost, xs, us)
            costs = torch.where(torch.isfinite(costs), costs, torch.full_like(costs, math.inf))
            j = int(torch.argmin(costs))
            new = float(costs[j])
            if rti:  # the start moved: keep the best candidate; alpha = 0 best counts as no improvement
                if not math.isfinite(new):
                    raise ValueError("ILQR: every closed-loop rollout from the state diverged (the model's predictions "
                                     "or the cost are NaN or inf)")
                states, u, cost = xs[j], us[j], new
                if j == len(alphas) - 1:
                    self.mu = min(self.mu_max, self.mu * self.mu_factor)
                else:
                    self.mu = max(self.mu_min, self.mu / self.mu_factor)
                continue
            if new < cost:
                improvement = (cost - new) / max(abs(cost), 1e-12)
                states, u, cost = xs[j], us[j], new
                self.mu = max(self.mu_min, self.mu / self.mu_factor)
                if improvement < self.tolerance:
                    break
            else:
                self.mu *= self.mu_factor
                if self.mu > self.mu_max:
                    break
        self.last_info = {"cost": cost, "iterations": done, "mu": self.mu}
        self.reference = (states, u)  # [H+1, n], [H, m]; act shifts it to the next step's reference
        return u

    def _extra_repr(self) -> str:
        return f", alphas={self.alphas}"
