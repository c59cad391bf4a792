"""Benchmark: what the first planning call costs with a cold and with a warm inductor disk cache.

Planners compile an ODE model's kernels on their first call (per batch size). ``torch.compile`` keeps the
compiled code in memory for the process and in inductor's on-disk caches (FX graph cache and AOTAutograd
cache under ``$TORCHINDUCTOR_CACHE_DIR``), so a second process skips the C++ compilation but still traces the
model with dynamo. This script measures both: for each planner it runs two fresh Python processes one after
the other on one empty cache directory (a temporary ``TORCHINDUCTOR_CACHE_DIR``, deleted afterwards unless
``--keep``): the first process compiles from scratch (cold), the second finds the first one's code (warm).
Each process plans a few control steps with the default hybrid (``build("hybrid")``: RK4, CartPole physics with
learnable constants and a 32x32 residual) on the friction CartPole's swing-up, one torch thread, and
reports the first step's seconds (compilation included), the median of the next steps and the seconds spent
compiling (``compile_seconds`` of the kernels, i.e. the first call per kernel).

Run: ``python bench/compile_cache.py`` (several minutes on a loaded 2-core machine: the cold compiles).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

PLANNERS = {"cem": {"population": 500, "iterations": 5}, "ilqr": {}, "cem_gd": {}}


def child(planner: str, steps: int) -> None:
    import physwm
    from physwm.control import default_planner_options, get_task, make_env, make_planner
    from physwm.models import build

    torch.set_num_threads(1)
    env = make_env("physwm/CartPole-v0", "swingup")
    task = get_task("swingup")
    model = build("hybrid").eval()
    options = default_planner_options(env, task)
    options.update(PLANNERS[planner])
    p = make_planner(planner, model, task.cost, seed=0, progress=False, **options)
    x = np.array([0.0, 0.0, np.pi - 0.02, 0.0])
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        p.act(x)
        times.append(time.perf_counter() - t0)
    print(json.dumps({"first_s": times[0], "next_ms": 1e3 * float(np.median(times[1:])),
                      "compile_s": p.dynamics.compile_seconds,
                      "fused": p.dynamics.fused, "physwm": physwm.__version__}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--planners", nargs="+", default=list(PLANNERS), choices=list(PLANNERS))
    ap.add_argument("--steps", type=int, default=6, help="control steps per process (default 6)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary cache directory")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.steps)
        return
    print(f"torch {torch.__version__}; default hybrid (RK4) on the friction CartPole's swing-up, one thread; "
          "timings on a shared machine are noisy\n")
    print(f"{'planner':<8} {'process':<7} {'first step s':>13} {'compiling s':>12} {'next steps ms':>14}")
    for planner in args.planners:
        cache = tempfile.mkdtemp(prefix="physwm_inductor_")
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        try:
            for label in ("cold", "warm"):
                out = subprocess.run([sys.executable, __file__, "--child", planner, "--steps", str(args.steps)],
                                     env=env, check=True, capture_output=True, text=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"{planner:<8} {label:<7} {r['first_s']:>13.1f} {r['compile_s']:>12.1f} {r['next_ms']:>14.1f}"
                      + ("" if r["fused"] else "  (no compiler: eager)"), flush=True)
        finally:
            if args.keep:
                print(f"  cache kept in {cache}")
            else:
                shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
