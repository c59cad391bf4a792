"""Wall time of the default study (``physwm demo``) and its quick variant, from scratch, on this machine.

    python bench/study.py            # both (a few minutes)
    python bench/study.py --quick    # the quick variant only

Each study runs in a fresh temporary directory (data collection included) with the default 2 worker
processes. Prints the wall time of each stage and the ratio to its target (default study: 300 s, quick:
60 s; a ratio below 1 meets the target) and the machine's load average, since other jobs on the machine
slow the study down.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

TARGETS = {"quick": 60.0, "default": 300.0}


def run(quick: bool, workers: int | None) -> tuple[float, object]:
    import dataclasses

    from physwm.studies import default_config, run_study

    cfg = default_config(quick=quick)
    if workers is not None:
        cfg = dataclasses.replace(cfg, workers=workers)
    with tempfile.TemporaryDirectory(prefix="physwm_bench_") as tmp:
        t0 = time.perf_counter()
        res = run_study(cfg, Path(tmp) / "study", progress=False)
        wall = time.perf_counter() - t0
    return wall, res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the quick variant")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: the config's, 2)")
    args = parser.parse_args()
    os.environ.setdefault("MPLBACKEND", "Agg")
    print(f"cpus: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}")
    for name in ["quick"] + ([] if args.quick else ["default"]):
        wall, res = run(name == "quick", args.workers)
        h = res.headline
        print(
            f"{name:8s} study: {wall:6.1f} s wall ({res.runs_total} runs, {res.data_collected} data sets), "
            f"target {TARGETS[name]:.0f} s, ratio {wall / TARGETS[name]:.2f}; load average now {os.getloadavg()[0]:.2f}"
        )
        if h.get("splits"):
            print(
                f"         headline {h['metric']}: hybrid vs best implicit {h['ratio_in']:.3g}x in distribution, "
                f"{h['ratio_out']:.3g}x out of distribution"
            )


if __name__ == "__main__":
    main()
