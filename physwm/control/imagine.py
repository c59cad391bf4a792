"""Imagination: run a policy in closed loop on a world model and keep the virtual experience.

:func:`imagine` returns :class:`~physwm.data.Trajectories`, the container of real data, so imagined
experience trains, evaluates and plots like collected data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..checks import positive_int
from ..data import Policy as DataPolicy
from ..data import Trajectories
from ..models import WorldModel
from ..systems import System
from .dynamics import PlanningModel
from .planners import Planner

__all__ = ["imagine", "FUSED_MIN_TRANSITIONS"]

#: Imagined transitions (episodes x steps) from which :func:`imagine` steps an ODE model compiled by default.
#: Imagination is a closed loop (the policy acts between steps), so each step is one kernel call of
#: :func:`~physwm.integrators.compiled_step`; compiling it costs seconds with inductor's disk cache warm and
#: minutes cold, which a step wins back at a few milliseconds per step (measured on a loaded 2-core machine
#: for the default hybrid, RK4: 48 ms eager vs 1.8 ms compiled per step of 1,000 states, 1.8 s vs 0.7 s of
#: 100,000), i.e. after some thousand steps of a thousand states.
FUSED_MIN_TRANSITIONS = 1_000_000


def _as_policy(policy: Any, seed: int, model: WorldModel) -> Callable[[torch.Tensor], torch.Tensor]:
    if isinstance(policy, Planner):
        raise TypeError("a Planner plans one state at a time; wrap it or use run_episode for closed-loop MPC")
    if isinstance(policy, DataPolicy):
        systems = [m for m in model.modules() if isinstance(m, System)]
        if not systems:
            raise ValueError(
                f"the {policy.name!r} policy needs a system to bind to and {type(model).__name__} has no physics; "
                "bind it first: policy.bind(<the system, e.g. CartPole(params)>)"
            )
        bound = policy.bind(systems[0])
        rng = np.random.default_rng(seed)

        def batched(x: torch.Tensor) -> torch.Tensor:
            rows = x.detach().cpu().numpy().astype(np.float64)
            return torch.tensor([[float(bound(r, rng))] for r in rows])

        batched.__name__ = f"physwm.data {bound.name}"
        return batched
    if not callable(policy):
        raise TypeError(f"policy must be a callable state batch [B, n] -> control [B, m], got {type(policy).__name__}")
    return policy


def imagine(
    model: WorldModel,
    policy: Callable[[torch.Tensor], torch.Tensor],
    starts: torch.Tensor,
    steps: int,
    *,
    terminate: Callable[[torch.Tensor], torch.Tensor] | None = None,
    seed: int = 0,
    meta: Mapping[str, Any] | None = None,
    progress: bool = False,
    fused: bool | None = None,
):
    """Generate virtual experience: run ``policy`` in closed loop on ``model`` from ``starts``.

    ``x_{t+1} = model.step(x_t, policy(x_t))`` for all episodes at once, under ``torch.no_grad``.
    Recurrent models are stepped one transition at a time too (their ``step``), so their hidden state
    does not carry over between steps here.

    Args:
        model: any WorldModel.
        policy: a callable ``states [B, n] -> controls [B, m]`` (tensors, physical units: forces in N)
            evaluated on the whole batch at once; numpy outputs are accepted. A
            :class:`physwm.data.Policy` (``make_policy("lqr" | "uniform" | "random")``, one state at
            a time, ``policy(state, rng) -> force``) is accepted too: it is applied row by row with a
            ``numpy`` generator seeded by ``seed``, after ``bind`` to gymnasium's CartPole-v1
            constants if it was not given its own.
        starts: start states ``[B, n]`` (or one state ``[n]``); their dtype and device are kept.
        steps: transitions per episode T.
        terminate: optional ``states [B, n] -> bool [B]``: an episode ends at the first predicted
            state for which it is True (that state is kept; later entries are NaN padding and
            ``lengths`` counts the valid transitions). Episodes whose prediction becomes NaN/inf end
            before that state, and are counted in ``meta["diverged"]``.
        seed: seed of a :class:`physwm.data.Policy`'s random numbers (noise, random actions).
        meta: extra metadata for the result.
        progress: tqdm progress bar over steps (and the compile messages, see ``fused``).
        fused: step an :class:`~physwm.models.ODEModel` with a fixed-step integrator through a compiled kernel
            (:class:`~physwm.control.dynamics.PlanningModel`): ``None`` (default) where that pays, i.e. from
            :data:`FUSED_MIN_TRANSITIONS` imagined transitions on where a compiler is available; ``True`` or
            ``False`` to decide. Recorded in ``meta["fused"]``.

    Returns:
        :class:`~physwm.data.Trajectories` with ``states [B, T+1, n]``, ``controls [B, T, m]``,
        ``lengths [B]``, ``dt = model.dt`` and ``meta["source"] = "imagined"``.
    """
    policy = _as_policy(policy, seed, model)
    steps = positive_int(steps, "steps")
    x = torch.as_tensor(starts)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[-1] != model.state_dim or x.shape[0] == 0:
        raise ValueError(f"starts must have shape [B, {model.state_dim}] with B >= 1, got {tuple(x.shape)}")
    if not x.is_floating_point() or not torch.isfinite(x).all():
        raise ValueError("starts must be finite floating-point states")
    B, n, m = x.shape[0], model.state_dim, model.control_dim
    if fused is None and B * steps < FUSED_MIN_TRANSITIONS:
        fused = False  # the compile would cost more than it saves
    dynamics = PlanningModel(model, fused, progress=progress)
    states = x.new_full((B, steps + 1, n), float("nan"))
    controls = x.new_full((B, steps, m), float("nan"))
    states[:, 0] = x
    lengths = torch.full((B,), steps, dtype=torch.int64)
    active = torch.ones(B, dtype=torch.bool)
    diverged = torch.zeros(B, dtype=torch.bool)
    with torch.no_grad():
        for t in tqdm(range(steps), desc="imagine", disable=not progress, leave=False):
            u = policy(x)
            if not isinstance(u, torch.Tensor):
                u = torch.as_tensor(np.asarray(u))
            u = u.to(dtype=x.dtype, device=x.device)
            if u.shape != (B, m):
                raise ValueError(f"the policy must return controls [B={B}, m={m}], got {tuple(u.shape)}")
            if not torch.isfinite(u[active]).all():
                raise ValueError(f"the policy returned NaN or inf controls at step {t}")
            x_next = dynamics.step(x, u)
            bad = active & ~torch.isfinite(x_next).all(-1)
            if bad.any():
                diverged |= bad
                lengths[bad] = t
                active &= ~bad
            controls[active, t] = u[active]
            states[active, t + 1] = x_next[active]
            if terminate is not None:
                done = torch.as_tensor(terminate(x_next)).to(torch.bool).reshape(-1)
                if done.shape != (B,):
                    raise ValueError(f"terminate must return bool [B={B}], got {tuple(done.shape)}")
                ended = active & done
                lengths[ended] = t + 1
                active &= ~done
            if not active.any():
                break
            x = torch.where(active[:, None], x_next, x)  # ended rows keep a finite state
    info = {"source": "imagined", "model": type(model).__name__, "policy": getattr(policy, "__name__", repr(policy)),
            "steps": steps, "diverged": int(diverged.sum()), "fused": dynamics.fused}
    info.update(meta or {})
    return Trajectories(states, controls, lengths=lengths, dt=float(model.dt), meta=info)
