"""What the default study's adaptation split costs: CPU time of adapting and re-scoring its trained models.

Re-run with one command (on a finished default study, e.g. the reference one)::

    .venv/bin/python bench/study_adaptation_cost.py --study data/reference

For every comparison run of each task whose test splits have ``adapt`` in the default study
(:func:`physwm.studies.default_config`), it loads the run's trained model from ``STUDY/runs``, collects each
split's adaptation pool as the runner does, and measures (``time.process_time``, one torch thread) the peer, scoring
the trained model on those splits as the runner does, against what the adaptation split adds: adapting it to each
K (:func:`physwm.adapt`) and scoring the adapted copy. It prints both, their ratio, the adapted errors beside the
fixed ones, and what the adaptation split adds relative to the study's recorded run compute (``results.json``'s
``run_compute_s``, the sum over its runs of training and evaluation time), which was measured when the study ran,
perhaps on a quieter machine: the ratio of the two CPU times measured here is the load-independent number.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch

from physwm.data import Trajectories, make_policy
from physwm.envs import make_env
from physwm.evaluate import evaluate, state_scale
from physwm.files import read_json
from physwm.studies import default_config
from physwm.studies.adaptation import adapted_metrics, collect_pool
from physwm.studies.paths import data_path, run_path
from physwm.train import load_checkpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--study", type=Path, required=True, help="a finished default study (its runs/ and results.json)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = default_config()
    fixed_cpu, adapt_cpu, lines = 0.0, 0.0, []
    for task in cfg.tasks:
        splits = [s for s in task.tests if s.adapt]
        if not splits:
            continue
        system = task.system_class
        pools, tests = {}, {}
        for s in splits:
            env = make_env(s.env_id(system), params=task.true_params(s), max_episode_steps=max(s.adapt),
                           **s.env_options)  # fmt: skip
            pools[s.name] = collect_pool(env, make_policy(s.policy, **s.policy_options), s, max(s.adapt))
            tests[s.name] = Trajectories.load(data_path(args.study, task.name, s.name))
        for m in cfg.models:
            for seed in cfg.seeds:
                path = run_path(args.study, task.name, m.name, cfg.train_transitions, seed).with_suffix(".pt")
                model, _ = load_checkpoint(path)
                for s in splits:
                    data, true = tests[s.name], system(task.true_params(s))

                    def score(mod, s=s, data=data, true=true, system=system):
                        return evaluate(mod, data, horizons=s.horizons or cfg.horizons, scale=state_scale(data),
                                        threshold=cfg.vpt_threshold, max_windows=cfg.max_windows, seed=0,
                                        energy_fn=true.energy if system.has_energy() else None)  # fmt: skip

                    c0 = time.process_time()
                    fixed = score(model)
                    fixed_cpu += time.process_time() - c0
                    c0 = time.process_time()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        adapted = adapted_metrics(model, pools[s.name], s.adapt, score)
                    adapt_cpu += time.process_time() - c0
                    key = f"rmse@{cfg.headline.horizon}"
                    cells = ", ".join(f"K={k} {a[key]:.3g} (adapt {a['adapt_cpu_s']:.2f} s)"
                                      for k, a in adapted.items())
                    lines.append(f"{task.name} {m.name} s{seed} {s.name}: fixed {fixed[key]:.3g}; {cells}")
                    print(lines[-1], file=sys.stderr)
    compute = read_json(args.study / "results.json", "study results")["meta"]["run_compute_s"]
    print("\n".join(lines))
    print(f"\nscoring the trained models on the adapted splits (the peer): {fixed_cpu:.1f} s CPU; adapting them and "
          f"scoring the adapted copies: {adapt_cpu:.1f} s CPU; ratio {adapt_cpu / max(fixed_cpu, 1e-9):.1f}x")
    print(f"the study's recorded run compute: {compute:.0f} s; the adaptation split adds {adapt_cpu:.0f} s CPU "
          f"({100 * adapt_cpu / compute:.0f}% of it; the machine's load now and then may differ)")


if __name__ == "__main__":
    main()
