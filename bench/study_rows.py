"""What the default study's rows of issue 15's families (``gan``, ``pinn_mlp``) cost, against the MLP's row.

Runs the default study (``physwm demo``'s configuration, ``physwm/studies/default.json``) with only the
``mlp``, ``gan`` and ``pinn_mlp`` rows, both tasks, ``--seeds`` seeds, no data-efficiency sweep beyond the
main size, no figures, in this process (one worker, one thread), and prints per row the CPU time of its
``fit`` calls (``time.process_time``, hardly inflated by other jobs on the machine) and the wall time of its
evaluations, and each row's total against the MLP row's. The new rows' budgets are their ``fit`` entries
in default.json (300 steps; the study's other models train 1,000).

The default study's added time is then about ``(gan + pinn_mlp) / mlp`` times the MLP row's share of it
(``data/reference/results.csv``: the mlp's train_time_s over both tasks and seeds); the script prints that
estimate too.

Run: ``python bench/study_rows.py`` (a few minutes on a loaded machine).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

import physwm.studies.runner as runner
from physwm.studies import default_config, run_study

ROWS = ("mlp", "gan", "pinn_mlp")
REFERENCE = Path(__file__).resolve().parents[1] / "data" / "reference" / "results.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the study's workers run (its `threads`); idle threads would spin on CPU time
    full = default_config()
    cfg = dataclasses.replace(
        full, models=[full.model(name) for name in ROWS], seeds=list(range(args.seeds)), workers=1, figures=False,
        data_efficiency=dataclasses.replace(full.data_efficiency, models=["mlp"], sizes=[full.train_transitions]),
    )  # fmt: skip
    cpu: dict[str, float] = defaultdict(float)
    fit = runner.fit

    def timed_fit(model, *a, **kw):  # the CPU time of each row's training, by family
        c0 = time.process_time()
        try:
            return fit(model, *a, **kw)
        finally:
            cpu[model.build_spec["name"]] += time.process_time() - c0

    runner.fit = timed_fit
    try:
        with tempfile.TemporaryDirectory(prefix="physwm_rows_") as tmp:
            out = Path(tmp) / "study"
            run_study(cfg, out, progress=False)
            evals: dict[str, float] = defaultdict(float)
            for f in (out / "runs").rglob("*.json"):
                r = json.loads(f.read_text())
                evals[r.get("model", f.parent.name)] += float(r.get("eval_time_s", 0.0))
    finally:
        runner.fit = fit
    print(f"default study rows, {len(cfg.tasks)} tasks x {args.seeds} seeds, one process, one thread "
          "(fit: CPU s; evaluation: wall s)")
    total = {name: cpu[name] + evals.get(name, 0.0) for name in ROWS}
    for name in ROWS:
        print(f"  {name:8s} fit {cpu[name]:6.1f} s CPU (steps {cfg.fit_for(cfg.model(name)).steps}), evaluation "
              f"{evals.get(name, 0.0):5.1f} s; total / mlp = {total[name] / total['mlp']:.2f}")
    if REFERENCE.is_file():
        rows = list(csv.DictReader(REFERENCE.open()))
        mlp = {(r["task"], r["n_train"]): float(r["train_time_s"]) for r in rows if r["model"] == "mlp"}
        mlp_s = sum(v for (task, n), v in mlp.items() if int(n) == full.train_transitions) * len(full.seeds)
        added = (total["gan"] + total["pinn_mlp"]) / total["mlp"] * mlp_s
        print(f"  reference study's mlp rows: {mlp_s:.0f} s of training; the two new rows add about {added:.0f} s of "
              "work (the study's 2 workers share it)")


if __name__ == "__main__":
    main()
