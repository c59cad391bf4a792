"""Benchmark: ``physwm.discover`` on 5,000 transitions, against identifying the constants in the same run.

Data (``--truth additive``, default): nominal CartPole plus two terms outside its friction family on the
accelerations (``-0.2 x_dot|x_dot|`` on ``x_ddot``, ``-0.3 theta_dot|theta_dot|`` on ``theta_ddot``); or
(``--truth drag``) CartPole with ``DRAG_PARAMS``: friction plus aerodynamic drag forces entering through the
equations of motion (RK4 with 10 sub-steps: the Coulomb term is stiff); 50 episodes x 100 steps of random +-10 N
forces from starts in ``|x| < 0.5, |x_dot| < 2, |theta| < 0.3, |theta_dot| < 3``, RK4 at 0.02 s, noiseless
(the setting of ``tests/test_discover.py``). Timed, each in this process:

* ``discover``: ``physwm.discover(data)`` with its defaults (threshold search, 20 bootstrap resamples,
  two L-BFGS epochs of the joint refit over 256 windows of 10 steps);
* ``explicit fit (peer)``: ``fit(build("explicit"), data, steps=200)``, the recipe's system identification
  of the constants capped at 200 gradient steps: the cost unit the ratio is measured in.

Prints CPU seconds (``time.process_time``; other jobs on a shared machine inflate wall time, not this),
wall seconds and the ratio ``discover / peer``, and the equations found. One torch thread unless
``--threads`` says otherwise (set here, in the script, never in the library).

    .venv/bin/python bench/discover.py [--threads 2] [--truth drag]
"""

from __future__ import annotations

import argparse
import time

import torch

import physwm
from physwm.integrators import get_integrator
from physwm.models import HybridField, ODEModel, SymbolicField, build
from physwm.systems import CartPole
from physwm.systems.cartpole import DRAG_PARAMS

TRUE = {"x_ddot": {"x_dot*|x_dot|": -0.2}, "theta_ddot": {"theta_dot*|theta_dot|": -0.3}}
#: The drag truth's missing physics, relative to nominal CartPole, as generalised forces (N, N m): what
#: ``discover`` should find in force space (friction and drag; ``sgn`` is the library's smoothed sign, the
#: same smoothing as CartPole's Coulomb term).
TRUE_FORCES = {
    "Q_x": {"x_dot": -0.1, "x_dot*|x_dot|": -0.15, "sgn(x_dot)": -0.1},
    "Q_theta": {"theta_dot": -0.005, "theta_dot*|theta_dot|": -0.005},
}
#: The truths by name: ``additive`` (terms added to the accelerations), ``drag`` (physical drag forces).
TRUTHS = ("additive", "drag")


def truth_model(truth: str = "additive") -> ODEModel:
    """The truth, float64, RK4 at 0.02 s: nominal CartPole plus :data:`TRUE` on its accelerations
    (``"additive"``) or CartPole with ``DRAG_PARAMS`` (``"drag"``, 10 sub-steps)."""
    if truth == "drag":
        return ODEModel(CartPole(DRAG_PARAMS), get_integrator("rk4", substeps=10), 0.02).double()
    if truth != "additive":
        raise ValueError(f"unknown truth {truth!r}; valid: {list(TRUTHS)}")
    sym = SymbolicField(CartPole, terms={row: list(c) for row, c in TRUE.items()})
    xi = torch.zeros(2, len(sym.term_names))
    for i, row in enumerate(sym.row_names):
        for term, value in TRUE[row].items():
            xi[i, sym.term_names.index(term)] = value
    sym.set_coefficients(xi)
    return ODEModel(HybridField(CartPole(), sym), "rk4", 0.02).double()


def truth_data(seed: int = 0, episodes: int = 50, steps: int = 100, truth: str = "additive") -> physwm.Trajectories:
    """The benchmark's 5,000 transitions (see the module docstring)."""
    g = torch.Generator().manual_seed(seed)
    box = torch.tensor([0.5, 2.0, 0.3, 3.0], dtype=torch.float64)
    x0 = (torch.rand(episodes, 4, generator=g, dtype=torch.float64) * 2 - 1) * box
    u = (torch.rand(episodes, steps, 1, generator=g, dtype=torch.float64) * 2 - 1) * 10
    with torch.no_grad():
        s = truth_model(truth).rollout(x0, u)
    return physwm.Trajectories(s.float(), u.float(), dt=0.02)


def timed(fn):
    c, w = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c, time.perf_counter() - w


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--truth", choices=TRUTHS, default="additive")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = truth_data(truth=args.truth)
    print(f"data: {data.num_transitions} transitions; torch threads {args.threads}")
    model, cpu_d, wall_d = timed(lambda: physwm.discover(data))
    _, cpu_p, wall_p = timed(lambda: physwm.fit(build("explicit"), data, steps=200, progress=False))
    print(f"{'':22} {'cpu s':>8} {'wall s':>8}")
    print(f"{'discover':22} {cpu_d:8.2f} {wall_d:8.2f}")
    print(f"{'explicit fit (peer)':22} {cpu_p:8.2f} {wall_p:8.2f}")
    print(f"ratio discover / peer: cpu {cpu_d / cpu_p:.2f}, wall {wall_d / wall_p:.2f}")
    print(model.discovery.format())


if __name__ == "__main__":
    main()
