"""Second-order fits of a model's physical constants alone: :func:`gauss_newton_constants`.

A physics-based model's data loss is the mean square of its residuals (:func:`physwm.evaluate.
loss_residuals`), and in its handful of physical constants (the networks held fixed) that least-squares
problem is smooth and, for data the physics can explain, nearly zero-residual: Gauss-Newton converges
quadratically there, usually in one or two steps from close by. Adam's minibatch steps (about ``lr`` per
step in every direction) leave the constants jittering around the minimum, and L-BFGS crawls along the
narrow valleys of coupled constants (mass of the pole vs of the cart): on the issue's CartPole, from the
end of an Adam run, L-BFGS lowered the loss from 3.31e-11 to 3.29e-11 in 11 iterations and stopped, where
one Gauss-Newton step reached 1.7e-13 with every constant within 1e-6 of the truth.

The steps are Levenberg-Marquardt steps (Gauss-Newton damped towards gradient descent when a step does
not lower the loss) on a float64 copy of the model, with the Jacobian of the residuals taken by finite
differences (:func:`physwm.evaluate.constants_jacobian`; ``p`` constants cost ``p + 1`` forward passes,
no backward pass). The constants' bounds (``value >= floor``, e.g. a friction that may vanish) are an
active set: a constant on its bound whose gradient pushes it further down is held there.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from ..evaluate import constants_jacobian, learnable_constants, loss_residuals

__all__ = ["gauss_newton_constants", "levenberg_marquardt"]


def _raws(model: nn.Module) -> list[tuple[torch.Tensor, float]]:
    return [(mod.raw[name], type(mod).constants[name].floor) for _, mod, name in learnable_constants(model)]


def _mean_square(r: torch.Tensor) -> float:
    v = float(r.pow(2).mean())
    return v if math.isfinite(v) else math.inf


@torch.no_grad()
def gauss_newton_constants(
    model: nn.Module,
    batch: dict[str, torch.Tensor],
    iterations: int,
    *,
    max_windows: int | None = 16384,
    seed: int = 0,
    rtol: float = 1e-6,
) -> dict[str, float]:
    """Minimise the model's data loss on ``batch`` over its learnable constants (Levenberg-Marquardt).

    Args:
        model: a WorldModel with learnable physical constants; the constants found are written into it
            (other parameters are left as they are).
        batch: ``{"states": [W, H+1, n], "controls": [W, H, m]}``, the training windows.
        iterations: at most this many accepted or rejected steps.
        max_windows: use at most this many windows (drawn with ``seed``; ``None``: all).
        seed: seed of that draw.
        rtol: stop when a step lowers the loss by less than this fraction.

    Returns:
        ``{"iterations", "loss_before", "loss_after"}``: steps taken and the mean square residual (the
        data loss, float64) before and after.
    """
    work = copy.deepcopy(model).double().eval()
    s, c = batch["states"], batch["controls"]
    if max_windows is not None and s.shape[0] > max_windows:
        idx = torch.randperm(s.shape[0], generator=torch.Generator().manual_seed(seed))[:max_windows]
        s, c = s[idx.to(s.device)], c[idx.to(c.device)]
    out = levenberg_marquardt(work, s.double(), c.double(), iterations, rtol=rtol)
    raws = _raws(work)
    for (target, _), (raw, _) in zip(_raws(model), raws):
        target.copy_(raw.to(target.dtype))
    return out


@torch.no_grad()
def levenberg_marquardt(
    work: nn.Module, states: torch.Tensor, controls: torch.Tensor, iterations: int, *, rtol: float = 1e-6
) -> dict[str, float]:
    """Levenberg-Marquardt on the learnable constants of ``work``, in place (the steps of
    :func:`gauss_newton_constants` without its copy: for callers that keep a float64 model of their own, such as
    online re-identification).

    Args:
        work: a float64 model with learnable physical constants (changed in place; networks untouched).
        states: ``[W, H+1, n]`` float64 windows; controls: ``[W, H, m]``.
        iterations: at most this many accepted or rejected steps.
        rtol: stop when a step lowers the loss by less than this fraction.

    Returns:
        ``{"iterations", "loss_before", "loss_after"}`` (mean square residuals, float64).
    """
    s, c = states, controls
    raws = _raws(work)
    for raw, floor in raws:
        raw.clamp_(min=floor)  # below its floor a constant is used as its floor: the same model
    loss = before = _mean_square(loss_residuals(work, s, c))
    damping, steps = 1e-3, 0
    while steps < iterations and math.isfinite(loss) and loss > 0:
        J, r = constants_jacobian(work, s, c)
        J, r = J.cpu().numpy(), r.cpu().numpy()
        grad = J.T @ r
        x = np.array([float(raw) for raw, _ in raws])
        floors = np.array([floor for _, floor in raws])
        free = ~((x <= floors) & (grad > 0))  # held on their bound: the descent direction points below it
        if not free.any():
            break
        Jf = J[:, free]
        norms = np.sqrt((Jf**2).sum(0)) + 1e-300
        improved = False
        while steps < iterations:
            steps += 1
            A = np.vstack([Jf, np.diag(math.sqrt(damping) * norms)])
            delta = np.linalg.lstsq(A, np.concatenate([-r, np.zeros(Jf.shape[1])]), rcond=None)[0]
            if np.mean(r**2) - np.mean((r + Jf @ delta) ** 2) <= rtol * loss:
                break  # converged: the model of the loss promises nothing more
            trial = x.copy()
            trial[free] = np.maximum(x[free] + delta, floors[free])
            for (raw, _), v in zip(raws, trial):
                raw.fill_(float(v))
            new = _mean_square(loss_residuals(work, s, c))
            if new < loss:
                improved, damping = True, max(damping / 10, 1e-12)
                break
            damping *= 10
            if damping > 1e8:
                break
        if not improved:
            for (raw, _), v in zip(raws, x):
                raw.fill_(float(v))
            break
        gain, loss = loss - new, new
        if gain <= rtol * (loss + gain):
            break
    return {"iterations": steps, "loss_before": before, "loss_after": loss}
