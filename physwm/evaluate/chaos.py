"""How chaotic a known system is along data: its largest finite-time Lyapunov exponent.

On a chaotic system every model's error grows like ``exp(lambda t)`` however good the model, so a valid
prediction time is best read in Lyapunov times, ``lambda * VPT`` (Pathak et al. 2018; Vlachas et al. 2020):
the number of e-foldings of a small error the model stays valid for.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..checks import check_dt, positive_int
from ..integrators import get_integrator
from ..systems import System, wrap_angle

__all__ = ["lyapunov_exponent"]


def _distance(a: torch.Tensor, b: torch.Tensor, angles: list[int]) -> torch.Tensor:
    d = a - b
    if angles:
        d = d.clone()
        d[..., angles] = wrap_angle(d[..., angles])
    return d.norm(dim=-1)


@torch.no_grad()
def lyapunov_exponent(
    system: System,
    states: torch.Tensor,
    controls: torch.Tensor,
    dt: float,
    *,
    integrator: Any = "rk4",
    substeps: int = 1,
    eps: float = 1e-7,
    max_windows: int = 64,
    seed: int = 0,
) -> float:
    """The largest finite-time Lyapunov exponent (1/s) of ``system`` along windows of data (Benettin's method).

    From each window's first state ``x0`` and a neighbour ``x0 + eps * d`` (``d`` a random unit direction),
    both are stepped under the window's recorded controls; after every step the neighbour is pulled back
    to distance ``eps`` along the current separation, and the logarithms of the stretch factors are summed.
    The exponent is that sum over the windows' total time. Angles' differences are wrapped, so the
    system's own angle wrapping does not count as separation.

    Args:
        system: the true system (its constants as they are).
        states: ``[W, T+1, n]`` windows (physical units); only the first state of each is used.
        controls: ``[W, T, m]`` the controls to hold over each step.
        dt: control period, s.
        integrator: integrator name or instance; ``substeps``: its sub-steps (names only).
        eps: initial separation (state units).
        max_windows: use at most this many windows (the first ones).
        seed: seed of the random directions.

    Returns:
        the exponent, 1/s (about 0 or below for regular motion, positive for chaos).
    """
    dt = check_dt(dt)
    W = min(int(states.shape[0]), positive_int(max_windows, "max_windows"))
    if W == 0 or controls.shape[1] == 0:
        raise ValueError("lyapunov_exponent needs at least one window of at least one step")
    step = get_integrator(integrator, substeps=substeps) if isinstance(integrator, str) else integrator
    x = states[:W, 0].to(torch.float64)
    u = controls[:W].to(torch.float64)
    field = type(system)(type(system).Params.from_dict(system.params.to_dict())).double()
    angles = [i for i, q in enumerate(type(system).states) if q.kind == "angle"]
    g = torch.Generator().manual_seed(int(seed))
    d = torch.randn(x.shape, generator=g, dtype=torch.float64)
    y = x + eps * d / d.norm(dim=-1, keepdim=True)
    total = torch.zeros(W, dtype=torch.float64)
    for t in range(u.shape[1]):
        x = step.step(field, x, u[:, t], dt)
        y = step.step(field, y, u[:, t], dt)
        dist = _distance(y, x, angles).clamp_min(1e-300)
        total += torch.log(dist / eps)
        sep = y - x
        if angles:
            sep[:, angles] = wrap_angle(sep[:, angles])
        y = x + sep * (eps / dist)[:, None]
    value = float(total.mean()) / (u.shape[1] * dt)
    return value if math.isfinite(value) else math.nan
