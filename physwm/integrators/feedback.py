"""Closed-loop rollouts under a time-varying affine feedback law, eager or compiled in chunks.

An iLQR forward pass rolls a model out under ``u_t = clip(u_ref_t + alpha k_t + K_t (x_t - x_ref_t))``:
the control depends on the state reached, so the rollout cannot be computed open loop. :func:`feedback_rollout`
is that loop for any one-step map; :func:`compiled_feedback_rollout` compiles ``chunk`` consecutive steps of
an integrator on a field (the integrator's own step, as :mod:`physwm.integrators.fused` does for open-loop
rollouts) into one kernel call, so a horizon of ``H`` steps costs ``H / chunk`` calls instead of ``H`` calls
of a dozen small operations each. Compiled like every physwm kernel (:mod:`physwm.integrators.compiled`):
once per batch size, shown on stderr, cached on the field and on disk, eager where no compiler is found.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..checks import check_dt, positive_int
from ..systems.base import VectorField
from .base import Integrator
from .compiled import CompiledFunction, KernelOwner
from .fused import cached_on_field, checked_integrator, column_options

__all__ = ["feedback_rollout", "compiled_feedback_rollout", "FeedbackRollout"]

Step = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _feedback_steps(step: Step, x: torch.Tensor, x_ref: torch.Tensor, u_ref: torch.Tensor, k: torch.Tensor,
                    gains: torch.Tensor, alpha: torch.Tensor, low: torch.Tensor,
                    high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    xs, us = [], []
    for t in range(u_ref.shape[0]):
        u = u_ref[t] + alpha * k[t] + (x - x_ref[t]) @ gains[t].t()
        u = torch.maximum(torch.minimum(u, high), low)
        x = step(x, u)
        xs.append(x)
        us.append(u)
    return torch.stack(xs, 1), torch.stack(us, 1)


def feedback_rollout(step: Step, x0: torch.Tensor, x_ref: torch.Tensor, u_ref: torch.Tensor, k: torch.Tensor,
                     gains: torch.Tensor, alpha: torch.Tensor, low: torch.Tensor,
                     high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Roll ``step`` out in closed loop under ``u_t = clip(u_ref_t + alpha k_t + K_t (x_t - x_ref_t), low, high)``.

    Args:
        step: ``(x [B, n], u [B, m]) -> x_next [B, n]``.
        x0: start states ``[B, n]``.
        x_ref: reference states ``[T, n]`` (the nominal trajectory's ``x_0 .. x_{T-1}``).
        u_ref: reference controls ``[T, m]``.
        k: feedforward terms ``[T, m]``.
        gains: feedback gains ``K [T, m, n]``.
        alpha: step size of the feedforward term per rollout, ``[B, 1]``.
        low, high: control bounds ``[m]``.

    Returns:
        ``(states [B, T+1, n], controls [B, T, m])``, the first state being ``x0``.
    """
    xs, us = _feedback_steps(step, x0, x_ref, u_ref, k, gains, alpha, low, high)
    return torch.cat((x0[:, None], xs), 1), us


class FeedbackRollout(KernelOwner):
    """:func:`feedback_rollout` of ``integrator``'s step on ``field``, compiled ``chunk`` steps at a time.

    Build one with :func:`compiled_feedback_rollout` (which caches them on the field); call it with the
    arguments of :func:`feedback_rollout` after ``step``.

    Attributes:
        kernel: the :class:`~physwm.integrators.compiled.CompiledFunction` of one chunk.
    """

    def __init__(self, field: VectorField, integrator: Integrator, dt: float, chunk: int = 8,
                 backend: str | Callable = "inductor", fallback: bool = True, progress: bool = True):
        self.field, self.integrator, self.dt, self.chunk = field, integrator, check_dt(dt), positive_int(chunk, "chunk")

        def step(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
            return integrator.advance(field, x, u, self.dt)

        def chunk_fn(x, x_ref, u_ref, k, gains, alpha, low, high):
            return _feedback_steps(step, x, x_ref, u_ref, k, gains, alpha, low, high)

        self.kernel = CompiledFunction(
            chunk_fn, f"closed-loop rollout of {type(field).__name__} with {integrator!r} ({self.chunk} steps per "
            "kernel call)", backend=backend, options=column_options(backend), fallback=fallback, progress=progress,
            describe=lambda args: f"batch size {args[0].shape[0]} ({args[0].dtype})",
        )

    def __call__(self, x0: torch.Tensor, x_ref: torch.Tensor, u_ref: torch.Tensor, k: torch.Tensor,
                 gains: torch.Tensor, alpha: torch.Tensor, low: torch.Tensor,
                 high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        T, c = u_ref.shape[0], self.chunk
        padded = -(-T // c) * c  # whole chunks; the padding's steps are discarded

        def pad(a: torch.Tensor) -> torch.Tensor:
            return a if padded == T else torch.cat((a, a.new_zeros(padded - T, *a.shape[1:])))

        x_ref, u_ref, k, gains = pad(x_ref), pad(u_ref), pad(k), pad(gains)
        x, xs, us = x0, [x0[:, None]], []
        for j in range(0, padded, c):
            sx, su = self.kernel(x, x_ref[j : j + c], u_ref[j : j + c], k[j : j + c], gains[j : j + c], alpha, low,
                                 high)
            xs.append(sx)
            us.append(su)
            x = sx[:, -1]
        return torch.cat(xs, 1)[:, : T + 1], torch.cat(us, 1)[:, :T]


def compiled_feedback_rollout(field: VectorField, integrator: Integrator | str, dt: float, *, chunk: int = 8,
                              backend: str | Callable = "inductor", fallback: bool = True,
                              progress: bool = True) -> FeedbackRollout:
    """A :class:`FeedbackRollout`, cached on the field (the same object for the same field, integrator object,
    ``dt`` and settings). See :func:`~physwm.integrators.compiled_rollout` for the arguments."""
    integrator = checked_integrator(field, integrator)
    key = ("feedback", id(integrator), check_dt(dt), chunk, backend, fallback)
    rollout = cached_on_field(field, key, integrator,
                              lambda: FeedbackRollout(field, integrator, dt, chunk, backend, fallback, progress))
    rollout.kernel.progress = progress
    return rollout
