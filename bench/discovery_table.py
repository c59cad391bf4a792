"""Reference table: the symbolic hybrid of ``physwm.discover`` against the network hybrid, explicit and MLP models.

Protocol (issue 10): the truth is nominal CartPole plus ``-0.2 x_dot|x_dot|`` on ``x_ddot`` and
``-0.3 theta_dot|theta_dot|`` on ``theta_ddot`` (terms outside the friction family, inside the library);
5,000 noiseless training transitions (``bench/discover.py``'s data: 50 episodes x 100 steps of random
+-10 N forces from ``|theta| < 0.3``, ``|theta_dot| < 3``); the test is 100-step open-loop rollouts under
random +-10 N forces from 64 large-angle starts (``|theta| < pi``, ``|theta_dot| < 6``, ``|x_dot| < 3``),
RMSE in units of the training data's state spread, over every step and state entry. Models, each with
``fit``'s recipe (``steps`` capped by ``--steps``): ``hybrid`` (network residual), ``hybrid symbolic``
(``physwm.discover(data)``), ``explicit`` (constants only), ``mlp`` (the implicit family's default).

    .venv/bin/python bench/discovery_table.py --out data/reference/discovery.md [--overwrite]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from discover import truth_data, truth_model  # bench/discover.py, beside this script

import physwm
from physwm.evaluate.model import windows_rmse
from physwm.files import atomic_write_text
from physwm.models import build


def large_angle_test(seed: int = 1, starts: int = 64, steps: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """``(states [B, T+1, 4], controls [B, T, 1])`` of the truth from large-angle starts."""
    g = torch.Generator().manual_seed(seed)
    box = torch.tensor([0.5, 3.0, math.pi, 6.0], dtype=torch.float64)
    x0 = (torch.rand(starts, 4, generator=g, dtype=torch.float64) * 2 - 1) * box
    u = (torch.rand(starts, steps, 1, generator=g, dtype=torch.float64) * 2 - 1) * 10
    with torch.no_grad():
        return truth_model().rollout(x0, u).float(), u.float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--steps", type=int, default=500, help="gradient-step cap of each fit (default 500)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = truth_data()
    train, val = data.split((0.9, 0.1), seed=0)
    states, controls = large_angle_test()
    rows = []
    for name in ("hybrid", "hybrid symbolic", "explicit", "mlp"):
        c = time.process_time()
        if name == "hybrid symbolic":
            model = symbolic = physwm.discover(data)
        else:
            model = build(name)
            physwm.fit(model, train, val, steps=args.steps, progress=False)
        scale = data.states.reshape(-1, 4).std(0)
        err = windows_rmse(model, states, controls, scale)
        rows.append((name, err, time.process_time() - c))
        print(f"{name:16} {err:.3g} ({time.process_time() - c:.0f} s cpu)", flush=True)
    best_implicit = rows[-1][1]
    net = rows[0][1]
    sym = rows[1][1]
    lines = [
        "# Discovering missing physics: 100-step open-loop error from large-angle starts",
        "",
        "Regenerate: `.venv/bin/python bench/discovery_table.py --out data/reference/discovery.md --overwrite`",
        "(protocol in the script's docstring). RMSE in units of the training data's state spread.",
        "",
        "| model | RMSE (100 steps, large angles) | fit CPU s |",
        "|---|---|---|",
        *[f"| {n} | {e:.3g} | {t:.0f} |" for n, e, t in rows],
        "",
        f"symbolic vs network hybrid: {net / sym:.3g}x lower error; vs the MLP (implicit): {best_implicit / sym:.3g}x.",
        "",
        "Equations found:",
        "",
        "```",
        symbolic.discovery.format(),
        "```",
        "",
    ]
    atomic_write_text(args.out, "\n".join(lines), overwrite=args.overwrite)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
